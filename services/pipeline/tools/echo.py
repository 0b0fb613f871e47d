"""echo: "ping" answers "pong"; anything else comes back as it was sent."""

from __future__ import annotations

import re
from collections.abc import Mapping

from services.pipeline.tools.base import Tool, ToolContext


async def _echo(input_text: str, _arguments: Mapping[str, object], _context: ToolContext) -> str:
    return "pong" if input_text.strip().lower() == "ping" else input_text


ECHO = Tool(
    name="echo",
    read_only=True,
    description="Answers ping with pong and echoes any other text back; checks the whole chain end to end.",
    run=_echo,
    input_hint="ping, or any text",
    keywords=("ping", "pong", "echo", "repeat", "say", "hello", "test", "alive"),
    input_pattern=re.compile(r"(?i)\s*ping\s*"),
)
