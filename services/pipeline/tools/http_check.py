"""http_check: fetches a URL and reports its status, latency and size. The host is checked and
resolved once by egress.py and the request goes to exactly that address (the original name
stays in the Host header and TLS SNI); one time budget covers the lookup, the connection, the
headers and the body; the body is read within caps (http_body.py); redirects are reported,
not followed, and the Location shown loses its query string, which may hold a secret."""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

import httpx

from services.common.errors import ValidationError
from services.common.messages import bounded, quoted
from services.common.numbers import strict_port
from services.pipeline.egress import Host, LookupFailed, parse_host
from services.pipeline.tools.base import Tool, ToolContext
from services.pipeline.tools.http_body import Body, read_body
from services.pipeline.tools.network import TIMEOUT, elapsed_ms, report, time_budget

_URL = re.compile(r"(?i)(https?)://([^/?#]*)([^#]*)(#.*)?")
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+", re.ASCII)
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Target:
    scheme: str
    host: Host
    port: int
    authority: str  # host[:port] as it goes in the Host header
    path: str  # path and query, as sent

    @property
    def shown(self) -> str:
        """The URL without its query string, for the report."""
        return bounded(f"{self.scheme}://{self.authority}{self.path.split('?', 1)[0]}", 200)


def parse_url(text: str) -> Target:
    """An http:// or https:// URL of visible ASCII with no userinfo; the port in plain digits."""
    shown = quoted(text.split("?", 1)[0])  # a query string may hold a secret: never echoed
    match = _URL.fullmatch(text) if _VISIBLE_ASCII.fullmatch(text) else None
    if match is None:
        raise ValidationError(f"{shown} is not an http:// or https:// URL (visible ASCII only)", field="input")
    scheme, authority, path = match.group(1).lower(), match.group(2), match.group(3) or "/"
    if "@" in authority:
        raise ValidationError("URLs with a user name or password are refused", field="input")
    host_text, port = authority, _DEFAULT_PORTS[scheme]
    if not authority.endswith("]") and ":" in authority:
        host_text, _, port_text = authority.rpartition(":")
        parsed_port = strict_port(port_text)
        if parsed_port is None:
            raise ValidationError(f"{shown}: the port must be 1-65535 in plain digits", field="input")
        port = parsed_port
    if not host_text:
        raise ValidationError(f"{shown} has no host", field="input")
    host = parse_host(host_text)
    if not path.startswith("/"):
        path = "/" + path
    return Target(scheme, host, port, authority.lower(), path)


@cache
def _tls_context() -> ssl.SSLContext:
    # Made once: loading the CA bundle per check costs milliseconds of CPU.
    return httpx.create_ssl_context()


def public_location(location: str | None) -> str | None:
    """A redirect's target without userinfo, query or fragment, bounded."""
    if location is None:
        return None
    try:
        parts = urlsplit(location)
        netloc = parts.hostname or ""
        if parts.port is not None:
            netloc += f":{parts.port}"
    except ValueError:
        return "(not a URL)"
    prefix = f"{parts.scheme}://{netloc}" if parts.scheme and netloc else ""
    return bounded(prefix + parts.path, 200)


async def _http_check(input_text: str, arguments: Mapping[str, object], context: ToolContext) -> str:
    target = parse_url(input_text.strip())
    budget = time_budget(arguments, context)
    start = time.perf_counter()
    body = Body()
    answer: dict[str, object] = {}
    try:
        async with asyncio.timeout(budget):
            destination = await context.egress.destination(target.host, target.port, budget)
            await _fetch(target, destination.addresses, body, answer, start)
    except LookupFailed as failure:
        return report(url=target.shown, ok=False, error=failure.reason, latency_ms=elapsed_ms(start))
    except TimeoutError:
        what = "the whole response" if answer else "an answer"
        return report(url=target.shown, ok=False, error=f"no {what} within {budget:.3g} s", **answer,
                      bytes=body.raw_bytes, decoded_bytes=body.decoded_bytes)
    except httpx.HTTPError as error:
        return report(url=target.shown, ok=False, error=bounded(str(error) or type(error).__name__, 120),
                      latency_ms=elapsed_ms(start))
    status = int(answer["status"])  # type: ignore[call-overload]
    return report(url=target.shown, ok=status < 400, **answer, bytes=body.raw_bytes,
                  decoded_bytes=body.decoded_bytes, truncated=body.truncated)


async def _fetch(target: Target, addresses, body: Body, answer: dict[str, object], start: float) -> None:
    headers = {"Host": target.authority, "Accept-Encoding": "gzip, deflate", "User-Agent": "opsconductor-http-check"}
    extensions = {"sni_hostname": target.host.name} if target.scheme == "https" and target.host.name else {}
    # trust_env=False: a proxy from the environment would send the request somewhere the
    # allowlist never saw. Redirects are reported, not followed, for the same reason.
    async with httpx.AsyncClient(verify=_tls_context(), follow_redirects=False, trust_env=False,
                                 timeout=None) as client:
        for index, address in enumerate(addresses):
            literal = f"[{address}]" if address.version == 6 else str(address)
            request = client.build_request("GET", f"{target.scheme}://{literal}:{target.port}{target.path}",
                                           headers=headers, extensions=extensions)
            try:
                response = await client.send(request, stream=True)
            except httpx.ConnectError:
                if index == len(addresses) - 1:
                    raise
                continue
            try:
                answer.update(status=response.status_code, reason=bounded(response.reason_phrase, 80),
                              latency_ms=elapsed_ms(start),
                              location=public_location(response.headers.get("location")))
                await read_body(response.aiter_raw(), response.headers.get("content-encoding", ""), body)
            finally:
                await response.aclose()
            return


HTTP_CHECK = Tool(
    name="http_check",
    read_only=True,
    description="Fetches a URL and reports its HTTP status, latency and size (redirects not followed).",
    run=_http_check,
    input_hint="an http:// or https:// URL",
    keywords=("http", "https", "url", "web", "status", "endpoint", "page", "fetch", "curl", "check"),
    input_pattern=re.compile(r"(?i)\s*https?://\S+\s*"),
    arguments=(TIMEOUT,),
    waits=True,
)
