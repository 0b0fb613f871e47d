"""The canary rollout carried out by the supervisor, on real stacks: the follower's Ctrl-C leaves
it running, abort rolls back at once, pause and resume reach it, a too-short interval is
refused on the default scrape interval, a stack restarted mid-rollout rolls it back, and a
canary that fails only at the gateway is rolled back at its first reading."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from opsconductor.stack import state
from tests.e2e.test_release_checks import canary_weight, interruptible
from tests.support.procs import BIN
from tests.support.stack import start_stack, stop_stack, up_argv
from tests.support.traffic import Traffic


@pytest.fixture(scope="module")
def fast_stack(tmp_path_factory):
    """A stack whose Prometheus scrapes every second, so a step takes seconds."""
    stack = start_stack(tmp_path_factory.mktemp("rollout"), "--scrape-interval", "1", "--no-page")
    yield stack
    stop_stack(stack)


def status(stack) -> dict:
    result = stack.cli("canary", "rollout", "status", "-o", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_ctrl_c_stops_following_and_the_rollout_goes_on(fast_stack):
    follower = interruptible([str(BIN / "opsconductor"), "canary", "rollout", "--watch", "--steps", "30,100",
                              "--interval", "60", "--state-dir", str(fast_stack.state_dir)])
    try:
        assert "step 30 %" in follower.stdout.readline()
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=30)
        assert follower.returncode == 130, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "goes on in the supervisor" in err and "canary rollout status" in err
        record = status(fast_stack)
        assert record["running"] and record["weight"] == 30 and canary_weight(fast_stack) == 30
        text = fast_stack.cli("canary", "rollout", "status").stdout
        assert f"rollout {record['id']}: running" in text and "30 %: pending" in text
    finally:
        fast_stack.cli("canary", "rollout", "abort")
    assert canary_weight(fast_stack) == 0


def test_pause_resume_and_abort_reach_the_rollout_mid_step(fast_stack):
    started = fast_stack.cli("canary", "rollout", "start", "--no-watch", "--steps", "40,100", "--interval", "60")
    assert started.returncode == 0, started.stderr
    assert "started in the supervisor" in started.stdout
    assert fast_stack.cli("canary", "rollout", "pause").returncode == 0
    deadline = time.monotonic() + 10
    while not status(fast_stack).get("paused") and time.monotonic() < deadline:
        time.sleep(0.1)  # polling the record the rollout rewrites once paused
    assert status(fast_stack)["paused"] and canary_weight(fast_stack) == 40
    assert fast_stack.cli("canary", "rollout", "resume").returncode == 0
    deadline = time.monotonic() + 10
    while status(fast_stack).get("paused") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not status(fast_stack)["paused"]
    aborted = fast_stack.cli("canary", "rollout", "abort", "-o", "json")
    assert aborted.returncode == 0, aborted.stderr
    result = json.loads(aborted.stdout)
    assert result["outcome"] == "aborted" and result["took_ms"] < 2000  # not at the end of the 60 s step
    assert canary_weight(fast_stack) == 0
    history = json.loads(fast_stack.cli("canary", "rollout", "history", "-o", "json").stdout)
    last = history[-1]
    assert last["outcome"] == "aborted" and last["history"][0]["verdict"] == "aborted"
    assert last["history"][0]["reasons"] == ["aborted on request"] and last["plot"].endswith(".svg")
    again = fast_stack.cli("canary", "rollout", "abort")
    assert again.returncode == 1 and "no rollout is running" in again.stderr


def test_a_canary_failing_only_at_the_gateway_is_rolled_back_not_held(fast_stack):
    fast_stack.stop_components("canary-1-automation")  # its port refuses connections; Envoy fails over
    try:
        with Traffic(fast_stack.gateway, rate=50):
            started = time.monotonic()
            result = fast_stack.cli("canary", "rollout", "--watch", "--steps", "50,100", "--interval", "4",
                                    "--min-calls", "10", "-o", "json", timeout=120)
            took = time.monotonic() - started
    finally:
        fast_stack.start_components("canary-1-automation")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    [step] = report["steps"]
    # Envoy publishes its counters at each stats flush (5 s): the first 4 s reading may not see them yet.
    assert report["outcome"] == "rolled back" and step["verdict"] == "fail" and step["judged"] <= 2
    assert any("at the gateway" in reason for reason in step["reasons"]), step
    assert step["canary"]["calls"] < 10  # the automation's own metrics would only have held
    assert took < 18  # a reading or two of 4 s, not the 20 s hold timeout
    assert canary_weight(fast_stack) == 0


def test_a_smoke_test_pinned_to_the_canary_fails_the_rollout_before_its_first_step(fast_stack):
    fast_stack.stop_components("canary-1-pipeline")  # the canary cannot answer: the gateway fails over
    try:
        result = fast_stack.cli("canary", "rollout", "--watch", "--smoke", "--steps", "50,100", "--interval", "4",
                                "-o", "json", timeout=120)
    finally:
        fast_stack.start_components("canary-1-pipeline")
    assert result.returncode == 1, result.stdout + result.stderr
    [step] = json.loads(result.stdout)["steps"]
    assert step["weight"] == 0 and step["verdict"] == "fail"
    assert step["reasons"] and all(reason.startswith("smoke: echo pinned to the canary") for reason in step["reasons"])
    assert "smoke test pinned to the canary before the first step: FAILED" in result.stderr
    assert canary_weight(fast_stack) == 0


def test_a_mirror_step_is_judged_on_the_canarys_mirrored_calls_at_weight_0(fast_stack):
    with Traffic(fast_stack.gateway, rate=50) as traffic:
        started = fast_stack.cli("canary", "rollout", "start", "--no-watch", "--mirror", "100", "--steps", "50,100",
                                 "--interval", "4", "--min-calls", "10")
        assert started.returncode == 0, started.stderr
        deadline = time.monotonic() + 60
        while len(status(fast_stack).get("history") or []) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # polling the record the rollout rewrites at each step
        try:
            record = status(fast_stack)
            mirror_step = record["history"][0]
            assert (mirror_step["weight"], mirror_step["mirror"], mirror_step["verdict"]) == (0, 100, "pass"), record
            # Judged on the canary's own metrics: at weight 0 they hold the mirrored copies only.
            assert mirror_step["canary"]["calls"] >= 10
            assert record["weight"] == 50 and state.read_weights(fast_stack.state_dir).mirror == 0
        finally:
            aborted = fast_stack.cli("canary", "rollout", "abort")
    assert aborted.returncode == 0, aborted.stderr
    assert canary_weight(fast_stack) == 0 and state.read_weights(fast_stack.state_dir).mirror == 0
    assert not traffic.failed, traffic.failed


@pytest.fixture(scope="module")
def default_stack(tmp_path_factory):
    """A stack on the default 15 s scrape interval."""
    stack = start_stack(tmp_path_factory.mktemp("default"), "--no-page")
    yield stack
    if stack.cli("status").returncode != 5:
        stop_stack(stack)


def test_a_too_short_interval_is_refused_on_the_default_scrape_interval(default_stack):
    result = default_stack.cli("canary", "rollout", "--watch", "--interval", "10")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "scrapes every 15 s" in result.stderr and "--interval 60 or more" in result.stderr
    assert canary_weight(default_stack) == 10 and status(default_stack) == {"running": False}
    plan = default_stack.cli("canary", "rollout", "--dry-run", "--interval", "60")
    assert plan.returncode == 0 and "Prometheus scrapes every 15 s" in plan.stdout  # read from its config API


def test_a_stack_restarted_mid_rollout_rolls_it_back_and_records_why(default_stack):
    started = default_stack.cli("canary", "rollout", "--no-watch", "--steps", "60,100", "--interval", "60")
    assert started.returncode == 0, started.stderr
    assert canary_weight(default_stack) == 60 and status(default_stack)["running"]
    assert default_stack.cli("down").returncode == 0
    again = subprocess.run(up_argv(default_stack.state_dir, default_stack.ports, "--detach",
                                   *default_stack.extra_args), capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    assert canary_weight(default_stack) == 0
    record = status(default_stack)
    assert not record["running"] and record["outcome"] == "rolled back" and record["recovered"]
    assert "restarted mid-rollout" in record["reason"]
    history = default_stack.cli("canary", "rollout", "history")
    assert "restarted mid-rollout" in history.stdout and "60 %: stopped" in history.stdout
