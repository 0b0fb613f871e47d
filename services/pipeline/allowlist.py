"""Which network destinations tools may reach. Plain Python.

Entries are networks (`127.0.0.0/8`, `::1`), exact host names (`localhost`) or name suffixes
(`*.internal.example`). An IP address must fall in a listed network; a host name must be
listed itself. Names are checked before any lookup, so a denied name never causes DNS traffic.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from opentelemetry import trace

from services.common.errors import DestinationDeniedError


class Allowlist:
    def __init__(self, entries: Iterable[str]) -> None:
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self._names: set[str] = set()
        self._suffixes: list[str] = []
        for entry in entries:
            entry = entry.strip().lower()
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if entry.startswith("*."):
                    self._suffixes.append(entry[1:])
                else:
                    self._names.add(entry.rstrip("."))
        self.entries = tuple(entries)

    def allows(self, host: str) -> bool:
        host = host.strip().lower().strip("[]").rstrip(".")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host in self._names or any(host.endswith(suffix) for suffix in self._suffixes)
        return any(address in network for network in self._networks)

    def check(self, host: str, port: int | None = None) -> None:
        """Raises DestinationDeniedError unless `host` may be reached. The destination checked
        (never a URL, which may carry credentials) goes on the current span, if one records."""
        allowed = self.allows(host)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes({"server.address": host[:100], "opsconductor.destination.allowed": allowed})
            if port is not None:
                span.set_attribute("server.port", port)
        if not allowed:
            raise DestinationDeniedError(
                f"destination {host[:100]!r} is outside the allowlist (TOOL_ALLOWLIST)", destination=host[:100]
            )
