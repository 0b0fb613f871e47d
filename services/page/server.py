"""Serves the built Exec Sandbox page (web_client/dist), its config.json made from memory, the
API routes of the page's own views, and /healthz for probes. A small production server on the
standard library: only files under the page's directory (see assets.py), GET and HEAD only.

    python -m services page --directory web_client/dist --addr 127.0.0.1:3100 \\
        --gateway-url http://127.0.0.1:3000
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from services.page.assets import StaticSite, accepts_gzip, cache_control, etag_matches

_LOGGER = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
# The page's views by path: the Exec Sandbox, and the mesh's live golden metrics.
VIEWS = {"/": "/index.html", "/mesh": "/mesh.html"}
DEFAULT_ADDR = "127.0.0.1:3100"
DEFAULT_GATEWAY_URL = "http://127.0.0.1:3000"
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass(frozen=True)
class ApiReply:
    """What an API route answers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


# An API route: (method, path with its query string, request headers) -> the reply. Routes are
# matched by path prefix; each view of the page that needs data from the mesh registers one.
ApiRoute = Callable[[str, str, Mapping[str, str]], ApiReply]


class _Handler(BaseHTTPRequestHandler):
    """GET and HEAD of the site's files; everything else is refused."""

    site: StaticSite  # set on the subclass made for each server
    apis: Mapping[str, ApiRoute] = {}
    server_version = "opsconductor-page"
    protocol_version = "HTTP/1.1"  # keep-alive: the page loads several files at once
    timeout = 30  # seconds a silent client may hold a worker thread

    def version_string(self) -> str:
        return self.server_version  # without the Python version the base class appends

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _refuse(self) -> None:
        self._send_plain(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed\n", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

    def _serve(self, send_body: bool) -> None:
        try:
            url_path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path, errors="strict")
        except (UnicodeDecodeError, ValueError):
            url_path = ""
        if not url_path.startswith("/") or "\x00" in url_path or "\\" in url_path:
            self._send_plain(HTTPStatus.BAD_REQUEST, "bad path\n", send_body=send_body)
            return
        if url_path == HEALTH_PATH:
            self._send_plain(HTTPStatus.OK, "ok\n", {"Cache-Control": "no-store"}, send_body=send_body)
            return
        route = next((route for prefix, route in self.apis.items() if url_path.startswith(prefix)), None)
        if route is not None:
            reply = route(self.command, self.path, dict(self.headers.items()))
            self._send(HTTPStatus(reply.status), {"Content-Type": reply.content_type, "Cache-Control": "no-store",
                                                  **reply.headers}, reply.body, send_body=send_body)
            return
        url_path = VIEWS.get(url_path, url_path)
        asset = self.site.lookup(url_path)
        if asset is None:
            self._send_plain(HTTPStatus.NOT_FOUND, "not found\n", send_body=send_body)
            return

        use_gzip = asset.gzipped is not None and accepts_gzip(self.headers.get("Accept-Encoding", ""))
        body = asset.gzipped if use_gzip and asset.gzipped is not None else asset.body
        # A distinct ETag per encoding, so caches never hand gzip bytes to a client that
        # asked for identity (RFC 9110 §8.8.3).
        etag = asset.etag[:-1] + '-gz"' if use_gzip else asset.etag
        headers = {
            "Cache-Control": cache_control(url_path),
            "ETag": etag,
            "Last-Modified": asset.last_modified,
        }
        if asset.gzipped is not None:
            headers["Vary"] = "Accept-Encoding"
        if etag_matches(self.headers.get("If-None-Match", ""), etag):
            self._send(HTTPStatus.NOT_MODIFIED, headers, b"", send_body=False)
            return
        headers["Content-Type"] = asset.content_type
        if use_gzip:
            headers["Content-Encoding"] = "gzip"
        self._send(HTTPStatus.OK, headers, body, send_body=send_body)

    def _send_plain(self, status: HTTPStatus, text: str, extra: Mapping[str, str] | None = None,
                    send_body: bool = True) -> None:
        headers = {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store", **(extra or {})}
        self._send(status, headers, text.encode(), send_body=send_body)

    def _send(self, status: HTTPStatus, headers: Mapping[str, str], body: bytes, send_body: bool) -> None:
        self.send_response(status)
        for name, value in {**_SECURITY_HEADERS, "Content-Security-Policy": self.site.csp, **headers}.items():
            self.send_header(name, value)
        # 304 has no body; HEAD reports the length GET would send.
        if status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body and body:
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        _LOGGER.info("%s %s %s", self.command, self.path, int(code) if isinstance(code, int) else code,
                     extra={"client": self.client_address[0]})

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        _LOGGER.warning(format, *args, extra={"client": self.client_address[0]})


def create_server(directory: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 3100,
                  config: Mapping[str, Any] | None = None,
                  apis: Mapping[str, ApiRoute] | None = None) -> ThreadingHTTPServer:
    """A bound server, not yet serving (port 0 picks a free port: see server_address).

    With `config`, /config.json is that mapping as JSON, whatever the directory holds; `apis`
    maps path prefixes to the API routes of the page's views.
    """
    site = StaticSite(directory, config)
    handler = type("StaticHandler", (_Handler,), {"site": site, "apis": dict(apis or {})})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True  # a stuck client must not keep the process alive on shutdown
    return server


def serve(directory: str | os.PathLike[str], host: str, port: int, config: Mapping[str, Any] | None,
          apis: Mapping[str, ApiRoute] | None = None) -> None:
    """Serves until SIGTERM or SIGINT (when called on the main thread) or server shutdown."""
    server = create_server(directory, host, port, config, apis)
    bound_host, bound_port = server.server_address[:2]
    if threading.current_thread() is threading.main_thread():
        def stop(signum: int, _frame: object) -> None:
            _LOGGER.info("signal %s: stopping", signal.Signals(signum).name)
            # shutdown() waits for serve_forever(), which runs on this very thread: hand it off.
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    _LOGGER.info("serving %s on http://%s:%s", Path(directory).resolve(), bound_host, bound_port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def _split_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"address must be HOST:PORT, got {addr!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services page", description=__doc__.splitlines()[0])
    parser.add_argument("--directory", default=os.environ.get("PAGE_DIR", "web_client/dist"),
                        help="the built page (PAGE_DIR, default web_client/dist)")
    parser.add_argument("--addr", default=os.environ.get("PAGE_ADDR", DEFAULT_ADDR),
                        help=f"listen HOST:PORT (PAGE_ADDR, default {DEFAULT_ADDR})")
    parser.add_argument("--gateway-url", default=os.environ.get("GATEWAY_URL", DEFAULT_GATEWAY_URL),
                        help=f"gateway URL the page calls (GATEWAY_URL, default {DEFAULT_GATEWAY_URL})")
    parser.add_argument("--traces-url", default=os.environ.get("TRACES_URL", ""),
                        help="the trace store's query API (TRACES_URL); when set the page shows each run's waterfall")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"), help="LOG_LEVEL, default INFO")
    parser.add_argument("--prometheus-url", help="Prometheus the mesh view reads, read-only (PROMETHEUS_URL)")
    parser.add_argument("--rollout-file", help="state file of a running canary rollout (ROLLOUT_STATE_FILE)")
    return parser


def _mesh_apis(args: argparse.Namespace) -> dict[str, ApiRoute]:
    """The mesh view's routes: Prometheus reads and the rollout in progress."""
    from services.common.config import mesh_view_config
    from services.page import prometheus, rollout  # they build on this module's ApiReply

    env = dict(os.environ)
    for name, value in (("PROMETHEUS_URL", args.prometheus_url), ("ROLLOUT_STATE_FILE", args.rollout_file)):
        if value is not None:
            env[name] = value
    config = mesh_view_config(env)
    return {prometheus.PREFIX + "/": prometheus.prometheus_route(config.prometheus_url, config.prometheus_timeout_s),
            rollout.PATH: rollout.rollout_route(config.rollout_file)}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from services.common import logs
    from services.common.config import ConfigError, log_format

    try:
        logs.configure(args.log_level, "page", log_format(), no_color=bool(os.environ.get("NO_COLOR")))
    except ConfigError as error:
        print(f"page: {error}", file=sys.stderr)
        return 2
    try:
        host, port = _split_addr(args.addr)
        config: dict[str, Any] = {"gatewayUrl": args.gateway_url, "traces": bool(args.traces_url)}
        apis = _mesh_apis(args)
        if args.traces_url and not args.traces_url.startswith(("http://", "https://")):
            raise ValueError(f"--traces-url must be an http:// or https:// URL, got {args.traces_url!r}")
        if args.traces_url:
            from services.page import traces  # imports this module: only once it is loaded

            apis[traces.PREFIX] = traces.trace_route(args.traces_url)
        serve(args.directory, host, port, config, apis)
    except (ValueError, FileNotFoundError) as error:
        print(f"page: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
