"""`opsconductor up`, `status`, `down` and `canary` on the real mesh. How `up` ends is in
test_up_signals.py; control commands interrupted or run at once in test_control_commands.py."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections import Counter

import grpc
import pytest

from opsconductor.automation.v1 import automation_pb2
from opsconductor.stack.ports import REPLICA_PORT_NAMES
from tests.support.calls import automation_stub
from tests.support.procs import wait_for
from tests.support.stack import free_block, start_stack, stack_ports, stop_stack, up_argv

PING = automation_pb2.ExecuteRequest(input="ping", tool="echo")


def pools(gateway: str, calls: int) -> Counter:
    channel, stub = automation_stub(gateway)
    with channel:
        return Counter(stub.Execute(PING, timeout=10).pool for _ in range(calls))


def test_up_refuses_a_taken_port_naming_it_and_its_holder(tmp_path):
    ports = stack_ports()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports["gateway"]))
        holder.listen()
        result = subprocess.run(up_argv(tmp_path, ports), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"port {ports['gateway']} (gateway) is taken by pid" in result.stderr


def test_each_pools_replicas_listen_from_its_base_port(tmp_path):
    per_replica = len(REPLICA_PORT_NAMES)  # gRPC, metrics and health of both services
    base = free_block(3 * per_replica)  # stable: 2 replicas, canary: 1
    canary = base + 2 * per_replica
    stack = start_stack(tmp_path, "--no-prometheus", "--no-page", "--stable-replicas", "2",
                        "--stable-base-port", str(base), "--canary-base-port", str(canary))
    try:
        ports = {c["name"]: c["ports"] for c in json.loads(stack.cli("status", "-o", "json").stdout)["components"]}
        assert ports["stable-1-automation"] == {"grpc": base, "metrics": base + 2, "health": base + 8}
        assert ports["stable-2-pipeline"] == {"grpc": base + 5, "metrics": base + 7, "health": base + 11}
        assert ports["canary-1-automation"] == {"grpc": canary, "metrics": canary + 1, "health": canary + 4}
        assert sorted(p for name, used in ports.items() if name.startswith(("stable", "canary"))
                      for p in used.values()) == list(range(base, base + 3 * per_replica))
        assert pools(stack.gateway, 20)["stable"] > 0
    finally:
        stop_stack(stack)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("stack"), "--no-prometheus", "--no-page")
    yield running
    stop_stack(running)


def test_status_reports_every_component_healthy(stack):
    result = stack.cli("status")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("stable-1-pipeline", "stable-1-automation", "canary-1-pipeline", "canary-1-automation", "envoy"):
        assert f"{name}" in result.stdout
    assert "NOT READY" not in result.stdout and "weights: stable 90 % / canary 10 %" in result.stdout
    report = json.loads(stack.cli("status", "-o", "json").stdout)
    envoy = next(c for c in report["components"] if c["name"] == "envoy")
    assert envoy["state"] == "running" and envoy["healthy"] and envoy["ports"]["gateway"] == stack.ports["gateway"]
    assert envoy["version"] and envoy["uptime_s"] > 0 and envoy["restarts"] == 0 and envoy["essential"]
    assert report["weights"] == {"stable": 90, "canary": 10} and report["healthy"]
    store = next(c for c in report["components"] if c["name"] == "traces")  # supervised like the rest
    assert store["kind"] == "traces" and store["state"] == "running" and store["healthy"] and not store["essential"]
    assert store["ports"] == {"otlp": stack.ports["traces-otlp"], "query": stack.ports["traces-query"],
                              "metrics": stack.ports["traces-metrics"]}
    assert report["endpoints"]["traces"] == stack.traces_url
    tail = json.loads(stack.cli("status", "canary-1-pipeline", "--logs", "2", "-o", "json").stdout)
    assert [c["name"] for c in tail["components"]] == ["canary-1-pipeline"]
    assert len(tail["components"][0]["last_lines"]) == 2  # it has logged "selector evaluated", "serving"


def test_canary_set_and_rollback_take_effect_at_once(stack):
    assert stack.cli("canary", "set", "50").returncode == 0
    split = pools(stack.gateway, 1000)
    assert 420 <= split["canary"] <= 580 and sum(split.values()) == 1000, split
    assert stack.cli("canary", "set", "100").returncode == 0
    assert pools(stack.gateway, 200) == Counter(canary=200)
    rollback = stack.cli("canary", "rollback")
    assert rollback.returncode == 0 and "rolled back" in rollback.stdout
    assert pools(stack.gateway, 200) == Counter(stable=200)


@pytest.mark.parametrize("bad", ["12.5", "-1", "101", "ten", "", " 5x"])
def test_invalid_canary_share_is_rejected_and_weights_stay(stack, bad):
    assert stack.cli("canary", "set", "30").returncode == 0
    result = stack.cli("canary", "set", bad)
    assert result.returncode == 2 and "whole number from 0 to 100" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    status = json.loads(stack.cli("canary", "status", "-o", "json").stdout)
    assert {row["name"]: row["weight"] for row in status["rows"]} == {"stable": 70, "canary": 30}


def test_promote_under_load_fails_no_call(stack):
    assert stack.cli("canary", "set", "10").returncode == 0
    failures, successes, stop = Counter(), Counter(), threading.Event()

    def load() -> None:
        channel, stub = automation_stub(stack.gateway)
        with channel:
            while not stop.is_set():
                try:
                    successes[stub.Execute(PING, timeout=10).pool] += 1
                except grpc.RpcError as error:
                    failures[error.code().name] += 1

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        wait_for(lambda: sum(successes.values()) > 50, 30, "load to flow")
        result = stack.cli("canary", "promote", timeout=180)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stable now runs the canary's version" in result.stdout
    assert not failures, failures
    assert pools(stack.gateway, 100) == Counter(stable=100)


def test_pipeline_outage_drill_fails_over_and_recovers(stack):
    assert stack.cli("canary", "set", "50").returncode == 0
    stack.stop_components("canary-1-pipeline")
    assert pools(stack.gateway, 100) == Counter(stable=100)  # the canary pool's share failed over
    stack.start_components("canary-1-pipeline")
    wait_for(lambda: pools(stack.gateway, 50)["canary"] > 0, 30, "the canary pool to take traffic again")
