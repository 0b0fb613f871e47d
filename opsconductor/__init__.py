"""OpsConductor Mesh's operator side and its contracts.

- `opsconductor.automation.v1`, `opsconductor.pipeline.v1`: Python stubs generated from proto/
  (named like the proto packages, as grpcurl shows them; never edited by hand);
- `opsconductor.cli`: the `opsconductor` command, one module per command;
- `opsconductor.gateway`, `.stack`, `.release`, `.observability`, `.load`: the libraries the
  commands call (see docs/ARCHITECTURE.md).

The services themselves live in the `services` package and never import the operator side.
"""
