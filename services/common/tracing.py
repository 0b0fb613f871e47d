"""Trace ids: validation, creation, extraction from metadata, W3C traceparent, and the
context variable that puts the current call's trace id on every log line."""

from __future__ import annotations

import contextvars
import hashlib
import re
import secrets
from collections.abc import Iterable

TRACE_ID_HEADER = "x-trace-id"
TRACEPARENT_HEADER = "traceparent"

_TRACE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_W3C_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")

current_trace_id: contextvars.ContextVar[str] = contextvars.ContextVar("trace_id", default="")


def is_valid(trace_id: str) -> bool:
    """1-64 characters of [A-Za-z0-9._-]."""
    return _TRACE_ID.fullmatch(trace_id) is not None


def new_trace_id() -> str:
    """32 lowercase hex characters, usable as a W3C trace id."""
    return secrets.token_hex(16)


def from_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The trace id in `x-trace-id`, else in a W3C `traceparent`; invalid values are ignored."""
    headers = {key: value for key, value in metadata if isinstance(value, str)}
    candidate = headers.get(TRACE_ID_HEADER, "")
    if is_valid(candidate):
        return candidate
    match = _TRACEPARENT.fullmatch(headers.get(TRACEPARENT_HEADER, "").strip())
    if match and match.group(1) != "ff" and match.group(2) != "0" * 32:
        return match.group(2)
    return None


def traceparent(trace_id: str) -> str:
    """A W3C traceparent for `trace_id`. Ids that are not already W3C trace ids are hashed to
    one, so the same id always maps to the same W3C trace."""
    w3c_id = trace_id if _W3C_TRACE_ID.fullmatch(trace_id) and trace_id != "0" * 32 else (
        hashlib.blake2b(trace_id.encode(), digest_size=16).hexdigest()
    )
    return f"00-{w3c_id}-{secrets.token_hex(8)}-01"
