"""The tool catalogue: real, safe, read-only tools. Plain Python, no grpc."""

from __future__ import annotations

from services.pipeline.tools.base import Argument, Tool, ToolContext
from services.pipeline.tools.delay import DELAY
from services.pipeline.tools.echo import ECHO
from services.pipeline.tools.http_check import HTTP_CHECK
from services.pipeline.tools.network import DNS_LOOKUP, TCP_CHECK

# Catalogue order is the selector's tie-break: simpler tools first.
CATALOGUE: tuple[Tool, ...] = (ECHO, DELAY, DNS_LOOKUP, TCP_CHECK, HTTP_CHECK)

__all__ = ["CATALOGUE", "Argument", "Tool", "ToolContext"]
