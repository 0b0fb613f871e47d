"""Which destinations the network tools may reach: the policy alone, plain Python.

Entries are networks (`127.0.0.0/8`, `::1`), exact host names (`localhost`) and name suffixes
(`*.corp.example`). The rules, in the order they are applied:

- Never, whatever is listed: unspecified addresses (`0.0.0.0/8`, `::`), multicast, broadcast,
  reserved ranges, and IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:0:0/96`,
  IPv4-compatible, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4 `2002::/16`, Teredo
  `2001::/32`): write the IPv4 address itself instead.
- An address the caller wrote is reached only when a listed network holds it.
- A name is looked up only when it is listed (exactly, or under a listed suffix), so a name
  that is not listed causes no DNS traffic at all.
- An address a listed name resolves to is reached when a listed network holds it, or when it
  is public (globally routable). A listed name that resolves to loopback, private, link-local
  or shared addresses outside the listed networks is refused: DNS cannot widen the networks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 ranges that embed an IPv4 address the kernel or a gateway may turn into an IPv4
# connection: checked as IPv6, they would slip past IPv4 networks such as 169.254.0.0/16.
_EMBEDDING_V4 = tuple(ipaddress.ip_network(net) for net in (
    "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "::ffff:0:0:0/96"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_ZERO_NET = ipaddress.ip_network("0.0.0.0/8")
_BROADCAST = ipaddress.ip_address("255.255.255.255")


def never_reached(address: IPAddress) -> bool:
    """True for addresses no allowlist entry can open (see the module docstring)."""
    if address.is_unspecified or address.is_multicast or address == _BROADCAST:
        return True
    if isinstance(address, ipaddress.IPv4Address):
        return address in _ZERO_NET or (address.is_reserved and not address.is_private)
    plain = ipaddress.IPv6Address(int(address))  # without a %zone
    if plain in _IPV4_COMPATIBLE and plain != ipaddress.IPv6Address(1):
        return True
    return any(plain in network for network in _EMBEDDING_V4) or plain.is_reserved and not plain.is_loopback


def normalized_name(name: str) -> str:
    """Lowercase, without the one trailing dot of a fully qualified name."""
    name = name.lower()
    return name[:-1] if name.endswith(".") else name


class Allowlist:
    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(entry.strip().lower() for entry in entries if entry.strip())
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self._names: set[str] = set()
        self._suffixes: list[str] = []
        for entry in self.entries:
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if entry.startswith("*."):
                    self._suffixes.append("." + normalized_name(entry[2:]))
                else:
                    self._names.add(normalized_name(entry))

    def allows_name(self, name: str) -> bool:
        """May `name` (already syntax-checked) be looked up at all?"""
        name = normalized_name(name)
        return name in self._names or any(name.endswith(suffix) for suffix in self._suffixes)

    def allows_address(self, address: IPAddress, *, from_name: bool) -> bool:
        """May a tool connect to `address`? `from_name`: it came from resolving a listed name."""
        if never_reached(address):
            return False
        # Without a %zone, which would keep an address out of every network.
        plain = ipaddress.IPv6Address(int(address)) if isinstance(address, ipaddress.IPv6Address) else address
        if any(plain in network for network in self._networks if network.version == plain.version):
            return True
        return from_name and plain.is_global
