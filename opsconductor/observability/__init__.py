"""Prometheus: the scrape config the mesh renders, and a client for its API and for /metrics pages."""
