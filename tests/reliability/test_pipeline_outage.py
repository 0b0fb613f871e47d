"""Pipelines going down behind healthy automation services: one pool's share fails over,
with every pipeline down each call is told UNAVAILABLE at once, and when the pipelines come
back traffic recovers by itself within seconds."""

from __future__ import annotations

import signal
import time

import grpc
import pytest

from opsconductor.load import grpcweb
from tests.support.calls import automation_stub
from tests.support.procs import wait_for
from tests.support.traffic import PING, Traffic
from services.common.names import AUTOMATION_EXECUTE

pytestmark = pytest.mark.slow

EXECUTE = AUTOMATION_EXECUTE
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]
ANSWER_BOUND_S = 3.0
RECOVERY_BOUND_S = 10.0


def timed_native(stub) -> tuple[float, str]:
    started = time.monotonic()
    try:
        stub.Execute(PING, timeout=10)
        code = "OK"
    except grpc.RpcError as error:
        code = error.code().name
    return time.monotonic() - started, code


def timed_web(port: int) -> tuple[float, str]:
    started = time.monotonic()
    reply = grpcweb.call("127.0.0.1", port, EXECUTE, PING.SerializeToString(), timeout=10)
    code = "OK" if reply.grpc_status == 0 else grpc.StatusCode.UNAVAILABLE.name \
        if reply.grpc_status == UNAVAILABLE else f"grpc-status {reply.grpc_status} (HTTP {reply.http_status})"
    return time.monotonic() - started, code


@pytest.mark.timeout(90)
def test_one_pools_pipeline_killed_under_load_fails_no_call(healed, figure):
    gateway = healed.gateway
    gateway.set_weights(50, 50)
    with Traffic(gateway.target, rate=100) as traffic:
        wait_for(lambda: traffic.ok["canary"] >= 50, 30, "calls to reach the canary")
        healed.canary[0].pipeline.stop(signal.SIGKILL)
        # The canary automation stays up (live, not ready): Envoy takes it out on readiness.
        gateway.wait_pools_healthy({"canary": 0, "stable": 1})
        seen = sum(traffic.ok.values())
        wait_for(lambda: sum(traffic.ok.values()) + sum(traffic.failed.values()) >= seen + 200, 30,
                 "200 calls with the canary's pipeline down")
    assert healed.canary[0].automation.running()
    assert traffic.failed == {}, f"failed calls by code: {dict(traffic.failed)}"
    figure("one_pipeline_down.calls", sum(traffic.ok.values()))


@pytest.mark.timeout(120)
def test_every_pipeline_down_is_unavailable_at_once_and_traffic_recovers_by_itself(healed, figure):
    gateway = healed.gateway
    others = {process.name: process.pid for process in
              [pair.automation for pair in healed.pairs()] + [gateway.process]}
    channel, stub = automation_stub(gateway.target)
    with channel:
        assert stub.Execute(PING, timeout=10).output == "pong"
        for pair in healed.pairs():
            pair.pipeline.stop(signal.SIGKILL)
        # First while Envoy still thinks the pools are healthy (the automations answer),
        # then once its health checks have taken every host out (Envoy answers itself).
        answers = [timed_native(stub) for _ in range(20)] + [timed_web(gateway.settings.listen_port) for _ in range(5)]
        gateway.wait_pools_healthy({"stable": 0, "canary": 0})
        answers += [timed_native(stub) for _ in range(20)] + [timed_web(gateway.settings.listen_port) for _ in range(5)]
        codes = {code for _, code in answers}
        slowest = max(seconds for seconds, _ in answers)
        figure("all_pipelines_down.slowest_answer", slowest, "s")
        assert codes == {"UNAVAILABLE"}, codes
        assert slowest < ANSWER_BOUND_S, f"the slowest UNAVAILABLE took {slowest:.2f} s"

        restarted = time.monotonic()
        for pair in healed.pairs():
            pair.start_pipeline()  # returns once the pipeline itself is SERVING
        serving = time.monotonic()
        wait_for(lambda: timed_native(stub)[1] == "OK", RECOVERY_BOUND_S, "the first call to succeed again",
                 interval=0.1)
        recovered = time.monotonic()
        figure("all_pipelines_down.recovery_after_pipelines_serving", recovered - serving, "s")
        figure("all_pipelines_down.recovery_after_restart", recovered - restarted, "s")
        assert recovered - serving < RECOVERY_BOUND_S
        gateway.wait_pools_healthy({"stable": 1, "canary": 1})
        assert [stub.Execute(PING, timeout=10).output for _ in range(50)] == ["pong"] * 50
    # Nothing but the pipelines was restarted.
    after = {process.name: process.pid for process in
             [pair.automation for pair in healed.pairs()] + [gateway.process]}
    assert after == others
    assert all(process.running() for process in [pair.automation for pair in healed.pairs()] + [gateway.process])
