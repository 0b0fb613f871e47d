"""A DNS server for tests, built on dnslib: answers A and AAAA from a table (TTL 0, so nothing
is cached between tests), says NXDOMAIN for other names, never answers names under
`blackhole.test`, and logs every question it gets. It runs inside a private network namespace
(tests/support/netns.py), so nothing it does reaches another machine."""

from __future__ import annotations

import ipaddress
import json
import threading
from pathlib import Path

from dnslib import AAAA, QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

BLACKHOLE_SUFFIX = "blackhole.test"


class TableResolver(BaseResolver):
    def __init__(self, table: dict[str, list[str]], query_log: Path) -> None:
        self._table = {name.lower().rstrip("."): [ipaddress.ip_address(a) for a in addresses]
                       for name, addresses in table.items()}
        self._log = query_log
        self._lock = threading.Lock()
        self._never = threading.Event()  # never set: blackholed questions wait on it forever

    def resolve(self, request, handler):
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self._lock, self._log.open("a") as log:
            log.write(json.dumps({"name": name, "type": qtype}) + "\n")
        if name == BLACKHOLE_SUFFIX or name.endswith("." + BLACKHOLE_SUFFIX):
            self._never.wait()  # a resolver that never answers (this handler thread just waits)
        reply = request.reply()
        if name not in self._table:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for address in self._table[name]:
            if qtype == "A" and address.version == 4:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(str(address)), ttl=0))
            elif qtype == "AAAA" and address.version == 6:
                reply.add_answer(RR(request.q.qname, QTYPE.AAAA, rdata=AAAA(str(address)), ttl=0))
        return reply


def serve(table: dict[str, list[str]], query_log: Path, address: str = "127.0.0.1", port: int = 53) -> list[DNSServer]:
    """UDP and TCP servers on `address`:`port`, answering on daemon threads."""
    resolver = TableResolver(table, query_log)
    quiet = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-error,-data", prefix=False)
    servers = [DNSServer(resolver, address=address, port=port, tcp=tcp, logger=quiet) for tcp in (False, True)]
    for server in servers:
        server.server.daemon_threads = True
        server.start_thread()
    return servers
