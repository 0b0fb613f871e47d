"""The store's HTTP API, read by `opsconductor trace` and the page server (never by browsers):

    GET /v1/traces/<32 hex>         one trace as a waterfall (404 when unknown)
    GET /v1/traces?slowest=N        the N slowest recent traces (1-100, default 10)
    GET /healthz
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from services.common.config import split_address
from services.traces.store import SpanStore
from services.traces.waterfall import waterfall

_LOGGER = logging.getLogger(__name__)

TRACE_ID = re.compile(r"[0-9a-f]{32}")
MAX_SLOWEST = 100


def _handler(store: SpanStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "opsconductor-traces"
        protocol_version = "HTTP/1.1"
        timeout = 10

        def version_string(self) -> str:
            return self.server_version

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/healthz":
                self._json(HTTPStatus.OK, {"status": "ok", "spans": store.count})
            elif url.path == "/v1/traces":
                self._slowest(urllib.parse.parse_qs(url.query))
            elif url.path.startswith("/v1/traces/"):
                trace_id = url.path.removeprefix("/v1/traces/").lower()
                if not TRACE_ID.fullmatch(trace_id):
                    self._json(HTTPStatus.BAD_REQUEST, {"error": "a trace id is 32 hex characters"})
                    return
                spans = store.trace(trace_id)
                if not spans:
                    self._json(HTTPStatus.NOT_FOUND, {"error": f"no spans of trace {trace_id} in the store"})
                    return
                self._json(HTTPStatus.OK, waterfall(spans))
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

        def _slowest(self, query: dict[str, list[str]]) -> None:
            raw = query.get("slowest", ["10"])[0]
            if not raw.isdigit() or not 1 <= int(raw) <= MAX_SLOWEST:
                self._json(HTTPStatus.BAD_REQUEST, {"error": f"slowest must be 1-{MAX_SLOWEST}"})
                return
            self._json(HTTPStatus.OK, {"traces": [
                {"trace_id": t.trace_id, "service": t.service, "name": t.name, "start_unix_ms": t.start_ns / 1e6,
                 "duration_ms": round(t.duration_ns / 1e6, 3), "span_count": t.span_count, "errors": t.errors}
                for t in store.slowest(int(raw))]})

        def _refuse(self) -> None:
            self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "GET only"}, {"Allow": "GET"})

        do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _refuse

        def _json(self, status: HTTPStatus, body: object, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body, separators=(",", ":")).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", "Cache-Control": "no-store",
                                "Content-Length": str(len(data)), **(headers or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            _LOGGER.debug("%s %s %s", self.command, self.path, code)

        def log_error(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            _LOGGER.info(format, *args)

    return Handler


def serve_query(address: str, store: SpanStore) -> ThreadingHTTPServer:
    """Serves the API on a thread; returns the server (its port in server_address)."""
    host, port = split_address(address)
    server = ThreadingHTTPServer((host, port), _handler(store))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="trace-query", daemon=True).start()
    return server
