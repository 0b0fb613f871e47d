"""Read-only network diagnostics an operator reaches for first: DNS lookup, TCP port check,
HTTP check. Each reaches only allowlisted destinations and reports what it finds as JSON;
a closed port or a missing name is a finding, not an error."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from services.common.errors import ValidationError
from services.pipeline.tools.base import Argument, Tool, ToolContext

_HOST_NAME = re.compile(r"(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9_])?"
                        r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9_])?)*\.?")
_TIMEOUT = Argument("timeout_ms", "give up after this many milliseconds (1-10000)", type="int",
                    default="2000", low=1, high=10_000)
_MAX_BODY_BYTES = 1 << 20


def _report(**fields: object) -> str:
    return json.dumps(fields)


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


async def _dns_lookup(input_text: str, _arguments: Mapping[str, object], context: ToolContext) -> str:
    name = input_text.strip()
    if not _HOST_NAME.fullmatch(name):
        raise ValidationError(f"{name[:60]!r} is not a host name", field="input")
    context.allowlist.check(name)
    start = time.perf_counter()
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return _report(name=name, found=False, error=error.strerror, latency_ms=_elapsed_ms(start))
    addresses = sorted({info[4][0] for info in infos})
    return _report(name=name, found=True, addresses=addresses, latency_ms=_elapsed_ms(start))


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValidationError(f"{text[:60]!r} is not host:port (port 1-65535)", field="input")
    return host, int(port)


async def _tcp_check(input_text: str, arguments: Mapping[str, object], context: ToolContext) -> str:
    host, port = _host_port(input_text)
    context.allowlist.check(host, port)
    timeout_s = int(arguments["timeout_ms"]) / 1000
    start = time.perf_counter()
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except TimeoutError:
        return _report(host=host, port=port, open=False, error=f"no answer within {timeout_s:g} s")
    except OSError as error:
        return _report(host=host, port=port, open=False, error=error.strerror or str(error),
                       latency_ms=_elapsed_ms(start))
    latency = _elapsed_ms(start)
    writer.close()
    return _report(host=host, port=port, open=True, latency_ms=latency)


async def _http_check(input_text: str, arguments: Mapping[str, object], context: ToolContext) -> str:
    url = input_text.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"{url[:80]!r} is not an http:// or https:// URL", field="input")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValidationError(f"{url[:80]!r} has a bad port", field="input") from None
    context.allowlist.check(parts.hostname, port)
    timeout_s = int(arguments["timeout_ms"]) / 1000
    start = time.perf_counter()
    # trust_env=False: a proxy from the environment would send the request somewhere the
    # allowlist never saw. Redirects are reported, not followed, for the same reason.
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
        try:
            async with client.stream("GET", url) as response:
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size >= _MAX_BODY_BYTES:
                        break
        except httpx.TimeoutException:
            return _report(url=url, ok=False, error=f"no answer within {timeout_s:g} s")
        except httpx.HTTPError as error:
            return _report(url=url, ok=False, error=str(error) or type(error).__name__,
                           latency_ms=_elapsed_ms(start))
    return _report(url=url, ok=response.status_code < 400, status=response.status_code,
                   reason=response.reason_phrase, latency_ms=_elapsed_ms(start), bytes=size,
                   location=response.headers.get("location"))


DNS_LOOKUP = Tool(
    name="dns_lookup",
    description="Resolves a host name to its IP addresses (DNS lookup, resolve, nslookup).",
    run=_dns_lookup,
    input_hint="a host name, e.g. localhost",
    keywords=("dns", "lookup", "resolve", "nslookup", "dig", "address", "name", "host", "ip"),
    input_pattern=re.compile(r"(?i)\s*[a-z][a-z0-9-]*(\.[a-z0-9-]+)*\.?\s*"),
)
TCP_CHECK = Tool(
    name="tcp_check",
    description="Checks whether a TCP port is open and how long the connection takes.",
    run=_tcp_check,
    input_hint="host:port, e.g. 127.0.0.1:3000",
    keywords=("tcp", "port", "open", "connect", "listening", "socket", "reachable", "check"),
    input_pattern=re.compile(r"\s*\[?[A-Za-z0-9_.:-]+\]?:\d{1,5}\s*"),
    arguments=(_TIMEOUT,),
)
HTTP_CHECK = Tool(
    name="http_check",
    description="Fetches a URL and reports its HTTP status, latency and size (redirects not followed).",
    run=_http_check,
    input_hint="an http:// or https:// URL",
    keywords=("http", "https", "url", "web", "status", "endpoint", "page", "fetch", "curl", "check"),
    input_pattern=re.compile(r"(?i)\s*https?://\S+\s*"),
    arguments=(_TIMEOUT,),
)
