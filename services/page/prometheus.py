"""The page's only way to Prometheus: a read-only forwarder of five API reads (query,
query_range, query_exemplars, rules, alerts), GET only, known parameters only, with a deadline
and a size bound on the answer. Everything else (the admin API, federation, remote write, the
UI, other methods) is refused here, so the browser never reaches Prometheus itself.

Errors come back in Prometheus's own shape ({"status": "error", "errorType", "error"}), so the
view tells "timed out" (504), "unreachable" (502) and "not configured" (503) apart."""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

from services.page.server import ApiReply, ApiRoute

_LOGGER = logging.getLogger(__name__)

PREFIX = "/api/prometheus"
# Path under /api/v1 -> the query parameters the view may send to it.
ENDPOINTS: Mapping[str, frozenset[str]] = {
    "/api/v1/query": frozenset({"query", "time"}),
    "/api/v1/query_range": frozenset({"query", "start", "end", "step"}),
    "/api/v1/query_exemplars": frozenset({"query", "start", "end"}),
    "/api/v1/rules": frozenset({"type"}),
    "/api/v1/alerts": frozenset(),
}
# Prometheus stops evaluating a query at its own `timeout` parameter: give it ours.
_TIMED = frozenset({"/api/v1/query", "/api/v1/query_range"})
MAX_QUERY_STRING = 8192
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_CHUNK = 64 * 1024


def _error(status: int, kind: str, message: str, headers: Mapping[str, str] | None = None) -> ApiReply:
    body = json.dumps({"status": "error", "errorType": kind, "error": message}).encode()
    return ApiReply(status, body, headers=dict(headers or {}))


def prometheus_route(base_url: str, timeout_s: float = 10.0, max_bytes: int = MAX_RESPONSE_BYTES) -> ApiRoute:
    """The route to mount at PREFIX; with no base_url every read answers 503."""
    base_url = base_url.rstrip("/")

    def route(method: str, path: str, _headers: Mapping[str, str]) -> ApiReply:
        if method != "GET":
            return _error(405, "method_not_allowed", "only GET reads are forwarded", {"Allow": "GET"})
        parts = urllib.parse.urlsplit(path)
        endpoint = parts.path.removeprefix(PREFIX)
        if endpoint not in ENDPOINTS:
            return _error(404, "not_allowed", f"only {', '.join(sorted(ENDPOINTS))} are forwarded")
        if len(parts.query) > MAX_QUERY_STRING:
            return _error(414, "bad_data", f"query string over {MAX_QUERY_STRING} bytes")
        try:
            pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query),
                                           errors="strict")
        except (ValueError, UnicodeDecodeError):
            return _error(400, "bad_data", "malformed query string")
        names = [name for name, _ in pairs]
        unknown = sorted(set(names) - ENDPOINTS[endpoint])
        if unknown or len(names) != len(set(names)):
            allowed = ", ".join(sorted(ENDPOINTS[endpoint])) or "none"
            return _error(400, "bad_data", f"parameters allowed for {endpoint}: {allowed} (each once)")
        if not base_url:
            return _error(503, "unavailable", "no Prometheus is configured for this page (PROMETHEUS_URL)")
        if endpoint in _TIMED:
            pairs.append(("timeout", f"{timeout_s:g}s"))
        return _forward(f"{base_url}{endpoint}?{urllib.parse.urlencode(pairs)}", timeout_s, max_bytes)

    return route


def _forward(url: str, timeout_s: float, max_bytes: int) -> ApiReply:
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return ApiReply(response.status, _read_bounded(response, deadline, max_bytes))
    except urllib.error.HTTPError as error:
        # Prometheus's own refusals (a bad query: 400; a failed evaluation: 422; overloaded: 503)
        # are JSON the view shows as they are; anything bigger than an error has no business here.
        try:
            body = _read_bounded(error, deadline, 64 * 1024)
        except _TooLarge:
            body = b""
        status = error.code if error.code in (400, 422, 503) else 502
        if not body.startswith(b"{"):
            return _error(status, "upstream", f"Prometheus answered HTTP {error.code}")
        return ApiReply(status, body)
    except _TooLarge:
        return _error(502, "too_large", f"Prometheus's answer is over {max_bytes} bytes: narrow the query")
    except (TimeoutError, socket.timeout):
        return _error(504, "timeout", f"Prometheus did not answer within {timeout_s:g} s")
    except urllib.error.URLError as error:
        if isinstance(error.reason, (TimeoutError, socket.timeout)):
            return _error(504, "timeout", f"Prometheus did not answer within {timeout_s:g} s")
        _LOGGER.warning("Prometheus unreachable: %s", error.reason)
        return _error(502, "unavailable", "Prometheus is not reachable")
    except OSError as error:
        _LOGGER.warning("Prometheus read failed: %s", error)
        return _error(502, "unavailable", "Prometheus is not reachable")


class _TooLarge(Exception):
    pass


def _read_bounded(response, deadline: float, max_bytes: int) -> bytes:
    """The body, or _TooLarge past max_bytes, or TimeoutError past the deadline (a server that
    trickles bytes would otherwise reset the socket timeout forever)."""
    chunks, size = [], 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError
        chunk = response.read(_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise _TooLarge
        chunks.append(chunk)
