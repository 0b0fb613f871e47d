"""Processes dying under load behind the gateway: a whole pool killed with calls in flight on
it, and one of two stable automation instances stopped gracefully while it runs slow calls."""

from __future__ import annotations

import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest

from opsconductor.automation.v1 import automation_pb2
from tests.support.calls import automation_stub
from tests.support.metrics import in_flight
from tests.support.procs import wait_for
from tests.support.traffic import LIST_TOOLS, Traffic

pytestmark = pytest.mark.slow


def delay(ms: int) -> automation_pb2.ExecuteRequest:
    return automation_pb2.ExecuteRequest(input="x", tool="delay", arguments={"ms": str(ms)})


# The module's mesh (tests/reliability/conftest.py), shaped for these tests.
MESH = {"stable": 2}  # one stable replica can be killed while the other serves


def total(*traffics: Traffic) -> int:
    return sum(sum(t.ok.values()) + sum(t.failed.values()) for t in traffics)


@pytest.mark.timeout(120)
def test_sigkill_of_the_canary_pool_with_calls_in_flight_fails_no_call(healed, figure):
    gateway = healed.gateway
    gateway.set_weights(50, 50)
    canary = healed.canary[0]
    # Pings keep a steady rate; slow calls, back to back, make sure some are running on the
    # canary at the moment it dies (Envoy must retry those on the stable pool).
    pings = Traffic(gateway.target, rate=100)
    slow = [Traffic(gateway.target, rate=10, request=delay(1500)) for _ in range(6)]
    with ExitStack() as running:
        for traffic in (pings, *slow):
            running.enter_context(traffic)
        wait_for(lambda: pings.ok["canary"] >= 50, 30, "pings to reach the canary")
        wait_for(lambda: in_flight(canary.automation_metrics) >= 2, 30, "slow calls in flight on the canary")
        caught_in_flight = in_flight(canary.automation_metrics)
        canary.automation.stop(signal.SIGKILL)
        canary.pipeline.stop(signal.SIGKILL)
        at_kill = total(pings, *slow)
        gateway.wait_pools_healthy({"canary": 0, "stable": 2})
        wait_for(lambda: total(pings, *slow) >= at_kill + 300, 30, "300 calls after the kill")
    failed = sum((t.failed for t in (pings, *slow)), start=Counter())
    assert failed == {}, f"failed calls by code: {dict(failed)}"
    figure("kill_canary.calls_total", total(pings, *slow))
    figure("kill_canary.in_flight_on_canary_at_kill", int(caught_in_flight))
    figure("kill_canary.failed_calls", sum(failed.values()))


@pytest.mark.timeout(120)
def test_sigterm_of_one_stable_automation_lets_its_calls_finish_and_fails_none(healed, figure):
    gateway = healed.gateway
    victim = healed.stable[0]
    victim_instance = f"automation@{victim.automation_target}"
    calls = 12
    # Several busy callers: a server that is stopping cancels the calls it had accepted but
    # not yet started, and the gateway must retry those elsewhere. They list tools, so the
    # victim's Execute calls in flight are the slow calls alone.
    pings = [Traffic(gateway.target, rate=150, request=LIST_TOOLS) for _ in range(3)]
    with ExitStack() as running, ThreadPoolExecutor(calls) as workers:
        for traffic in pings:
            running.enter_context(traffic)
        wait_for(lambda: total(*pings) >= 150, 30, "pings to flow")
        channel, stub = automation_stub(gateway.target)
        with channel:
            # Pinned to the stable pool: round robin puts about half on the victim.
            futures = [workers.submit(stub.Execute, delay(1500), timeout=30,
                                      metadata=(("x-canary", "never"),)) for _ in range(calls)]
            wait_for(lambda: in_flight(victim.automation_metrics) >= 2, 20,
                     "slow calls in flight on the victim")
            running_on_victim = int(in_flight(victim.automation_metrics))
            victim.automation.popen.send_signal(signal.SIGTERM)
            replies = [future.result() for future in futures]
        assert victim.automation.popen.wait(20) == 0
        gateway.wait_pools_healthy({"stable": 1, "canary": 1})
        after_stop = total(*pings)
        wait_for(lambda: total(*pings) >= after_stop + 300, 30, "300 pings after the stop")
    assert [reply.output for reply in replies] == ["slept 1500 ms"] * calls
    finished_on_victim = sum(reply.instance == victim_instance for reply in replies)
    # Every call that was running on the victim when it got SIGTERM finished there.
    assert finished_on_victim >= running_on_victim, (finished_on_victim, running_on_victim)
    failed = sum((t.failed for t in pings), start=Counter())
    assert failed == {}, f"failed pings by code: {dict(failed)}"
    figure("sigterm_stable.slow_calls_finished_on_victim", finished_on_victim)
    figure("sigterm_stable.pings_total", total(*pings))
