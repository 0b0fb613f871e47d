"""Structured logging: one JSON object per line carrying the current call's trace id, or, for a
person at a terminal, one readable line per record (coloured unless NO_COLOR is set). The same
rendering shows the JSON lines of every component `opsconductor up` streams."""

from __future__ import annotations

import json
import logging
import sys
import zlib
from datetime import datetime
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

from services.common import tracing

LOG_FORMATS = ("auto", "json", "text")
# Fields every record has; the rest are shown as key=value after the message.
_SHOWN_FIRST = ("time", "level", "logger", "message", "service", "component")
_LEVEL_COLOURS = {"DEBUG": "2", "INFO": "32", "WARNING": "33", "ERROR": "1;31", "CRITICAL": "1;31"}
_SOURCE_COLOURS = ("36", "35", "34", "33", "32", "96", "95", "94")
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


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


def use_text(log_format: str, stream: IO) -> bool:
    """Whether `log_format` ("auto", "json", "text") means readable lines on `stream`."""
    return log_format == "text" or (log_format == "auto" and _isatty(stream))


def _isatty(stream: IO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _paint(text: str, code: str, colour: bool) -> str:
    return f"\033[{code}m{text}\033[0m" if colour else text


def source_colour(source: str) -> str:
    """The same colour for a component's name on every line and every run."""
    return _SOURCE_COLOURS[zlib.crc32(source.encode()) % len(_SOURCE_COLOURS)]


def render_text(entry: dict[str, Any], colour: bool, source: str = "", width: int = 0) -> str:
    """One readable line for a JSON log entry: time, level, source, message, key=value…"""
    stamp = str(entry.get("time", ""))
    try:
        stamp = datetime.fromisoformat(stamp).astimezone().strftime("%H:%M:%S.%f")[:-3]
    except ValueError:
        pass
    level = str(entry.get("level", "INFO")).upper()
    source = source or str(entry.get("component") or entry.get("service") or entry.get("logger") or "")
    extras = " ".join(f"{key}={_value(value)}" for key, value in entry.items() if key not in _SHOWN_FIRST)
    parts = [_paint(stamp, "2", colour) if stamp else "",
             _paint(f"{level:<7}", _LEVEL_COLOURS.get(level, "0"), colour),
             _paint(f"{source:<{width}}", source_colour(source), colour) if source else "",
             str(entry.get("message", "")), _paint(extras, "2", colour) if extras else ""]
    return " ".join(part for part in parts if part)


def _value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if not text or any(c.isspace() for c in text) else text


class TextFormatter(logging.Formatter):
    """A record as `render_text` shows it."""

    def __init__(self, service: str, colour: bool) -> None:
        super().__init__()
        self.service, self.colour = service, colour

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"time": datetime.fromtimestamp(record.created).astimezone().isoformat(),
                                 "level": record.levelname, "message": record.getMessage()}
        entry.update({key: value for key, value in record.__dict__.items() if key not in _RESERVED})
        line = render_text(entry, self.colour, source=str(entry.pop("component", "") or self.service))
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def json_formatter(service: str) -> logging.Formatter:
    return JsonFormatter("{levelname}{name}{message}", style="{", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger"}, static_fields={"service": service})


def configure(level: str, service: str, log_format: str = "json", no_color: bool = False,
              stream: IO | None = None) -> None:
    """Sends JSON lines (or readable ones, see `use_text`) to stderr for the whole process."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    text = use_text(log_format, stream)
    handler.setFormatter(TextFormatter(service, colour=not no_color and _isatty(stream)) if text
                         else json_formatter(service))
    handler.addFilter(_TraceIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
