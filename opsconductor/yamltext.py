"""A tiny YAML writer for generated config files, so rendering needs no YAML library."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

# Keys written bare; anything else (and YAML 1.1 booleans/nulls) is quoted.
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")
_AMBIGUOUS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
# Strings written bare: no leading digit, sign, dot, "%" or "*", no spaces, no trailing colon.
_PLAIN_STRING = re.compile(r"^[A-Za-z_/][A-Za-z0-9_.\-/:@]*(?<!:)$")


class Literal(str):
    """A string written as a `|` block scalar (for example a config file inside a ConfigMap)."""


def dump(value: Mapping[str, Any], header: str = "") -> str:
    """YAML text for a mapping of mappings, lists and scalars; `header` becomes leading comments."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    _emit(value, 0, lines)
    return "\n".join(lines) + "\n"


def dump_all(documents: Sequence[Mapping[str, Any]], header: str = "") -> str:
    """Several documents in one stream (`---` between them), `header` before the first."""
    return "---\n".join(dump(document, header if index == 0 else "") for index, document in enumerate(documents))


def _key(key: str) -> str:
    if _PLAIN_KEY.match(key) and key.lower() not in _AMBIGUOUS:
        return key
    return json.dumps(key)


def _scalar(value: Any) -> str:
    # Anything not plainly a word or a path is written as a JSON string (JSON scalars are
    # valid YAML), which keeps "10s", "on" and "0.0.0.0" strings whatever YAML version the
    # reader assumes.
    if isinstance(value, str) and _PLAIN_STRING.match(value) and value.lower() not in _AMBIGUOUS:
        return value
    if isinstance(value, Mapping) and not value:
        return "{}"
    if isinstance(value, Sequence) and not isinstance(value, str) and not value:
        return "[]"
    if value is None or isinstance(value, bool | int | float | str):
        return json.dumps(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _is_block(value: Any) -> bool:
    if isinstance(value, str):
        return False
    return isinstance(value, Mapping | Sequence) and bool(value)


def _emit(value: Any, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, Literal):
                out.append(f"{pad}{_key(key)}: |")
                out.extend(f"{pad}  {line}".rstrip() for line in item.splitlines())
            elif _is_block(item):
                out.append(f"{pad}{_key(key)}:")
                _emit(item, indent + 1, out)
            else:
                out.append(f"{pad}{_key(key)}: {_scalar(item)}")
        return
    for item in value:
        if _is_block(item):
            nested: list[str] = []
            _emit(item, indent + 1, nested)
            out.append(f"{pad}- {nested[0].lstrip()}")
            out.extend(nested[1:])
        else:
            out.append(f"{pad}- {_scalar(item)}")
