"""The gateway: Envoy config rendering (settings, listeners, clusters, variants) and the admin client."""
