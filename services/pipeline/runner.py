"""Runs a request: the bypass fast path, a named tool, or the selector's choice. Plain Python."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.common.errors import UnknownToolError
from services.pipeline.selector import Selection, Selector
from services.pipeline.tools import Tool, ToolContext

ECHO = "echo"


@dataclass(frozen=True)
class Plan:
    """Which tool will run and how it was chosen: "bypass", "named" or "selected"."""

    tool: Tool
    how: str
    selection: Selection | None = None


class ToolRunner:
    def __init__(self, catalogue: Sequence[Tool], selector: Selector, context: ToolContext, *,
                 bypass_llm: bool, host_platform: str) -> None:
        self._tools = {tool.name: tool for tool in catalogue}
        self.catalogue = tuple(catalogue)
        self._selector = selector
        self._context = context
        self._bypass_llm = bypass_llm
        self.host_platform = host_platform

    def plan(self, text: str, tool_name: str, platform: str) -> Plan:
        """Resolves the tool; raises UnknownToolError (NoMatch when nothing fits)."""
        platform = platform or self.host_platform
        if self._bypass_llm and (tool_name == ECHO or (not tool_name and text.strip().lower() == "ping")):
            return Plan(self._tools[ECHO], "bypass")
        if not tool_name:
            selection = self._selector.select(text, platform)
            return Plan(selection.tool, "selected", selection)
        tool = self._tools.get(tool_name)
        if tool is None:
            raise UnknownToolError(f"tool {tool_name!r} is not in the catalogue (see ListTools)", tool=tool_name)
        if platform not in tool.platforms:
            raise UnknownToolError(f"tool {tool_name!r} does not run on {platform!r} "
                                   f"(it runs on {', '.join(tool.platforms)})", tool=tool_name, platform=platform)
        return Plan(tool, "named")

    async def run(self, plan: Plan, text: str, arguments: Mapping[str, str]) -> str:
        """Checks the arguments, then runs the tool; raises MeshError subclasses."""
        parsed = plan.tool.parse_arguments(arguments)
        return await plan.tool.run(text, parsed, self._context)
