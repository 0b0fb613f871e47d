"""A stack's life: run it in the foreground (logs streamed, Ctrl-C stops it) or detached, read
each component's health, and stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from opsconductor.stack import control, state
from opsconductor.stack.processes import SERVING, health_status
from opsconductor.stack.spec import StackSpec
from opsconductor.stack.supervisor import Stack
from services.common.names import AUTOMATION_SERVICE, PIPELINE_SERVICE

Echo = Callable[[str], None]


class AlreadyRunning(RuntimeError):
    """A stack already runs from this state directory."""


def supervisor_alive(stack_state: state.StackState | None) -> bool:
    return stack_state is not None and psutil.pid_exists(stack_state.supervisor_pid)


def check_not_running(state_dir: Path) -> None:
    if supervisor_alive(state.StackState.read(state_dir)):
        raise AlreadyRunning(f"a stack is already running from {state_dir} (see `opsconductor status`)")


def run_foreground(stack: Stack, quiet: bool, echo: Echo = print) -> str | None:
    """Serves the control socket and streams logs until SIGINT/SIGTERM or a crash; stops every
    component; returns the crash report, or None after a requested stop. `stack` has started."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    listener = control.serve(stack.spec.state_dir / state.CONTROL_SOCKET, stack.handle)
    if not quiet:
        threading.Thread(target=stream_logs, args=(stack.logs, stop, echo), daemon=True).start()
    stack.mark_ready()
    crash = stack.watch(stop)
    listener.close()
    echo("stopping the mesh …")
    stack.stop()
    state.remove(stack.spec.state_dir)
    return crash


def start_detached(argv: Sequence[str], spec: StackSpec) -> tuple[int, state.StackState]:
    """Runs `opsconductor up ARGV` (without --detach) in a new session, logging to up.log, and
    waits until it is ready; returns its pid and state, or raises RuntimeError with the log."""
    argv = [a for a in argv if a != "--detach"]
    if "--quiet" not in argv:
        argv.append("--quiet")
    log = spec.state_dir / "up.log"
    with open(log, "ab") as out:
        child = subprocess.Popen([sys.executable, "-m", "opsconductor.cli", *argv], stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                 cwd=os.getcwd())
    while True:
        if child.poll() is not None:
            raise RuntimeError(f"the stack did not start:\n{log.read_text(errors='replace')[-3000:]}")
        stack_state = state.StackState.read(spec.state_dir)
        if stack_state is not None and stack_state.ready and stack_state.supervisor_pid == child.pid:
            return child.pid, stack_state
        time.sleep(0.1)  # polling the state file the child writes once it is ready


def stream_logs(logs: Path, stop: threading.Event, echo: Echo) -> None:
    """Echoes every component's new log lines, prefixed by its name."""
    offsets: dict[Path, int] = {}
    while not stop.wait(0.2):
        for path in sorted(logs.glob("*.log")):
            if path.name == "envoy-access.log":
                continue
            with open(path, "rb") as log:
                log.seek(offsets.get(path, 0))
                data = log.read()
            complete = data.rfind(b"\n") + 1
            offsets[path] = offsets.get(path, 0) + complete
            for line in data[:complete].decode(errors="replace").splitlines():
                echo(f"{path.stem:>22} | {line}")


@dataclass(frozen=True)
class ComponentHealth:
    name: str
    pid: int
    healthy: bool


def component_health(stack_state: state.StackState) -> list[ComponentHealth]:
    """Each component's health: its gRPC readiness, or its HTTP health path."""
    return [ComponentHealth(name, info.pid, psutil.pid_exists(info.pid) and _component_ok(name, stack_state))
            for name, info in stack_state.components.items()]


def _component_ok(name: str, stack_state: state.StackState) -> bool:
    replica = stack_state.replica_of(name)
    if replica is not None:
        if name == replica.component("automation"):
            return health_status(replica.health("automation"), AUTOMATION_SERVICE) == SERVING
        return health_status(replica.health("pipeline"), PIPELINE_SERVICE) == SERVING
    url = {"envoy": stack_state.endpoint(state.ENVOY_ADMIN) + "/ready",
           "page": stack_state.endpoint(state.PAGE) + "/healthz",
           "prometheus": stack_state.endpoint(state.PROMETHEUS) + "/-/ready",
           "traces": stack_state.endpoint(state.TRACES) + "/healthz"}.get(name)
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def stop(state_dir: Path) -> bool:
    """Stops the stack running from `state_dir`; False when there was none."""
    stack_state = state.StackState.read(state_dir)
    if stack_state is None:
        return False
    if psutil.pid_exists(stack_state.supervisor_pid):
        os.kill(stack_state.supervisor_pid, signal.SIGTERM)
        try:
            psutil.Process(stack_state.supervisor_pid).wait(90)
        except psutil.NoSuchProcess:
            pass
    # Whatever the supervisor could not stop (it crashed, say) is stopped here.
    for info in stack_state.components.values():
        try:
            child = psutil.Process(info.pid)
            child.terminate()
            child.wait(20)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            child.kill()
    state.remove(state_dir)
    return True
