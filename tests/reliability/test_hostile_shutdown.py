"""SIGTERM while calls are in flight past the grace period: both services stop within the
grace and a moment, exit 0, and log only JSON lines, none of them an ERROR (the calls that
were cancelled end quietly, without CancelledError tracebacks)."""

from __future__ import annotations

import json
import time

import grpc
import pytest

from opsconductor.automation.v1 import automation_pb2, automation_pb2_grpc
from opsconductor.pipeline.v1 import pipeline_pb2, pipeline_pb2_grpc

pytestmark = pytest.mark.slow

SLOW = {"input": "x", "tool": "delay", "arguments": {"ms": "20000"}}


def assert_quiet_json(log: str) -> None:
    for line in log.splitlines():
        record = json.loads(line)  # every line is JSON
        assert record["level"] not in ("ERROR", "CRITICAL"), line


@pytest.mark.parametrize("first", ["automation", "pipeline"])
def test_sigterm_with_calls_in_flight_stops_quietly_within_the_grace(start_services, first, figure):
    pair = start_services(env={"SHUTDOWN_GRACE_S": "1"})
    automation = grpc.insecure_channel(pair.automation_target)
    pipeline = grpc.insecure_channel(pair.pipeline_target)
    try:
        calls = [automation_pb2_grpc.AutomationServiceStub(automation).Execute.future(
            automation_pb2.ExecuteRequest(**SLOW), timeout=60) for _ in range(5)]
        calls += [pipeline_pb2_grpc.PipelineServiceStub(pipeline).Execute.future(
            pipeline_pb2.ExecuteRequest(**SLOW), timeout=60) for _ in range(5)]
        time.sleep(1)  # every call is running its tool
        stopped = {}
        for name in (first, "pipeline" if first == "automation" else "automation"):
            process = getattr(pair, name)
            started = time.monotonic()
            assert process.stop() == 0
            stopped[name] = time.monotonic() - started
        codes = {call.exception().code() for call in calls}
    finally:
        automation.close()
        pipeline.close()
    assert codes <= {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE}, codes
    assert max(stopped.values()) < 3, stopped
    assert_quiet_json(pair.pipeline.log_text())
    assert_quiet_json(pair.automation.log_text())
    figure(f"shutdown.{first}_first_slowest_stop", max(stopped.values()), "s (SHUTDOWN_GRACE_S=1)")
