"""Structured logging: one JSON object per line, carrying the current call's trace id."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from services.common import tracing


class _TraceIdFilter(logging.Filter):
    """Adds the trace id of the call being served (if any) to every record, and the caller's own
    id when it sent one that differs."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace_id = tracing.log_trace_id()
        if trace_id and not hasattr(record, "trace_id"):
            record.trace_id = trace_id
        caller = tracing.current_caller_trace_id.get()
        if caller and not hasattr(record, "caller_trace_id"):
            record.caller_trace_id = caller
        return True


def configure(level: str, service: str) -> None:
    """Sends JSON lines to stderr for the whole process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            timestamp="time",
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    handler.addFilter(_TraceIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
