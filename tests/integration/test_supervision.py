"""The supervisor on real processes and real signals, with small components (Python HTTP
servers) so each test takes a second or two: restarts with backoff, crash-looping past the
limit, an essential component that cannot be kept up, changes on command, and children that
die with their supervisor even when it is SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from opsconductor.stack.components import CRASH_LOOPING, RUNNING, STOPPED, ComponentSpec, RestartPolicy, http_ready
from opsconductor.stack.supervision import Supervisor
from tests.support.procs import free_port, wait_for

FAST = RestartPolicy(backoff_s=0.1, max_backoff_s=5, factor=2, crash_loop_limit=3, stable_after_s=60)
# Serves HTTP on its port the first time; every later start notes the time and exits 3.
CRASHER = """
import http.server, os, sys, time
path, port = sys.argv[1], int(sys.argv[2])
first = not os.path.exists(path)
with open(path, "a") as f:
    f.write(f"{time.monotonic()}\\n")
if not first:
    sys.exit(3)
http.server.HTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def web(name: str, port: int | None = None, **options: object) -> ComponentSpec:
    port = port or free_port()
    return ComponentSpec(name=name, kind="web", argv=(sys.executable, "-m", "http.server", str(port), "--bind",
                                                      "127.0.0.1"),
                         ready=http_ready(f"http://127.0.0.1:{port}/"), ports={"http": port}, restart=FAST,
                         start_timeout_s=20, stop_timeout_s=5, **options)


def crasher(name: str, starts: Path, **options: object) -> ComponentSpec:
    port = free_port()
    return ComponentSpec(name=name, kind="web", argv=(sys.executable, "-c", CRASHER, str(starts), str(port)),
                         ready=http_ready(f"http://127.0.0.1:{port}/"), restart=FAST, start_timeout_s=20,
                         stop_timeout_s=5, **options)


class Watched:
    """A supervisor whose watch loop runs on a thread, as `up` runs it."""

    def __init__(self, log_dir: Path) -> None:
        self.supervisor = Supervisor(log_dir)
        self.stop = threading.Event()
        self.outcome: list[str | None] = []
        self.thread = threading.Thread(target=lambda: self.outcome.append(self.supervisor.watch(self.stop)))

    def entry(self, name: str):
        return self.supervisor.components[name]


@pytest.fixture
def watched(tmp_path) -> Iterator[Watched]:
    running = Watched(tmp_path)
    running.thread.start()
    yield running
    running.stop.set()
    running.thread.join(10)
    running.supervisor.stop_all()


def test_a_killed_component_is_restarted_and_the_others_are_left_alone(watched):
    watched.supervisor.start(web("a"))
    watched.supervisor.start(web("b"))
    a, b = watched.entry("a"), watched.entry("b")
    old_pid, other_pid = a.pid, b.pid
    killed_at = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: a.state == RUNNING and a.pid != old_pid, 20, "a to be back")
    assert a.restarts == 1 and a.last_exit == "signal 9 (SIGKILL)"
    assert time.monotonic() - killed_at >= FAST.backoff_s
    assert a.spec.ready() and b.pid == other_pid and b.restarts == 0 and b.state == RUNNING


def test_a_component_that_exits_on_its_own_is_restarted_too(watched):
    watched.supervisor.start(web("a"))
    a = watched.entry("a")
    old_pid = a.pid
    os.kill(old_pid, signal.SIGTERM)  # a clean exit nobody asked the supervisor for
    wait_for(lambda: a.state == RUNNING and a.pid != old_pid, 20, "a to be back")
    assert a.restarts == 1 and a.last_exit in ("exit code 0", "signal 15 (SIGTERM)")


def test_failures_in_a_row_back_off_then_crash_loop_and_the_rest_keeps_running(watched, tmp_path):
    starts = tmp_path / "starts"
    watched.supervisor.start(crasher("flaky", starts))
    watched.supervisor.start(web("steady"))
    flaky, steady = watched.entry("flaky"), watched.entry("steady")
    os.kill(flaky.pid, signal.SIGKILL)
    wait_for(lambda: flaky.state == CRASH_LOOPING, 20, "flaky to be given up")
    times = [float(line) for line in starts.read_text().split()]
    assert len(times) == 1 + FAST.crash_loop_limit  # the first start, then one try per allowed failure
    gaps = [later - earlier for earlier, later in zip(times[1:-1], times[2:], strict=True)]
    assert gaps[0] >= FAST.delay(2) and gaps[1] >= FAST.delay(3), gaps  # each wait doubles
    assert flaky.last_exit.startswith("flaky exited (exit code 3)")
    assert steady.state == RUNNING and steady.spec.ready() and not watched.outcome  # the watch goes on


