"""Public-safe error text: bad input is quoted as a short escaped prefix, and every message and
ErrorInfo value is bounded, so an error never carries a caller's whole input, never outgrows
gRPC's metadata limits (which would turn one status into another), and never holds a control
character or a line break."""

from __future__ import annotations

MAX_QUOTED_CHARS = 40  # how much of a bad value an error shows
MAX_MESSAGE_CHARS = 300  # a status message, quotes included
MAX_METADATA_CHARS = 100  # one ErrorInfo metadata value
MAX_METADATA_ENTRIES = 8


def quoted(value: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """`value` as a quoted, ASCII-escaped literal of at most `limit` characters of the original,
    with … when it was cut."""
    shown = ascii(value[:limit])
    return shown + "…" if len(value) > limit else shown


def bounded(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` on one line, cut to `limit` characters (… marks the cut)."""
    flat = "".join(char if char.isprintable() else " " for char in text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def bounded_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """ErrorInfo metadata with bounded keys and values, at most a few entries."""
    items = list(metadata.items())[:MAX_METADATA_ENTRIES]
    return {bounded(str(key), 40): bounded(str(value), MAX_METADATA_CHARS) for key, value in items}
