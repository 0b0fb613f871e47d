"""Release checks on a real stack with a real Prometheus: smoke, metrics gate, and one canary
rollout end to end (the analysis's every verdict is unit-tested in tests/unit/test_release_analysis.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.procs import BIN
from tests.support.stack import start_stack, stop_stack
from tests.support.traffic import Traffic

ROOT = Path(__file__).resolve().parents[2]

FAST = ("--scrape-interval", "1", "--no-page")


def test_gate_without_traffic_is_inconclusive_not_a_pass(mesh_stack):
    result = mesh_stack.cli("gate", "local", "0.1", "--interval", "3", "--window", "3s")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "NO TRAFFIC" in result.stdout and "INCONCLUSIVE" in result.stdout


def test_smoke_passes_every_check_on_a_healthy_stack(mesh_stack):
    result = mesh_stack.cli("smoke", "local")
    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("gateway health", "echo over native gRPC", "echo over gRPC-Web", "counters increased",
                  "prometheus query answered", "metrics 127.0.0.1"):
        assert f"PASS  {check}" in result.stdout
    assert "FAIL" not in result.stdout


def test_gate_passes_with_healthy_traffic(mesh_stack):
    with Traffic(mesh_stack.gateway, rate=40):
        result = mesh_stack.cli("gate", "local", "0.15", "--interval", "3", "--window", "5s")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" OK ") >= 3 and "PASSED" in result.stdout


def test_smoke_names_what_failed(mesh_stack):
    mesh_stack.stop_components("canary-1-pipeline")
    try:
        result = mesh_stack.cli("smoke", "local")
    finally:
        mesh_stack.start_components("canary-1-pipeline")
    assert result.returncode == 1
    assert "FAIL  canary-1-pipeline health" in result.stdout and "FAIL  canary-1-automation health" in result.stdout
    assert "PASS  echo over native gRPC" in result.stdout  # the gateway failed over to stable


@pytest.fixture(scope="module")
def bad_canary(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("bad"), *FAST, "--canary-env", "FAULT_INJECT_EVERY_N=4")
    yield stack
    stop_stack(stack)


def test_rollout_rolls_back_a_canary_that_fails_every_fourth_call(bad_canary):
    with Traffic(bad_canary.gateway, rate=60):
        result = bad_canary.cli("canary", "rollout", "--steps", "25,100", "--interval", "4", "--min-calls", "10",
                                "--watch", timeout=240)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED: rolled back to stable" in result.stdout and "error rate" in result.stdout
    assert "PROMOTED" not in result.stdout
    status = json.loads(bad_canary.cli("canary", "status", "-o", "json").stdout)
    assert {row["name"]: row["weight"] for row in status["rows"]} == {"stable": 100, "canary": 0}


def test_gate_fails_fast_on_a_failing_deployment(bad_canary):
    assert bad_canary.cli("canary", "set", "100").returncode == 0
    try:
        with Traffic(bad_canary.gateway, rate=40):
            result = bad_canary.cli("gate", "local", "1", "--interval", "3", "--window", "5s")
    finally:
        bad_canary.cli("canary", "rollback")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout and "error rate" in result.stdout
    assert result.stdout.count("] ") < 20  # stopped at the first violation, not after all 20 intervals


def test_frontend_check_loads_the_page_in_chromium(mesh_stack):
    result = mesh_stack.cli("frontend-check", "local")
    assert result.returncode == 0, result.stdout + result.stderr
    for check in ("page served", "app root in HTML", "assets load", "runtime config", "app initialises"):
        assert f"PASS  {check}" in result.stdout
    assert "ready in Chromium" in result.stdout


def interruptible(argv: list[str], env: dict | None = None) -> subprocess.Popen:
    """A command that gets SIGINT as from a terminal (a non-interactive shell's background job ignores it)."""
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def canary_weight(stack) -> int:
    rows = json.loads(stack.cli("canary", "status", "-o", "json").stdout)["rows"]
    return next(row["weight"] for row in rows if row["name"] == "canary")


def test_ctrl_c_in_the_gate_ends_with_one_line_and_130(mesh_stack):
    gate = interruptible([str(BIN / "opsconductor"), "gate", "local", "1", "--interval", "3",
                          "--state-dir", str(mesh_stack.state_dir)])
    assert "metrics gate on local" in gate.stdout.readline()
    gate.send_signal(signal.SIGINT)
    _, err = gate.communicate(timeout=30)
    assert gate.returncode == 130
    assert err.strip().splitlines() == [err.strip()] and "interrupted; nothing was changed" in err
    assert "Traceback" not in err and "weights stable 90 % / canary 10 %" in err


def test_checks_and_their_scripts_find_the_stack_by_flag_or_variable(mesh_stack, tmp_path):
    elsewhere = {**os.environ, "OPSCONDUCTOR_STATE_DIR": str(mesh_stack.state_dir)}
    by_variable = subprocess.run([str(ROOT / "scripts" / "release_smoke.sh"), "local", "-o", "json"], cwd=tmp_path,
                                 env=elsewhere, capture_output=True, text=True, timeout=120)
    assert by_variable.returncode == 0, by_variable.stderr
    report = json.loads(by_variable.stdout)
    assert report["failed"] == 0 and report["passed"] >= 8 and report["environment"] == "local"
    by_flag = subprocess.run([str(ROOT / "scripts" / "release_metrics_gate.sh"), "local", "0.05", "--interval", "3",
                              "--window", "3s", "--state-dir", str(mesh_stack.state_dir), "-o", "json"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert by_flag.returncode == 3 and json.loads(by_flag.stdout)["outcome"].startswith("INCONCLUSIVE")
    nowhere = subprocess.run([str(ROOT / "scripts" / "release_frontend_check.sh"), "--state-dir",
                              str(tmp_path / "none")], capture_output=True, text=True, timeout=60)
    assert nowhere.returncode == 5 and "no stack is running from" in nowhere.stderr
