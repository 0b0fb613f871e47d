"""Read-only network diagnostics an operator reaches for first: DNS lookup and TCP port check
(http_check.py holds the HTTP check). Each reaches only what egress.py allows, within a time
budget that ends before its call's deadline, and reports what it finds as JSON: a closed port
or a missing name is a finding, not an error."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping

from services.common.errors import ValidationError
from services.common.messages import bounded, quoted
from services.common.numbers import strict_port
from services.pipeline.egress import Destination, Host, LookupFailed, parse_host
from services.pipeline.tools.base import Argument, Tool, ToolContext

TIMEOUT = Argument("timeout_ms", "give up after this many milliseconds (1-10000; never past the call's deadline)",
                   type="int", default="2000", low=1, high=10_000)


def report(**fields: object) -> str:
    return json.dumps(fields)


def elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def time_budget(arguments: Mapping[str, object], context: ToolContext) -> float:
    """The tool's whole time, lookups included: timeout_ms, ended before the call's deadline."""
    return context.budget(int(arguments["timeout_ms"]) / 1000)


def host_port(text: str, field: str = "input") -> tuple[Host, int]:
    """'host:port' or '[v6]:port' → (host, port); a ValidationError names what is wrong."""
    host_text, sep, port_text = text.rpartition(":")
    port = strict_port(port_text) if sep else None
    if port is None or not host_text:
        raise ValidationError(f"{quoted(text)} is not host:port (port 1-65535 in plain digits)", field=field)
    if ":" in host_text and not host_text.startswith("["):
        raise ValidationError(f"{quoted(text)}: write an IPv6 address in brackets, as [::1]:{port}", field=field)
    return parse_host(host_text, field), port


async def open_to(destination: Destination) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the first checked address that accepts one. Only address literals are
    passed on, so nothing below resolves a name again."""
    failure: OSError | None = None
    for address in destination.addresses:
        try:
            return await asyncio.open_connection(str(address), destination.port)
        except OSError as error:
            failure = error
    assert failure is not None
    raise failure


async def _dns_lookup(input_text: str, arguments: Mapping[str, object], context: ToolContext) -> str:
    host = parse_host(input_text.strip())
    if host.name is None:
        raise ValidationError(f"{quoted(input_text.strip())} is an address, not a host name", field="input")
    budget = time_budget(arguments, context)
    start = time.perf_counter()
    try:
        addresses = await context.egress.lookup(host, budget)
    except LookupFailed as failure:
        return report(name=host.name, found=False, error=failure.reason, latency_ms=elapsed_ms(start))
    return report(name=host.name, found=True, addresses=sorted(str(address) for address in addresses),
                  latency_ms=elapsed_ms(start))


async def _tcp_check(input_text: str, arguments: Mapping[str, object], context: ToolContext) -> str:
    host, port = host_port(input_text.strip())
    budget = time_budget(arguments, context)
    start = time.perf_counter()
    try:
        async with asyncio.timeout(budget):
            destination = await context.egress.destination(host, port, budget)
            _reader, writer = await open_to(destination)
    except LookupFailed as failure:
        return report(host=host.text, port=port, open=False, error=failure.reason, latency_ms=elapsed_ms(start))
    except TimeoutError:
        return report(host=host.text, port=port, open=False, error=f"no answer within {budget:.3g} s")
    except OSError as error:
        return report(host=host.text, port=port, open=False, error=bounded(error.strerror or "connection failed", 80),
                      latency_ms=elapsed_ms(start))
    latency = elapsed_ms(start)
    writer.close()
    return report(host=host.text, port=port, open=True, latency_ms=latency)


DNS_LOOKUP = Tool(
    name="dns_lookup",
    read_only=True,
    description="Resolves a host name to its IP addresses (DNS lookup, resolve, nslookup).",
    run=_dns_lookup,
    input_hint="a host name, e.g. localhost",
    keywords=("dns", "lookup", "resolve", "nslookup", "dig", "address", "name", "host", "ip"),
    input_pattern=re.compile(r"(?i)\s*[a-z][a-z0-9-]*(\.[a-z0-9-]+)*\.?\s*"),
    arguments=(TIMEOUT,),
    waits=True,
)
TCP_CHECK = Tool(
    name="tcp_check",
    read_only=True,
    description="Checks whether a TCP port is open and how long the connection takes.",
    run=_tcp_check,
    input_hint="host:port, e.g. 127.0.0.1:3000",
    keywords=("tcp", "port", "open", "connect", "listening", "socket", "reachable", "check"),
    input_pattern=re.compile(r"\s*\[?[A-Za-z0-9_.:-]+\]?:\d{1,5}\s*"),
    arguments=(TIMEOUT,),
    waits=True,
)
