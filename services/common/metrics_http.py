"""The /metrics endpoint, bounded: at most a few connections served at once (the next is
answered 503 and closed at once), each cut off after a few idle seconds. prometheus_client's
own server starts a thread per connection and lets an idle one hold it forever."""

from __future__ import annotations

import socket
import threading
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry, MetricsHandler

MAX_CONNECTIONS = 8
IDLE_TIMEOUT_S = 5.0
_BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class BoundedConnections:
    """For a threading server: at most `max_connections` served at once; the next one is
    answered 503 and closed at once (the HTTPS /metrics server takes this too)."""

    daemon_threads = True  # a client mid-scrape must not hold the process at exit
    max_connections = MAX_CONNECTIONS
    _slots: threading.BoundedSemaphore | None = None

    def process_request(self, request, client_address) -> None:
        if self._slots is None:
            self._slots = threading.BoundedSemaphore(self.max_connections)
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _BoundedServer(BoundedConnections, ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], handler: type, max_connections: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.max_connections = max_connections
        super().__init__(address, handler)


def start(host: str, port: int, registry: CollectorRegistry,
          max_connections: int = MAX_CONNECTIONS, idle_timeout_s: float = IDLE_TIMEOUT_S) -> int:
    """Serves /metrics on a thread of its own; returns the bound port."""
    # `timeout` is the socket timeout of each connection (StreamRequestHandler.setup); the
    # handler logs nothing, timeouts included.
    handler = type("BoundedMetricsHandler", (MetricsHandler.factory(registry),), {"timeout": idle_timeout_s})
    server = _BoundedServer((host, port), handler, max_connections)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server.server_address[1]
