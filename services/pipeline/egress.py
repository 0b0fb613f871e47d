"""Where a network tool may connect, decided once: the destination is parsed strictly, a name
is resolved once (resolver.py) and every address checked against the allowlist and the mesh's
own ports; the tool then connects to exactly those addresses, never to a name that something
else would resolve again. (A check on the name followed by a second lookup in a client library
is the DNS-rebinding hole: the second answer is whatever DNS says then.) Plain Python; the
destination it checked goes on the tool's span, if one records."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry import trace

from services.common.errors import DestinationDeniedError, ValidationError
from services.common.messages import quoted
from services.pipeline.allowlist import Allowlist, IPAddress, normalized_name
from services.pipeline.resolver import LookupFailed, Resolver

# RFC 1123 labels (underscores too, as in service records), at most 253 characters, ASCII only.
_HOST_NAME = re.compile(r"(?=[A-Za-z0-9_.-]{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9_])?"
                        r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9_])?)*\.?", re.ASCII)


@dataclass(frozen=True)
class Host:
    """A destination host as written: an address literal, or a normalized host name."""

    name: str | None  # lowercase, no trailing dot; None for an address literal
    address: IPAddress | None

    @property
    def text(self) -> str:
        """How to show it, and what a Host header or TLS SNI names."""
        return self.name if self.name is not None else str(self.address)


@dataclass(frozen=True)
class Destination:
    """Checked addresses for one host and port: connect to these, in this order, and no other."""

    host: Host
    port: int
    addresses: tuple[IPAddress, ...]


def parse_host(text: str, field: str = "input") -> Host:
    """An IPv4 or IPv6 address in its standard form (brackets allowed around IPv6), or a host
    name; anything else (other spellings of numbers, non-ASCII, userinfo) is a ValidationError."""
    bracketed = text.startswith("[") and text.endswith("]")
    bare = text[1:-1] if bracketed else text
    if "%" not in bare:  # no IPv6 zone ids: an interface name is not a destination
        try:
            address = ipaddress.ip_address(bare)
        except ValueError:
            pass
        else:
            if not bracketed or address.version == 6:
                return Host(None, address)
    if bracketed or not _HOST_NAME.fullmatch(text):
        raise ValidationError(f"{quoted(text)} is not a host name or IP address", field=field)
    return Host(normalized_name(text), None)


class Egress:
    """The one way the network tools reach the network."""

    def __init__(self, allowlist: Allowlist, resolver: Resolver | None, mesh_ports: Iterable[int] = ()) -> None:
        self.allowlist = allowlist
        self._resolver = resolver
        self.mesh_ports = frozenset(mesh_ports)

    async def lookup(self, host: Host, timeout_s: float) -> tuple[IPAddress, ...]:
        """Every address of a listed name (for dns_lookup: nothing is connected to); raises
        DestinationDeniedError for a name not listed, LookupFailed when it does not resolve."""
        if host.address is not None:
            return (host.address,)
        try:
            self._check_name(host)
        except DestinationDeniedError:
            _note(host, None, (), allowed=False)
            raise
        _note(host, None, (), allowed=True)
        return await self._resolve(host, timeout_s)

    async def destination(self, host: Host, port: int, timeout_s: float) -> Destination:
        """The addresses a tool may connect to for `host`:`port`; raises DestinationDeniedError
        when there are none, LookupFailed when a listed name does not resolve."""
        try:
            addresses = await self._addresses(host, port, timeout_s)
        except DestinationDeniedError:
            _note(host, port, (), allowed=False)
            raise
        _note(host, port, addresses, allowed=True)
        return Destination(host, port, addresses)

    async def _addresses(self, host: Host, port: int, timeout_s: float) -> tuple[IPAddress, ...]:
        if port in self.mesh_ports:
            raise DestinationDeniedError(
                f"port {port} is one of the mesh's own ports (gateway, admin, metrics, Prometheus, traces); "
                "tools never reach them", destination=f"{host.text}:{port}")
        if host.address is not None:
            if not self.allowlist.allows_address(host.address, from_name=False):
                raise _denied(host)
            return (host.address,)
        self._check_name(host)
        addresses = tuple(address for address in await self._resolve(host, timeout_s)
                          if self.allowlist.allows_address(address, from_name=True))
        if not addresses:
            # Which addresses it had is not said: they may be internal ones.
            raise DestinationDeniedError(
                f"destination {quoted(host.text, 100)} resolves only to addresses outside the allowlist "
                "(TOOL_ALLOWLIST)", destination=host.text)
        return addresses

    def _check_name(self, host: Host) -> None:
        if host.name is None or not self.allowlist.allows_name(host.name):
            raise _denied(host)

    async def _resolve(self, host: Host, timeout_s: float) -> tuple[IPAddress, ...]:
        assert host.name is not None
        if self._resolver is None:
            raise LookupFailed("name resolution is not available")
        return await self._resolver.resolve(host.name, timeout_s)


def _note(host: Host, port: int | None, addresses: tuple[IPAddress, ...], *, allowed: bool) -> None:
    """The destination as checked, on the current span: the host as the caller wrote it, the
    port, the verdict and the addresses the tool may connect to (never a URL, which may carry
    credentials, nor the addresses of a refused name, which may be internal ones)."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attributes({"server.address": host.text[:100], "opsconductor.destination.allowed": allowed})
    if port is not None:
        span.set_attribute("server.port", port)
    if addresses:
        span.set_attribute("opsconductor.destination.addresses", [str(address) for address in addresses[:8]])


def _denied(host: Host) -> DestinationDeniedError:
    return DestinationDeniedError(f"destination {quoted(host.text, 100)} is outside the allowlist (TOOL_ALLOWLIST)",
                                  destination=host.text)


__all__ = ["Destination", "Egress", "Host", "LookupFailed", "parse_host"]
