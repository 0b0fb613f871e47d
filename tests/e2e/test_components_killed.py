"""Every kind of component killed under load on the real mesh (`opsconductor up`): calls
pinned to the stable pool (`x-canary: never`) all succeed, the component comes back healthy,
and the restart is counted. Measured here: how long each took to be healthy again, and what a
client saw (printed at the end of the run and written to test-artifacts/supervision.json)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from opsconductor.gateway.admin import AdminError, EnvoyAdmin
from opsconductor.observability import prometheus
from opsconductor.stack import status as stack_status
from tests.support.procs import wait_for
from tests.support.stack import RunningStack, start_stack, stop_stack
from tests.support.traffic import PIN_STABLE, Traffic

pytestmark = pytest.mark.slow
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FIGURES: dict[str, dict] = {}

# component, signal: a stable replica of two, the only canary replica, the gateway, the page,
# Prometheus, the trace store.
KILLS = [("stable-1-automation", signal.SIGKILL), ("stable-1-pipeline", signal.SIGKILL),
         ("canary-1-automation", signal.SIGKILL), ("canary-1-pipeline", signal.SIGKILL),
         ("envoy", signal.SIGKILL), ("page", signal.SIGKILL), ("prometheus", signal.SIGKILL),
         ("traces", signal.SIGKILL), ("canary-1-pipeline", signal.SIGTERM), ("envoy", signal.SIGTERM)]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, built_page):
    running = start_stack(tmp_path_factory.mktemp("supervised"), "--stable-replicas", "2", "--scrape-interval", "1")
    yield running
    stop_stack(running)
    if FIGURES:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "supervision.json").write_text(json.dumps(FIGURES, indent=2) + "\n")


def healthy(mesh: RunningStack) -> bool:
    """Every component running and ready, and Envoy sees every host of both pools."""
    if not stack_status.report(mesh.state_dir).healthy:
        return False
    try:
        return all(h.healthy == h.total for h in EnvoyAdmin(mesh.admin_url).pool_health().values())
    except AdminError:
        return False


@pytest.mark.parametrize(("victim", "sig"), KILLS, ids=lambda v: v if isinstance(v, str) else signal.Signals(v).name)
def test_a_killed_component_is_restarted_and_stable_pinned_calls_all_succeed(mesh, victim, sig):
    wait_for(lambda: healthy(mesh), 60, "the mesh to be healthy before the kill")
    before = mesh.state.components[victim]
    # One gateway process: its clients ride out its restart by waiting for it and retrying
    # what the broken connection failed. A plain client's failures are measured alongside.
    retrying = victim == "envoy"
    pinned = Traffic(mesh.gateway, rate=50, metadata=PIN_STABLE, retrying=retrying)
    plain = Traffic(mesh.gateway, rate=50, metadata=PIN_STABLE)
    with pinned, plain:
        wait_for(lambda: pinned.calls >= 25 and plain.calls >= 25, 30, "traffic to flow")
        killed_at = time.monotonic()
        os.kill(before.pid, sig)
        wait_for(lambda: mesh.state.components[victim].pid not in (before.pid, 0) and healthy(mesh), 60,
                 f"{victim} to be back and the mesh healthy")
        back_s = time.monotonic() - killed_at
        at_back = pinned.calls
        wait_for(lambda: pinned.calls >= at_back + 50, 30, "calls after the restart")
    after = mesh.state.components[victim]
    FIGURES[f"{victim} {signal.Signals(sig).name}"] = {
        "back_to_healthy_s": round(back_s, 2), "pinned_calls": pinned.calls, "pinned_failed": dict(pinned.failed),
        "pinned_slowest_call_s": round(pinned.slowest_s, 3), "plain_client_failed": dict(plain.failed),
        "client": "waits for ready, retries UNAVAILABLE" if retrying else "plain"}
    assert not pinned.failed, f"stable-pinned calls failed: {dict(pinned.failed)}"
    if not retrying:
        assert not plain.failed, dict(plain.failed)
    assert after.restarts == before.restarts + 1 and after.state == "running"
    assert after.last_exit in (f"signal {sig} ({signal.Signals(sig).name})", "exit code 0"), after.last_exit


def test_prometheus_keeps_running_and_sees_a_canary_process_down(mesh):
    """A canary pipeline kept down: the stable pool serves, and OpsConductorServiceDown fires."""
    wait_for(lambda: healthy(mesh), 60, "the mesh to be healthy")
    prometheus_url = mesh.prometheus_url
    firing = ('ALERTS{alertname="OpsConductorServiceDown",alertstate="firing",'
              'instance="canary-1-pipeline"}')
    prometheus_pid = mesh.state.components["prometheus"].pid
    mesh.stop_components("canary-1-pipeline")
    try:
        with Traffic(mesh.gateway, rate=50, metadata=PIN_STABLE) as pinned:
            wait_for(lambda: bool(prometheus.query(prometheus_url, firing)), 60, "the down alert to fire",
                     interval=0.5)
        assert not pinned.failed and pinned.calls > 0
        assert mesh.state.components["prometheus"].pid == prometheus_pid  # it never stopped
        assert mesh.state.components["canary-1-pipeline"].state == "stopped"
    finally:
        mesh.start_components("canary-1-pipeline")

