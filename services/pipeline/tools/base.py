"""What a tool is: its description, its arguments and how they are checked. Plain Python."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from services.common.errors import ValidationError
from services.common.messages import quoted
from services.common.numbers import strict_float, strict_int
from services.pipeline.egress import Egress

# How each argument type is read from its string: numbers by the one strict parser (None: not one).
ARGUMENT_TYPES: dict[str, Callable[[str], int | float | str | None]] = {
    "int": strict_int, "float": strict_float, "string": str}


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
        value = ARGUMENT_TYPES[self.type](raw)
        if value is None:
            kind = "an integer" if self.type == "int" else "a number"
            raise ValidationError(f"argument {self.name} must be {kind} in plain digits, not {quoted(raw)}",
                                  argument=self.name)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise ValidationError(f"argument {self.name} must be between {self.low:g} and {self.high:g}, "
                                  f"not {quoted(raw)}", argument=self.name)
        return value


@dataclass(frozen=True)
class ToolContext:
    """What a running tool may use from its host, and the time its call has left."""

    egress: Egress
    # Seconds the call has left when the tool starts (None: no deadline). The network tools end
    # every wait within it, so they report what they found before their caller gives up.
    time_left_s: float | None = None

    def budget(self, wanted_s: float) -> float:
        """`wanted_s`, shortened to end a little before the call's deadline."""
        if self.time_left_s is None:
            return wanted_s
        return max(0.0, min(wanted_s, self.time_left_s * 0.9 - 0.005))


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
    # A tool that waits (on a timer or the network) holds its call for a while: such runs share
    # a bounded number of places per process, so they cannot crowd out the quick ones.
    waits: bool = False
    # Only reads (a diagnostic): changes nothing on the host or elsewhere. Only such tools run
    # from a call the gateway mirrored to the canary; a tool must say so to be one.
    read_only: bool = False

    def parse_arguments(self, given: Mapping[str, str]) -> dict[str, object]:
        """Checks names, types, bounds and required arguments; fills in defaults."""
        known = {argument.name: argument for argument in self.arguments}
        unknown = sorted(set(given) - set(known))
        if unknown:
            accepted = ", ".join(known) or "none"
            raise ValidationError(f"tool {self.name} takes no argument {quoted(unknown[0])} (accepted: {accepted})",
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
