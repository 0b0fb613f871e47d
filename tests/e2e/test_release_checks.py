"""Release checks on a real stack with a real Prometheus: smoke, metrics gate, and one canary
rollout end to end (the analysis's every verdict is unit-tested in tests/unit/test_release_analysis.py)."""

from __future__ import annotations

import json

import pytest

from tests.support.stack import start_stack, stop_stack
from tests.support.traffic import Traffic

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
                                timeout=240)
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
