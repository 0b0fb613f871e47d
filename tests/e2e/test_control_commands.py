"""Control commands on the real mesh, interrupted and run at once: Ctrl-C one step into a
promote ends the command with one line and exit code 130 while the supervisor finishes the
promote; a second change is told "busy" (or waits with --wait); a client killed mid-change
leaves the control channel working."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from tests.support.procs import BIN, wait_for
from tests.support.stack import RunningStack, start_stack, stop_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("control"), "--no-prometheus", "--no-page")
    yield running
    stop_stack(running)


def started(stack: RunningStack, *args: str) -> tuple[subprocess.Popen, str]:
    """`opsconductor ARGS` in the background, once it has printed its first progress line
    (the supervisor has taken the change); with SIGINT as a terminal would deliver it."""
    process = subprocess.Popen([str(BIN / "opsconductor"), *args, "--state-dir", str(stack.state_dir)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = process.stdout.readline()
    assert first, process.communicate(timeout=30)
    return process, first


def last_operation(stack: RunningStack) -> dict:
    return json.loads(stack.cli("status", "-o", "json").stdout)["operation"]


def wait_until_done(stack: RunningStack) -> dict:
    wait_for(lambda: last_operation(stack)["state"] != "running", 120, "the operation to finish", interval=0.5)
    return last_operation(stack)


def test_ctrl_c_during_promote_says_what_happens_and_the_supervisor_finishes_it(stack):
    assert stack.cli("canary", "set", "10").returncode == 0
    stable_before = stack.state.components["stable-1-automation"].pid
    promote, first = started(stack, "canary", "promote")
    assert "canary takes 100 %" in first
    promote.send_signal(signal.SIGINT)
    out, err = promote.communicate(timeout=30)
    assert promote.returncode == 130, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("opsconductor canary promote: interrupted"), err
    assert "Traceback" not in err and "weights stable" in lines[0]
    assert wait_until_done(stack)["state"] == "succeeded"
    status = stack.cli("status")
    assert status.returncode == 0, status.stdout  # every component ready, the state file current
    assert "weights: stable 100 % / canary 0 %" in status.stdout
    assert stack.state.components["stable-1-automation"].pid != stable_before  # restarted on the new version


def test_a_second_change_while_one_runs_is_told_busy_or_waits_its_turn(stack):
    promote, _ = started(stack, "canary", "promote")
    try:
        busy = stack.cli("canary", "set", "50")
        assert busy.returncode == 75, busy.stdout + busy.stderr
        assert "busy: promote in progress" in busy.stderr and len(busy.stderr.strip().splitlines()) == 1
        waited = stack.cli("canary", "set", "50", "--wait", timeout=180)
    finally:
        promote.communicate(timeout=180)
    assert promote.returncode == 0
    assert waited.returncode == 0 and "waiting: busy: promote in progress" in waited.stderr, waited.stderr
    assert "weights: stable 50 % / canary 50 %" in waited.stdout


def test_a_client_killed_mid_change_leaves_the_channel_working(stack):
    bypass, _ = started(stack, "canary", "bypass", "on")
    bypass.kill()  # no chance to say goodbye
    bypass.communicate(timeout=30)
    after = stack.cli("canary", "set", "20", "--wait", timeout=180)  # answered, not hung
    assert after.returncode == 0, after.stderr
    assert wait_until_done(stack)["result"]["weights"] == {"stable": 80, "canary": 20, "mirror": 0}
    operations = json.loads((stack.state_dir / "operations.json").read_text())
    bypass_op = next(op for op in reversed(operations) if op["kind"] == "restart-pool")
    assert bypass_op["state"] == "succeeded"
