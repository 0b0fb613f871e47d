"""The built page's files as the page server serves them: exact content types, cache headers
that suit Vite's hashed assets, ETags, gzip for text, and a Content-Security-Policy that lets
the page talk to its gateway and nothing else. The same build runs everywhere because
config.json (the gateway's URL) is made per deployment instead of being baked into the bundle."""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_PATH = "/config.json"

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
_NO_CACHE_PATHS = frozenset({"/index.html", "/mesh.html", CONFIG_PATH})


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


def accepts_gzip(accept_encoding: str) -> bool:
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


def etag_matches(if_none_match: str, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    # Weak comparison (RFC 9110 §13.1.2): W/"x" matches "x".
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in candidates
