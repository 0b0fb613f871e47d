"""Serves the built Exec Sandbox page (web_client/dist), with its config.json made from memory.

A small production static server on the standard library: only files under the page's
directory, exact content types, cache headers that suit Vite's hashed assets, ETags, gzip
for text, a Content-Security-Policy that lets the page talk to its gateway and nothing else,
and /healthz for probes. The same build runs everywhere because config.json (the gateway's
URL) is generated per deployment instead of being baked into the bundle.

    python -m services page --directory web_client/dist --addr 127.0.0.1:3100 \\
        --gateway-url http://127.0.0.1:3000
"""

from __future__ import annotations

import argparse
import email.utils
import gzip
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_LOGGER = logging.getLogger(__name__)

CONFIG_PATH = "/config.json"
HEALTH_PATH = "/healthz"
DEFAULT_ADDR = "127.0.0.1:3100"
DEFAULT_GATEWAY_URL = "http://127.0.0.1:3000"

# Exact types rather than mimetypes.guess_type, which reads the host's /etc/mime.types and so
# answers differently from one machine (or container image) to the next.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".wasm": "application/wasm",
}
_DEFAULT_TYPE = "application/octet-stream"
_COMPRESSIBLE = ("text/", "application/json", "image/svg+xml", "application/wasm")
_MIN_GZIP_BYTES = 1024

# Vite names everything under assets/ by content hash, so those never change; the entry
# page and the config must be revalidated on every load or a deploy would not show.
_HASHED_PREFIX = "/assets/"
_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"
_SHORT = "public, max-age=300"
_NO_CACHE_PATHS = frozenset({"/index.html", CONFIG_PATH})

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass(frozen=True)
class _Asset:
    body: bytes
    content_type: str
    etag: str
    last_modified: str
    gzipped: bytes | None  # None when compressing would not pay


def _etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def _make_asset(body: bytes, content_type: str, mtime: float) -> _Asset:
    gzipped = None
    if len(body) >= _MIN_GZIP_BYTES and content_type.startswith(_COMPRESSIBLE):
        packed = gzip.compress(body, compresslevel=6, mtime=0)
        gzipped = packed if len(packed) < len(body) else None
    return _Asset(body, content_type, _etag(body), email.utils.formatdate(mtime, usegmt=True), gzipped)


def content_type_for(path: str) -> str:
    return CONTENT_TYPES.get(Path(path).suffix.lower(), _DEFAULT_TYPE)


def _gateway_origin(config: Mapping[str, Any] | None) -> str | None:
    """scheme://host[:port] of an absolute gatewayUrl; None when it is relative or absent."""
    url = (config or {}).get("gatewayUrl")
    if not isinstance(url, str):
        return None
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def content_security_policy(config: Mapping[str, Any] | None) -> str:
    """Scripts and styles from this origin only; fetches to this origin and the gateway."""
    origin = _gateway_origin(config)
    connect = "'self'" + (f" {origin}" if origin else "")
    return "; ".join((
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        f"connect-src {connect}",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ))


def _validate_config(config: Mapping[str, Any]) -> bytes:
    url = config.get("gatewayUrl")
    if not isinstance(url, str) or not url.strip():
        raise ValueError('config needs a non-empty "gatewayUrl"')
    return (json.dumps(dict(config), indent=2, sort_keys=True) + "\n").encode()


class StaticSite:
    """The files of one directory plus an optional in-memory config.json; thread-safe."""

    def __init__(self, directory: str | os.PathLike[str], config: Mapping[str, Any] | None) -> None:
        self.root = Path(directory).resolve()
        if not (self.root / "index.html").is_file():
            raise FileNotFoundError(f"{self.root} has no index.html (build the page first: npm run build)")
        self.config_asset = None
        if config is not None:
            self.config_asset = _make_asset(_validate_config(config), CONTENT_TYPES[".json"], time.time())
        else:
            config = _read_json(self.root / CONFIG_PATH.lstrip("/"))
        self.csp = content_security_policy(config)
        self._cache: dict[Path, tuple[tuple[int, int], _Asset]] = {}
        self._lock = threading.Lock()

    def lookup(self, url_path: str) -> _Asset | None:
        """The asset for a decoded URL path, or None for anything outside the directory."""
        if url_path == CONFIG_PATH and self.config_asset is not None:
            return self.config_asset
        if url_path.endswith("/"):
            url_path += "index.html"
        parts = [part for part in url_path.split("/") if part]
        # Dot-files (.env, .git, editor droppings) are never part of a built page.
        if not parts or any(part.startswith(".") for part in parts):
            return None
        try:
            path = self.root.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        # resolve() follows symlinks, so this also stops links that point out of the tree.
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        return self._load(path)

    def _load(self, path: Path) -> _Asset | None:
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size)
            with self._lock:
                cached = self._cache.get(path)
            if cached is not None and cached[0] == key:
                return cached[1]
            asset = _make_asset(path.read_bytes(), content_type_for(path.name), stat.st_mtime)
        except OSError:
            return None
        with self._lock:
            self._cache[path] = (key, asset)
        return asset


def _read_json(path: Path) -> Mapping[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def cache_control(url_path: str) -> str:
    if url_path in _NO_CACHE_PATHS or url_path.endswith("/"):
        return _REVALIDATE
    if url_path.startswith(_HASHED_PREFIX):
        return _IMMUTABLE
    return _SHORT


class _Handler(BaseHTTPRequestHandler):
    """GET and HEAD of the site's files; everything else is refused."""

    site: StaticSite  # set on the subclass made for each server
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
        if url_path == "/":
            url_path = "/index.html"
        asset = self.site.lookup(url_path)
        if asset is None:
            self._send_plain(HTTPStatus.NOT_FOUND, "not found\n", send_body=send_body)
            return

        use_gzip = asset.gzipped is not None and _accepts_gzip(self.headers.get("Accept-Encoding", ""))
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
        if _etag_matches(self.headers.get("If-None-Match", ""), etag):
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


def _accepts_gzip(accept_encoding: str) -> bool:
    """Whether Accept-Encoding allows gzip (explicitly or by "*"), honouring q=0."""
    for item in accept_encoding.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        if name.lower() not in ("gzip", "*"):
            continue
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        return quality > 0
    return False


def _etag_matches(if_none_match: str, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    # Weak comparison (RFC 9110 §13.1.2): W/"x" matches "x".
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in candidates


def create_server(directory: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 3100,
                  config: Mapping[str, Any] | None = None) -> ThreadingHTTPServer:
    """A bound server, not yet serving (port 0 picks a free port: see server_address).

    With `config`, /config.json is that mapping as JSON, whatever the directory holds.
    """
    site = StaticSite(directory, config)
    handler = type("StaticHandler", (_Handler,), {"site": site})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True  # a stuck client must not keep the process alive on shutdown
    return server


def serve(directory: str | os.PathLike[str], host: str, port: int, config: Mapping[str, Any] | None) -> None:
    """Serves until SIGTERM or SIGINT (when called on the main thread) or server shutdown."""
    server = create_server(directory, host, port, config)
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
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"), help="LOG_LEVEL, default INFO")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from services.common import logs

    logs.configure(args.log_level, "page")
    try:
        host, port = _split_addr(args.addr)
        serve(args.directory, host, port, {"gatewayUrl": args.gateway_url})
    except (ValueError, FileNotFoundError) as error:
        print(f"page: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
