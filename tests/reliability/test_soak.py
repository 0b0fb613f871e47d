"""Soak: 20,000 calls through the gateway without one error, and no Python service's
resident memory growing by 10 MB or more once warmed up."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import grpc
import psutil
import pytest

from opsconductor.automation.v1 import automation_pb2
from tests.support.metrics import metric
from tests.support.topology import Topology
from services.common.names import AUTOMATION_EXECUTE

pytestmark = pytest.mark.slow

EXECUTE = AUTOMATION_EXECUTE
WARM_UP_CALLS = 2_000
SOAK_CALLS = 20_000
RSS_GROWTH_LIMIT = 10 * 1024 * 1024
CHANNELS, CONCURRENCY = 4, 32


async def _drive(target: str, calls: int) -> Counter:
    """`calls` Execute calls, CONCURRENCY at a time over a few channels; outcomes by code.
    Requests go as pre-serialized bytes and replies stay bytes: the client should cost the
    machine as little as possible next to the mesh it measures."""
    payload = automation_pb2.ExecuteRequest(input="ping", tool="echo").SerializeToString()
    channels = [grpc.aio.insecure_channel(target) for _ in range(CHANNELS)]
    methods = [channel.unary_unary(EXECUTE) for channel in channels]
    outcomes: Counter = Counter()
    remaining = calls

    async def worker(index: int) -> None:
        nonlocal remaining
        method = methods[index % CHANNELS]
        while remaining > 0:
            remaining -= 1
            try:
                await method(payload, timeout=10)
                outcomes["OK"] += 1
            except grpc.aio.AioRpcError as error:
                outcomes[error.code().name] += 1

    try:
        await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    finally:
        for channel in channels:
            await channel.close()
    return outcomes


def drive(target: str, calls: int) -> Counter:
    return asyncio.run(_drive(target, calls))


def handled(mesh: Topology, **labels: str) -> float:
    return sum(metric(pair.automation_metrics, "grpc_server_handled_total", grpc_method="Execute", **labels)
               for pair in mesh.pairs())


@pytest.mark.timeout(180)
def test_twenty_thousand_calls_without_error_or_memory_growth(mesh, figure):
    target = mesh.gateway.target
    processes = {process.name: psutil.Process(process.pid) for process in mesh.services()}
    assert drive(target, WARM_UP_CALLS) == {"OK": WARM_UP_CALLS}
    rss_before = {name: process.memory_info().rss for name, process in processes.items()}
    ok_before, all_before = handled(mesh, grpc_code="OK"), handled(mesh)

    started = time.monotonic()
    outcomes = drive(target, SOAK_CALLS)
    seconds = time.monotonic() - started

    rss_after = {name: process.memory_info().rss for name, process in processes.items()}
    assert outcomes == {"OK": SOAK_CALLS}, outcomes
    # The servers' own count agrees: every call answered OK once (no retries hid a failure).
    assert handled(mesh, grpc_code="OK") - ok_before == SOAK_CALLS
    assert handled(mesh) - all_before == SOAK_CALLS
    figure("soak.calls", SOAK_CALLS)
    figure("soak.calls_per_second", SOAK_CALLS / seconds, "calls/s")
    for name in processes:
        figure(f"soak.rss_after_warm_up.{name}", rss_before[name] / 2**20, "MiB")
        figure(f"soak.rss_growth.{name}", (rss_after[name] - rss_before[name]) / 2**20, "MiB")
    grown = {name: rss_after[name] - rss_before[name] for name in processes
             if rss_after[name] - rss_before[name] >= RSS_GROWTH_LIMIT}
    assert grown == {}, f"RSS grew by 10 MB or more: {grown}"
