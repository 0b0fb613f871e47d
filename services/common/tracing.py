"""Traces: the call's trace id (it IS its OpenTelemetry trace id), W3C trace-context propagation,
and the OpenTelemetry SDK set up once per service with an export that never holds up a call.

A trace is named by its W3C `traceparent` alone: the gateway starts or continues it, and a call
that arrives without one starts a new trace here. A caller's own `trace_id` field or `x-trace-id`
header never renames the trace (the gateway's span already exists by the time anyone could read
them): when it differs from the trace's id it is kept as the span attribute
`opsconductor.caller_trace_id` and on log lines as `caller_trace_id`, and replies carry the
trace's own id.
"""

from __future__ import annotations

import contextvars
import logging
import re
import secrets
from collections.abc import Iterable, Sequence

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, format_trace_id

TRACE_ID_HEADER = "x-trace-id"
TRACEPARENT_HEADER = "traceparent"
CALLER_TRACE_ID = "opsconductor.caller_trace_id"  # span attribute of a caller-given id

_CALLER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")

_LOGGER = logging.getLogger(__name__)

# The call's ids for log lines, set by the servicer that resolves them (the OpenTelemetry span
# is read first; these hold when the SDK is disabled).
current_trace_id: contextvars.ContextVar[str] = contextvars.ContextVar("trace_id", default="")
current_caller_trace_id: contextvars.ContextVar[str] = contextvars.ContextVar("caller_trace_id", default="")


def is_valid(caller_trace_id: str) -> bool:
    """A caller-given id: 1-64 characters of [A-Za-z0-9._-]."""
    return _CALLER_ID.fullmatch(caller_trace_id) is not None


def new_trace_id() -> str:
    """32 lowercase hex characters, a valid W3C trace id (used only when the SDK is disabled)."""
    return secrets.token_hex(16)


def span_trace_id() -> str:
    """The current span's trace id in W3C form, or "" outside a traced call."""
    context = trace.get_current_span().get_span_context()
    return format_trace_id(context.trace_id) if context.is_valid else ""


def log_trace_id() -> str:
    """What a log line of the current call carries as its trace id."""
    return span_trace_id() or current_trace_id.get()


def from_traceparent(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The trace id of a valid W3C `traceparent` in the metadata, if any."""
    for key, value in metadata:
        if key == TRACEPARENT_HEADER and isinstance(value, str):
            match = _TRACEPARENT.fullmatch(value.strip())
            if match and match.group(1) != "ff" and match.group(2) != "0" * 32:
                return match.group(2)
    return None


def caller_id(field: str, metadata: Iterable[tuple[str, str | bytes]]) -> str:
    """The caller's own id: the request field, else the x-trace-id header ("" when neither)."""
    if field:
        return field
    for key, value in metadata:
        if key == TRACE_ID_HEADER and isinstance(value, str) and is_valid(value):
            return value
    return ""


def resolve(field: str, metadata: Sequence[tuple[str, str | bytes]]) -> tuple[str, str]:
    """(the call's trace id, the caller's differing id or ""), noted on the span and for logs.
    The trace id is the current span's; without the SDK, the traceparent's or a new one."""
    trace_id = span_trace_id() or from_traceparent(metadata) or new_trace_id()
    caller = caller_id(field, metadata)
    # An invalid field is refused by the servicer; it is never logged or put on a span.
    caller = caller if caller != trace_id and is_valid(caller) else ""
    current_trace_id.set(trace_id)
    current_caller_trace_id.set(caller)
    if caller:
        trace.get_current_span().set_attribute(CALLER_TRACE_ID, caller)
    return trace_id, caller


def sampled() -> bool:
    """Whether the current call's spans are recorded (always true without the SDK, whose ids
    are then only in logs): an exemplar should point at a trace a backend can show."""
    context = trace.get_current_span().get_span_context()
    return not context.is_valid or context.trace_flags.sampled


def outgoing_metadata(trace_id: str) -> tuple[tuple[str, str], ...]:
    """Metadata that carries the trace to the next hop. With the SDK the client interceptor
    injects the span's own traceparent; without it this makes one with the same trace id."""
    if span_trace_id():
        return ()
    return ((TRACEPARENT_HEADER, f"00-{trace_id}-{secrets.token_hex(8)}-00"),)


def record_failure(reason: str, message: str = "") -> None:
    """Marks the current span failed with an ErrorInfo reason (`error.type`, as semconv names it)."""
    span: Span = trace.get_current_span()
    span.set_attribute("error.type", reason)
    span.set_status(Status(StatusCode.ERROR, message or reason))
