"""Free ports (every test's listeners, `up --service-ports auto`): distinct within a process,
below the kernel's ephemeral range, where no outgoing connection or other program's bind to
port 0 can take one before its listener binds it, and passed over when something holds them;
blocks of consecutive ports (a pool's base port) under the same rule."""

from __future__ import annotations

import socket

from opsconductor.stack import ports
from opsconductor.stack.ports import FREE_PORTS_FROM, free_port, free_replica_ports


def test_free_ports_are_distinct_and_below_the_ephemeral_range():
    low = ports._ephemeral_low()
    chosen = [free_port() for _ in range(200)] + list(free_replica_ports().values())
    assert len(set(chosen)) == len(chosen)
    assert all(FREE_PORTS_FROM <= port < low for port in chosen), (low, chosen)
    # An outgoing connection's local port comes from the other range.
    with socket.create_server(("127.0.0.1", free_port())) as server, \
            socket.create_connection(server.getsockname()) as client:
        assert client.getsockname()[1] >= low


def test_a_port_something_holds_is_passed_over():
    held = free_port()
    with socket.create_server(("127.0.0.1", held + 1)):  # the next one the scan would try
        assert free_port() != held + 1


def test_a_block_of_free_ports_is_free_and_shares_no_port_with_single_ones():
    singles = {free_port() for _ in range(50)}
    bases = [ports.free_port_block(18) for _ in range(3)]
    blocks = [set(range(base, base + 18)) for base in bases]
    low = ports._ephemeral_low()
    for block in blocks:
        assert block.isdisjoint(singles) and all(FREE_PORTS_FROM <= port < low for port in block)
        for port in block:  # each one can be bound now
            with socket.create_server(("127.0.0.1", port)):
                pass
    assert sum(map(len, blocks)) == len(set().union(*blocks))  # no two blocks overlap
    after = {free_port() for _ in range(50)}
    assert after.isdisjoint(set().union(*blocks))
