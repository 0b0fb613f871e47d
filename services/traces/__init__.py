"""The local trace store: an OTLP/gRPC receiver keeping recent spans in SQLite, with an HTTP API by trace id."""
