"""Name resolution for the network tools: asynchronous (c-ares through aiodns, which reads
/etc/hosts and resolv.conf as the system does), each lookup bounded by a deadline within its
call's own, a bounded number in flight, and cancelled with its call. Nothing here blocks a
thread: asyncio's getaddrinfo would hold a thread of the default pool per lookup, and a
resolver that never answers then starves every other lookup in the process."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import aiodns

from services.pipeline.allowlist import IPAddress

# c-ares's own bound per query (seconds per try, tries per server): a query the caller gave
# up on still ends by itself soon after, so slots are never held for long.
_ARES_TIMEOUT_S = 1.0
_ARES_TRIES = 2
_REASONS = {
    **dict.fromkeys((aiodns.error.ARES_ENOTFOUND, aiodns.error.ARES_ENODATA, aiodns.error.ARES_ENONAME,
                     aiodns.error.ARES_EBADNAME), "name not found"),
    aiodns.error.ARES_ETIMEOUT: "no answer from DNS (the DNS server did not reply)",
    aiodns.error.ARES_ECONNREFUSED: "no answer from DNS (the DNS server is unreachable)",
    aiodns.error.ARES_ESERVFAIL: "the DNS server failed to answer",
    aiodns.error.ARES_EREFUSED: "the DNS server refused to answer",
}


class LookupFailed(Exception):
    """The name could not be resolved; `reason` is a short public phrase ("name not found")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Resolver:
    """One per process, made inside the running event loop."""

    def __init__(self, max_in_flight: int = 64) -> None:
        self._dns = aiodns.DNSResolver(timeout=_ARES_TIMEOUT_S, tries=_ARES_TRIES)
        self._slots = asyncio.Semaphore(max_in_flight)

    async def resolve(self, name: str, timeout_s: float) -> tuple[IPAddress, ...]:
        """The addresses of `name`, A and AAAA, in the resolver's order without repeats; raises
        LookupFailed when there are none or no answer came within `timeout_s`."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._slots.acquire()
                # The slot is held until c-ares is done with the query, not until this caller
                # stops waiting: the bound is on queries really in flight.
                query = self._dns.getaddrinfo(name, socket.AF_UNSPEC, type=socket.SOCK_STREAM)
                query.add_done_callback(self._query_done)
                result = await asyncio.shield(query)
        except TimeoutError:
            raise LookupFailed(f"no answer from DNS within {timeout_s:.3g} s") from None
        except aiodns.error.DNSError as error:
            code = error.args[0] if error.args else None
            raise LookupFailed(_REASONS.get(code, "DNS lookup failed")) from None
        addresses: dict[IPAddress, None] = {}
        for node in result.nodes:
            try:
                addresses[ipaddress.ip_address(node.addr[0].decode())] = None
            except ValueError:
                continue
        if not addresses:
            raise LookupFailed("name not found")
        return tuple(addresses)

    def _query_done(self, query: asyncio.Future) -> None:
        self._slots.release()
        if not query.cancelled():
            query.exception()  # retrieved: a caller that gave up must not leave a warning behind

    async def close(self) -> None:
        """Ends every query still in flight (their callers have gone with the server)."""
        await self._dns.close()

