"""The one strict number parser for what callers send (tool arguments, ports, numbers in an
input): ASCII digits only, a length bound, no sign games. Python's int() would take Arabic-Indic
or full-width digits, underscores and spaces, and refuses more than 4,300 digits with an error
of its own; str.isdigit() is true for superscripts int() rejects."""

from __future__ import annotations

import re

MAX_DIGITS = 12
_INTEGER = re.compile(rf"-?[0-9]{{1,{MAX_DIGITS}}}", re.ASCII)
_DECIMAL = re.compile(rf"-?[0-9]{{1,{MAX_DIGITS}}}(?:\.[0-9]{{1,{MAX_DIGITS}}})?", re.ASCII)


def strict_int(text: str) -> int | None:
    """The integer `text` spells ("-12", "0042"), or None unless it is at most MAX_DIGITS ASCII
    digits with an optional leading minus and nothing else."""
    if _INTEGER.fullmatch(text) is None:
        return None
    return int(text)


def strict_float(text: str) -> float | None:
    """Like strict_int, with an optional fraction ("1.5"); no exponent, inf or nan."""
    if _DECIMAL.fullmatch(text) is None:
        return None
    return float(text)


def strict_port(text: str) -> int | None:
    """A TCP port 1-65535 written as plain ASCII digits, else None."""
    value = strict_int(text) if text[:1] != "-" else None
    return value if value is not None and 1 <= value <= 65535 else None
