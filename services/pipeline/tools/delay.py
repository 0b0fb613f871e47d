"""delay: waits a given time, cancellably; for deadline, load and drain tests."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping

from services.common.errors import ValidationError
from services.common.messages import quoted
from services.common.numbers import strict_int
from services.pipeline.tools.base import Argument, Tool, ToolContext

MAX_DELAY_MS = 60_000
# The first number in the input, ASCII digits with their sign (then refused as out of range).
_NUMBER = re.compile(r"-?[0-9]+", re.ASCII)


async def _delay(input_text: str, arguments: Mapping[str, object], _context: ToolContext) -> str:
    milliseconds = arguments.get("ms")
    if milliseconds is None:
        # "delay 250" reads naturally: take the first number in the input when ms is not given.
        number = _NUMBER.search(input_text)
        milliseconds = strict_int(number.group()) if number else 1000
        if milliseconds is None:
            raise ValidationError(f"delay must be between 0 and {MAX_DELAY_MS} ms, not {quoted(number.group())}",
                                  field="input")
    if not 0 <= int(milliseconds) <= MAX_DELAY_MS:
        raise ValidationError(f"delay must be between 0 and {MAX_DELAY_MS} ms, not {quoted(str(milliseconds))}",
                              argument="ms")
    await asyncio.sleep(int(milliseconds) / 1000)  # cancelled with the call
    return f"slept {int(milliseconds)} ms"


DELAY = Tool(
    name="delay",
    read_only=True,
    description="Sleeps for the given number of milliseconds, then answers; cancelled with the call.",
    run=_delay,
    input_hint="any text; the first number is the delay in ms when the ms argument is absent",
    keywords=("delay", "sleep", "wait", "pause", "slow", "ms", "milliseconds", "seconds"),
    input_pattern=re.compile(r"(?i)\s*(delay|sleep|wait)\b.*"),
    arguments=(Argument("ms", f"time to sleep in milliseconds (0-{MAX_DELAY_MS})", type="int",
                        low=0, high=MAX_DELAY_MS),),
    waits=True,
)