def test_an_essential_component_that_cannot_be_kept_up_ends_the_watch(watched, tmp_path):
    watched.supervisor.start(crasher("gateway", tmp_path / "starts", essential=True))
    os.kill(watched.entry("gateway").pid, signal.SIGKILL)
    watched.thread.join(20)
    assert watched.outcome and "gateway could not be kept up" in watched.outcome[0]
    assert "crash-looping" in watched.outcome[0]


def test_changes_on_command_are_never_undone_by_a_restart(watched):
    watched.supervisor.start(web("a"))
    a = watched.entry("a")
    watched.supervisor.stop_component("a")
    assert a.state == STOPPED and not a.child.running()
    watched.stop.wait(3 * FAST.backoff_s)  # several watch rounds: none may restart it
    assert a.state == STOPPED and a.restarts == 0
    watched.supervisor.start_component("a")
    assert a.state == RUNNING and a.spec.ready()
    port = free_port()
    watched.supervisor.replace(web("a", port))
    assert a.spec.ports == {"http": port} and a.spec.ready() and a.restarts == 0


def test_stop_all_leaves_no_process_and_restarts_nothing(tmp_path):
    running = Watched(tmp_path)
    running.thread.start()
    try:
        for name in ("a", "b", "c"):
            running.supervisor.start(web(name))
        children = [psutil.Process(entry.pid) for entry in running.supervisor.components.values()]
    finally:
        running.supervisor.stop_all()
        running.stop.set()
        running.thread.join(10)
    assert not [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
    assert all(entry.restarts == 0 for entry in running.supervisor.components.values())


# A supervisor of its own (a separate process) that starts its children from a thread that
# ends at once, prints their pids and waits.
SUPERVISOR = """
import json, sys, threading, time
from pathlib import Path
from opsconductor.stack.components import ComponentSpec, http_ready
from opsconductor.stack.supervision import Supervisor
supervisor = Supervisor(Path(sys.argv[1]))
def start():
    for index, port in enumerate(sys.argv[2:]):
        supervisor.start(ComponentSpec(name=f"web{index}", kind="web", ready=http_ready(f"http://127.0.0.1:{port}/"),
                                       argv=(sys.executable, "-m", "http.server", port, "--bind", "127.0.0.1")))
starter = threading.Thread(target=start)
starter.start()
starter.join()
print(json.dumps([entry.pid for entry in supervisor.components.values()]), flush=True)
time.sleep(600)
"""


def test_children_die_with_a_sigkilled_supervisor_and_not_with_the_thread_that_started_them(tmp_path):
    ports = [str(free_port()) for _ in range(2)]
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, str(tmp_path), *ports], stdout=subprocess.PIPE,
                                  text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        children = [psutil.Process(pid) for pid in json.loads(supervisor.stdout.readline())]
        # The thread that asked for them has ended; they still serve.
        assert all(http_ready(f"http://127.0.0.1:{port}/")() for port in ports)
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait(10)
        wait_for(lambda: not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE], 10,
                 "the children to die with their supervisor")
    finally:
        supervisor.kill()
        for child in children if "children" in locals() else []:
            if child.is_running():
                child.kill()


# While a gRPC channel is busy connecting (a probe, a test's client), a child is started: gRPC's
# own fork handlers, which can hang such a fork, must not run.
FORK_WITH_GRPC = """
import sys
from opsconductor.stack import processes
import grpc
channel = grpc.insecure_channel(sys.argv[1])
try:
    grpc.channel_ready_future(channel).result(timeout=0.3)
except grpc.FutureTimeoutError:
    pass
for _ in range(3):
    processes.spawn([sys.executable, "-c", "pass"]).wait(10)
print("spawned", flush=True)
"""


def test_starting_a_child_runs_no_grpc_fork_handler():
    env = {name: value for name, value in os.environ.items() if name != "GRPC_ENABLE_FORK_SUPPORT"}
    result = subprocess.run([sys.executable, "-c", FORK_WITH_GRPC, f"127.0.0.1:{free_port()}"], capture_output=True,
                            text=True, timeout=60, cwd=Path(__file__).resolve().parents[2],
                            env={**env, "GRPC_TRACE": "fork", "GRPC_VERBOSITY": "debug"})
    assert result.returncode == 0 and "spawned" in result.stdout, result.stderr
    assert "gRPC Tracers: fork" in result.stderr  # the trace is on: a fork handler would say so
    assert "fork_posix" not in result.stderr, result.stderr
