"""Whether a call is a copy the gateway mirrored to the canary (its reply is discarded), and the
mark the automation passes on to its pipeline so that only read-only tools run from it."""

from __future__ import annotations

from collections.abc import Iterable

from services.common.names import MIRRORED_HEADER

# What the automation adds to its pipeline call when its own call was mirrored.
MARK = ((MIRRORED_HEADER, "1"),)


def is_mirrored(metadata: Iterable[tuple[str, str | bytes]]) -> bool:
    """True when the call carries the gateway's mirror mark (the gateway removes it from every
    caller's request, so a caller cannot set it; set by hand it only narrows what runs)."""
    return any(key == MIRRORED_HEADER for key, _ in metadata)
