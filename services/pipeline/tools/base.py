"""What a tool is: its description, its arguments and how they are checked. Plain Python."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from services.common.errors import ValidationError
from services.pipeline.allowlist import Allowlist

ARGUMENT_TYPES = {"int": int, "float": float, "string": str}


@dataclass(frozen=True)
class Argument:
    """One named argument; `low`/`high` bound numbers."""

    name: str
    description: str
    type: str = "string"
    required: bool = False
    default: str = ""
    low: float | None = None
    high: float | None = None

    def parse(self, raw: str) -> int | float | str:
        try:
            value = ARGUMENT_TYPES[self.type](raw)
        except ValueError:
            raise ValidationError(f"argument {self.name} must be {'an' if self.type == 'int' else 'a'} "
                                  f"{self.type}, not {raw[:40]!r}", argument=self.name) from None
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise ValidationError(f"argument {self.name} must be between {self.low:g} and {self.high:g}, "
                                  f"not {raw}", argument=self.name)
        return value


@dataclass(frozen=True)
class ToolContext:
    """What a running tool may use from its host."""

    allowlist: Allowlist


ToolFunction = Callable[[str, Mapping[str, object], ToolContext], Awaitable[str]]


@dataclass(frozen=True)
class Tool:
    """A catalogue entry. `keywords` and `input_pattern` feed the selector."""

    name: str
    description: str
    run: ToolFunction
    input_hint: str
    keywords: tuple[str, ...] = ()
    input_pattern: re.Pattern[str] | None = None
    platforms: tuple[str, ...] = ("linux", "darwin")
    arguments: tuple[Argument, ...] = field(default_factory=tuple)

    def parse_arguments(self, given: Mapping[str, str]) -> dict[str, object]:
        """Checks names, types, bounds and required arguments; fills in defaults."""
        known = {argument.name: argument for argument in self.arguments}
        unknown = sorted(set(given) - set(known))
        if unknown:
            accepted = ", ".join(known) or "none"
            raise ValidationError(f"tool {self.name} takes no argument {unknown[0]!r} (accepted: {accepted})",
                                  argument=unknown[0])
        parsed: dict[str, object] = {}
        for argument in self.arguments:
            if argument.name in given:
                parsed[argument.name] = argument.parse(given[argument.name])
            elif argument.required:
                raise ValidationError(f"tool {self.name} needs argument {argument.name!r}", argument=argument.name)
            elif argument.default:
                parsed[argument.name] = argument.parse(argument.default)
        return parsed
