"""Runs a request: the bypass fast path, a named tool, or the selector's choice. Plain Python."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from services.common.config import DEFAULT_TOOL_MAX_WAITING
from services.common.errors import UnknownToolError
from services.common.lanes import Lane
from services.common.messages import quoted
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
                 bypass_llm: bool, host_platform: str, max_waiting: int = DEFAULT_TOOL_MAX_WAITING) -> None:
        self._tools = {tool.name: tool for tool in catalogue}
        self.catalogue = tuple(catalogue)
        self._selector = selector
        self._context = context
        self._bypass_llm = bypass_llm
        self.host_platform = host_platform
        # Runs of tools that wait hold their call for up to seconds; they share this lane, so
        # that a caller holding many cannot crowd out the quick tools.
        self.waiting = Lane("tool runs that wait (delay, dns_lookup, tcp_check, http_check)", max_waiting)

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
            raise UnknownToolError(f"tool {quoted(tool_name)} is not in the catalogue (see ListTools)", tool=tool_name)
        if platform not in tool.platforms:
            raise UnknownToolError(f"tool {tool_name!r} does not run on {quoted(platform)} "
                                   f"(it runs on {', '.join(tool.platforms)})", tool=tool_name, platform=platform)
        return Plan(tool, "named")

    async def run(self, plan: Plan, text: str, arguments: Mapping[str, str], time_left_s: float | None = None) -> str:
        """Checks the arguments, then runs the tool within the call's `time_left_s`; raises
        MeshError subclasses (OverloadedError when the tool waits and its lane is full)."""
        parsed = plan.tool.parse_arguments(arguments)
        if not plan.tool.waits:  # the quick tools need neither a place nor the call's deadline
            return await plan.tool.run(text, parsed, self._context)
        context = self._context if time_left_s is None else replace(self._context, time_left_s=time_left_s)
        with self.waiting.place():
            return await plan.tool.run(text, parsed, context)
