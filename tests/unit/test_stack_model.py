"""The local stack's plain-Python parts: the port layout, the restart policy, the typed state
(older and newer files still read), and operations run one at a time with their progress kept."""

from __future__ import annotations

import json
import threading

import pytest

from opsconductor.stack import ports, state
from opsconductor.stack.components import RestartPolicy
from opsconductor.stack.operations import Busy, Operations
from opsconductor.stack.processes import wait_for
from opsconductor.stack.spec import ROOT, StackSpec, Version


def test_the_default_port_table_is_unchanged():
    assert ports.replica_ports("stable", 0) == {"automation": 3010, "automation_metrics": 9110, "pipeline": 8010,
                                                "pipeline_metrics": 9210, "automation_health": 9310,
                                                "pipeline_health": 9410}
    assert ports.replica_ports("canary", 2)["pipeline"] == 8032


@pytest.mark.parametrize(("base", "replicas"), [(20000, 1), (20000, 3), (41000, 20)])
def test_a_base_port_gives_the_pool_a_contiguous_block(base, replicas):
    taken = sorted(port for i in range(replicas) for port in ports.replica_ports("canary", i, base, replicas).values())
    listeners = len(ports.REPLICA_PORT_NAMES)
    assert taken == list(range(base, base + listeners * replicas))
    first = ports.replica_ports("canary", 0, base, replicas)
    assert first["automation"] == base and first["pipeline_health"] == base + (listeners - 1) * replicas


def test_a_spec_refuses_ports_out_of_range_or_used_twice(tmp_path):
    after_one = 20000 + len(ports.REPLICA_PORT_NAMES)  # right after one stable replica's block
    StackSpec(state_dir=tmp_path, base_ports={"stable": 20000, "canary": after_one}, stable_replicas=1)
    with pytest.raises(ValueError, match=f"port {after_one} would be both"):
        StackSpec(state_dir=tmp_path, base_ports={"stable": 20000, "canary": after_one}, stable_replicas=2)
    with pytest.raises(ValueError, match="outside 1-65535"):
        StackSpec(state_dir=tmp_path, base_ports={"canary": 65534})
    with pytest.raises(ValueError, match="both the gateway"):
        StackSpec(state_dir=tmp_path, ports=ports.Ports(gateway=3010))
    StackSpec(state_dir=tmp_path, ports=ports.Ports(gateway=3010), auto_service_ports=True)  # free ports: no clash


def test_a_release_before_the_health_ports_is_read_on_its_grpc_port(tmp_path):
    every = ports.replica_ports("canary", 0)
    assert Version(ROOT, "").listeners(every) == every  # this checkout opens them all
    (tmp_path / "services" / "common").mkdir(parents=True)  # an older checkout: no transport.py
    older = Version(tmp_path, "0.2.0").listeners(every)
    assert set(older) == {"automation", "automation_metrics", "pipeline", "pipeline_metrics"}
    assert older["pipeline"] == every["pipeline"]


def test_free_ports_of_a_stack_are_all_different():
    # One bind-and-release after another may be handed the same port: a replica's metrics and
    # health listeners once got one port between them.
    blocks = [ports.free_replica_ports() for _ in range(5)]
    taken = [port for block in blocks for port in block.values()]
    assert len(taken) == 5 * len(ports.REPLICA_PORT_NAMES) == len(set(taken))
    assert all(set(block) == set(ports.REPLICA_PORT_NAMES) for block in blocks)


def test_the_port_table_names_every_flag():
    table = ports.markdown_table()
    for flag in ("--gateway-port", "--page-port", "--prometheus-port", "--envoy-admin-port", "--envoy-stats-port",
                 "--stable-base-port", "--canary-base-port"):
        assert f"`{flag}" in table
    assert "| 3010+*i* |" in table and "| 9902 |" in table


def test_restart_delays_double_up_to_the_maximum():
    policy = RestartPolicy(backoff_s=0.5, max_backoff_s=4, factor=2)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 4, 4]
    with pytest.raises(ValueError):
        RestartPolicy(backoff_s=-1)
    with pytest.raises(ValueError):
        RestartPolicy(crash_loop_limit=-1)


def test_state_reads_files_with_fields_it_does_not_know_or_lacks(tmp_path):
    (tmp_path / state.STATE_FILE).write_text(json.dumps({
        "supervisor_pid": 42, "ports": {}, "endpoints": {"gateway": "127.0.0.1:1"}, "control_socket": "x",
        "replicas": [], "components": {"envoy": {"pid": 7, "log": "envoy.log", "added_later": 1}},
        "something_new": True}))
    read = state.StackState.read(tmp_path)
    assert read is not None and read.components["envoy"].pid == 7 and read.components["envoy"].restarts == 0
    assert read.endpoint("gateway") == "127.0.0.1:1" and read.supervisor_started == 0.0
    (tmp_path / state.STATE_FILE).write_text("{half a file")
    assert state.StackState.read(tmp_path) is None


def test_the_state_dir_comes_from_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(state.STATE_DIR_VARIABLE, str(tmp_path))
    assert state.default_dir() == tmp_path
    monkeypatch.delenv(state.STATE_DIR_VARIABLE)
    assert str(state.default_dir()) == ".opsconductor"


def test_operations_run_one_at_a_time_and_keep_their_progress(tmp_path):
    operations = Operations(tmp_path)
    release = threading.Event()

    def slow(say):
        say("step 1")
        release.wait(10)
        say("step 2")
        return {"done": True}

    first = operations.submit("promote", "promote the canary", slow)
    with pytest.raises(Busy, match=r"busy: promote in progress \(operation 1"):
        operations.submit("set-weights", "canary to 50 %", lambda say: None)
    followed = operations.follow(first.id, heartbeat_s=0.05)
    assert next(followed) == "step 1"
    release.set()
    rest = list(followed)
    assert rest[-1].state == "succeeded" and rest[-1].result == {"done": True} and "step 2" in rest
    assert operations.wait_idle(5)
    # Kept in the state directory after every step, and read back by a new supervisor.
    assert [op.progress for op in state.read_operations(tmp_path)] == [["step 1", "step 2"]]
    second = Operations(tmp_path).submit("rollback", "roll back", lambda say: None)
    assert second.id == 2


def test_a_failed_operation_records_why_and_frees_the_channel(tmp_path):
    operations = Operations(tmp_path)

    def broken(say):
        raise RuntimeError("stable-1 did not start")

    operation = operations.submit("promote", "promote", broken)
    assert operations.wait_idle(5)
    assert operations.get(operation.id).state == "failed" and "did not start" in operations.get(operation.id).error
    operations.submit("rollback", "roll back", lambda say: None)


def test_closing_cuts_a_running_operation_short_and_refuses_more(tmp_path):
    operations = Operations(tmp_path)
    told: list[bool] = []

    def long(progress):  # stops at its next safe point once asked
        told.append(progress.stop_requested.wait(10))

    operation = operations.submit("rollout", "a long rollout", long)
    operations.close("the stack stopped while it ran")
    wait_for(lambda: told, 5, "the work to be told to stop")
    assert told == [True]
    assert operations.get(operation.id).state == "failed"
    assert state.read_operations(tmp_path)[-1].error == "the stack stopped while it ran"
    with pytest.raises(RuntimeError, match="stopping"):
        operations.submit("rollback", "roll back", lambda say: None)
