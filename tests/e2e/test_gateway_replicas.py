"""Gateway replicas of the real mesh (`opsconductor up --gateway-replicas 2`) share one weights
layer: one `canary set` and both split calls alike; a gateway killed and restarted by the
supervisor comes back applying the current weights, not its config's."""

from __future__ import annotations

import collections
import json
import os
import signal
import time

import pytest

from opsconductor.automation.v1 import automation_pb2
from tests.support.calls import automation_stub
from tests.support.procs import wait_for
from tests.support.stack import free_block, start_stack, stop_stack

pytestmark = pytest.mark.slow

PING = automation_pb2.ExecuteRequest(input="ping", tool="echo")
CALLS = 600
# Canary calls of CALLS at 50 %: binomial, standard deviation √(600 · ¼) ≈ 12.2. ±90 is 7.3 of
# them (a false failure about once in 10¹²), and still 19 away from what a 90/10 split gives (60).
HALF, SLACK = CALLS // 2, 90


def split(target: str, count: int = CALLS) -> collections.Counter:
    """`count` Execute calls through one gateway, by the pool that served each (or error code)."""
    channel, stub = automation_stub(target)
    counts: collections.Counter = collections.Counter()
    try:
        for start in range(0, count, 50):
            for future in [stub.Execute.future(PING, timeout=10) for _ in range(min(50, count - start))]:
                try:
                    counts[future.result().pool] += 1
                except Exception as error:  # noqa: BLE001 - counted, so the assertion shows it
                    counts[type(error).__name__] += 1
    finally:
        channel.close()
    return counts


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("gateways"), "--gateway-replicas", "2",
                          "--gateway-base-port", str(free_block(3)), "--no-prometheus", "--no-page")
    yield running
    stop_stack(running)


def gateways(mesh) -> dict[str, str]:
    """Each gateway replica's listener, by component name."""
    return {name: f"127.0.0.1:{info.ports['gateway']}" for name, info in mesh.state.components.items()
            if info.kind == "gateway"}


def applied(mesh) -> dict:
    return json.loads(mesh.cli("status", "-o", "json").stdout)["gateways"]


def test_both_gateways_run_and_status_shows_each_ones_weights(mesh):
    assert sorted(gateways(mesh)) == ["envoy", "envoy-2"]
    assert len(set(gateways(mesh).values())) == 2
    status = mesh.cli("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "weights: stable 90 % / canary 10 % (applied by every gateway: envoy, envoy-2)" in status.stdout
    assert applied(mesh) == {"envoy": {"stable": 90, "canary": 10}, "envoy-2": {"stable": 90, "canary": 10}}


def test_one_set_and_both_gateways_split_alike(mesh):
    started = time.monotonic()
    result = mesh.cli("canary", "set", "50", "-o", "json")
    took_s = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["gateways"] == 2
    print(f"canary set 50: both gateways applied it in {json.loads(result.stdout)['took_ms']} ms "
          f"(the command took {took_s * 1000:.0f} ms)")
    for name, target in gateways(mesh).items():
        counts = split(target)
        assert set(counts) == {"stable", "canary"} and sum(counts.values()) == CALLS, (name, counts)
        assert abs(counts["canary"] - HALF) <= SLACK, (name, counts)
    assert json.loads((mesh.state_dir / "weights.json").read_text()) == {"stable": 50, "canary": 50, "mirror": 0}
    shown = mesh.cli("canary", "status")
    assert "gateways: envoy 50/50 · envoy-2 50/50" in shown.stdout and "do not apply" not in shown.stdout, shown
    assert json.loads(mesh.cli("canary", "status", "-o", "json").stdout)["gateways"] == {
        "envoy": {"stable": 50, "canary": 50}, "envoy-2": {"stable": 50, "canary": 50}}


def test_a_restarted_gateway_comes_back_with_the_current_weights(mesh):
    assert mesh.cli("canary", "set", "50").returncode == 0
    before = mesh.state.components["envoy-2"].pid
    os.kill(before, signal.SIGKILL)

    def back() -> bool:
        info = mesh.state.components["envoy-2"]
        return info.pid not in (0, before) and info.state == "running" and \
            applied(mesh).get("envoy-2") == {"stable": 50, "canary": 50}

    wait_for(back, 60, "envoy-2 to be restarted with the current weights", interval=0.2)
    counts = split(gateways(mesh)["envoy-2"])
    assert abs(counts["canary"] - HALF) <= SLACK, counts


def test_a_rollback_reaches_every_gateway(mesh):
    assert mesh.cli("canary", "rollback").returncode == 0
    for name, target in gateways(mesh).items():
        assert split(target, 100) == {"stable": 100}, name
