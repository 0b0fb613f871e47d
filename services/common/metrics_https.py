"""/metrics over HTTPS with client certificates, for a service whose ports are all mTLS.

prometheus_client's own HTTPS option (start_http_server with certfile and client_cafile)
loads the certificate once and checks only that a client's certificate is signed by the CA;
this server takes a renewed certificate for the next connection and lets only the allowed
identities (Prometheus, the operator) read. The handshake runs on the connection's own
thread, so a client that stalls it holds up no other scrape; as over plaintext, a few
connections are served at once and an idle one is cut off (metrics_http.BoundedConnections).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from services.common.certificates import CertificateWatcher, Material
from services.common.config import split_address
from services.common.metrics_http import BoundedConnections

_LOGGER = logging.getLogger(__name__)
_HANDSHAKE_TIMEOUT_S = 10.0


def tls_context(material: Material) -> ssl.SSLContext:
    """A server context requiring a client certificate of the mesh CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(material.paths[0], material.paths[1])
    context.load_verify_locations(cadata=material.ca.decode())
    return context


def peer_identity(connection: ssl.SSLSocket) -> str:
    """The peer certificate's URI SAN (the mesh puts exactly one there), or ""."""
    certificate = connection.getpeercert() or {}
    return next((value for kind, value in certificate.get("subjectAltName", ()) if kind == "URI"), "")


_PEER = "opsconductor.peer_identity"


class _Handler(WSGIRequestHandler):
    def get_environ(self) -> dict:
        environ = super().get_environ()
        environ[_PEER] = peer_identity(self.connection)
        return environ

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        """Scrapes are not logged."""


def _only(allowed: frozenset[str], app):
    """The metrics app for the allowed identities; 403 for any other (after reading its request)."""
    def guarded(environ, start_response):
        identity = environ.get(_PEER, "")
        if identity not in allowed:
            _LOGGER.warning("metrics reader refused", extra={"caller": identity})
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"this identity may not scrape\n"]
        return app(environ, start_response)

    return guarded


class _Server(BoundedConnections, ThreadingWSGIServer):
    context: ssl.SSLContext

    def finish_request(self, request: socket.socket, client_address) -> None:
        request.settimeout(_HANDSHAKE_TIMEOUT_S)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            _LOGGER.info("metrics handshake refused", extra={"error": str(error)[:200]})
            return
        super().finish_request(connection, client_address)


def serve_metrics_https(address: str, registry: CollectorRegistry, watcher: CertificateWatcher,
                        allowed: tuple[str, ...]) -> int:
    """Serves /metrics on a thread; returns the bound port."""
    host, port = split_address(address)

    class Server(_Server):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    server: WSGIServer = Server((host, port), _Handler)
    server.set_app(_only(frozenset(allowed), make_wsgi_app(registry)))
    server.context = tls_context(watcher.material)

    def renewed(material: Material) -> None:
        try:
            server.context = tls_context(material)  # the next connection's handshake uses it
        except (ssl.SSLError, OSError) as error:
            _LOGGER.warning("metrics certificate not taken", extra={"error": str(error)})

    watcher.subscribe(renewed)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server.server_port
