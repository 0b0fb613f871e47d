"""Request checks both services apply before any work: plain Python, raising ValidationError."""

from __future__ import annotations

import re
from collections.abc import Mapping

from services.common.errors import ValidationError
from services.common.messages import quoted

MAX_INPUT_BYTES = 64 * 1024
MAX_ARGUMENTS = 16
MAX_ARGUMENT_BYTES = 4096
TOOL_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
PLATFORM_NAME = re.compile(r"[a-z0-9_]{1,32}")


def check_execute(input_text: str, tool: str, platform: str, arguments: Mapping[str, str]) -> None:
    """Raises ValidationError naming the first field at fault."""
    if not input_text.strip():
        raise ValidationError("input is empty", field="input")
    size = len(input_text.encode("utf-8", "surrogatepass"))
    if size > MAX_INPUT_BYTES:
        raise ValidationError(f"input is {size} bytes; the limit is {MAX_INPUT_BYTES}", field="input")
    if tool and not TOOL_NAME.fullmatch(tool):
        raise ValidationError(
            f"tool name {quoted(tool)} is malformed: expected lowercase letters, digits and _ "
            "(at most 64, starting with a letter)", field="tool")
    if platform and not PLATFORM_NAME.fullmatch(platform):
        raise ValidationError(f"platform {quoted(platform)} is malformed", field="platform")
    if len(arguments) > MAX_ARGUMENTS:
        raise ValidationError(f"{len(arguments)} arguments given; the limit is {MAX_ARGUMENTS}", field="arguments")
    for name, value in arguments.items():
        if not TOOL_NAME.fullmatch(name):
            raise ValidationError(f"argument name {quoted(name)} is malformed", field="arguments")
        if len(value.encode("utf-8", "surrogatepass")) > MAX_ARGUMENT_BYTES:
            raise ValidationError(f"argument {name} is over {MAX_ARGUMENT_BYTES} bytes", field="arguments",
                                  argument=name)

