"""The page's trace lookup: GET /api/traces/<trace id> answers that call's waterfall, fetched by
this server from the trace store's query API, so the browser never talks to the store (which
has no CORS policy, and need not be reachable from outside the host)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

from services.page.server import ApiReply, ApiRoute

PREFIX = "/api/traces/"
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_TIMEOUT_S = 3.0
_MAX_BYTES = 4 << 20  # a waterfall of the store's largest answer (1,000 spans) fits well within


def trace_route(store_url: str) -> ApiRoute:
    """The route serving PREFIX from the store at `store_url` (http://HOST:PORT)."""
    base = store_url.rstrip("/")

    def route(method: str, path: str, headers: Mapping[str, str]) -> ApiReply:
        trace_id = urllib.parse.urlsplit(path).path.removeprefix(PREFIX)
        if not _TRACE_ID.fullmatch(trace_id):
            return _error(400, "a trace id is 32 lowercase hex characters")
        try:
            with urllib.request.urlopen(f"{base}/v1/traces/{trace_id}", timeout=_TIMEOUT_S) as response:
                return ApiReply(200, response.read(_MAX_BYTES))
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return _error(404, "no spans of this trace in the store (yet, or it was not sampled)")
            return _error(502, f"the trace store answered HTTP {error.code}")
        except (OSError, ValueError):
            return _error(503, "the trace store does not answer")

    return route


def _error(status: int, message: str) -> ApiReply:
    return ApiReply(status, json.dumps({"error": message}).encode())
