"""A stack's life: run it in the foreground (logs streamed; SIGINT, SIGTERM or SIGHUP stop it)
or detached, and stop it from another command. Each run starts with fresh logs (the previous
run's are kept in logs.previous/), so nothing of an earlier run is ever streamed again."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from opsconductor.stack import changes, state
from opsconductor.stack.console import Console
from opsconductor.stack.control import ControlServer
from opsconductor.stack.rollouts import Rollouts
from opsconductor.stack.ports import PortTaken
from opsconductor.stack.spec import StackSpec
from opsconductor.stack.supervision import StartError
from opsconductor.stack.supervisor import Stack

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
UP_LOG, PREVIOUS = "up.log", ".previous"


class AlreadyRunning(RuntimeError):
    """A stack already runs from this state directory."""


class _Interrupted(BaseException):
    """A stop signal arrived while the stack was still starting."""


def supervisor_alive(stack_state: state.StackState | None) -> bool:
    """Whether the supervisor that wrote `stack_state` still runs (not merely a reused pid)."""
    if stack_state is None:
        return False
    try:
        process = psutil.Process(stack_state.supervisor_pid)
        started, dead = process.create_time(), process.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
    return not dead and (not stack_state.supervisor_started or abs(started - stack_state.supervisor_started) < 1.0)


def check_not_running(state_dir: Path) -> None:
    if supervisor_alive(state.StackState.read(state_dir)):
        raise AlreadyRunning(f"a stack is already running from {state_dir} (see `opsconductor status`)")


def _rotate(path: Path) -> None:
    """Keeps the previous run's file or directory as <name>.previous, and only that one."""
    previous = path.with_name(path.name + PREVIOUS)
    if previous.is_dir():
        shutil.rmtree(previous)
    elif previous.exists():
        previous.unlink()
    if path.exists():
        path.rename(previous)


def run(spec: StackSpec, console: Console, quiet: bool = False) -> int:
    """Starts the stack, serves its control socket and supervises it until a stop signal (exit
    code 128 + the signal) or until the gateway cannot be kept up (1); stops every component."""
    received: list[int] = []
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        first = not received
        received.append(signum)
        stop.set()
        if first and not stop_started.is_set():
            raise _Interrupted()

    stop_started = threading.Event()  # from here on a signal only asks the watch loop to end
    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)
    logging.getLogger("opsconductor").addHandler(console.handler())
    logging.getLogger("opsconductor").setLevel(logging.INFO)
    _rotate(spec.state_dir / state.LOG_DIR)
    stack = Stack(spec, echo=console.message)
    console.message(f"starting the mesh (state in {spec.state_dir}) …")
    try:
        try:
            stack.start()
        finally:
            stop_started.set()
    except _Interrupted:
        console.message(f"interrupted by {signal.Signals(received[0]).name} while starting: every component "
                        "started so far is stopped")
        return 128 + received[0]
    except (PortTaken, StartError) as error:
        print(f"opsconductor up: {error}", file=sys.stderr, flush=True)
        return 1
    rollouts = Rollouts(stack)
    server = ControlServer(spec.state_dir / state.CONTROL_SOCKET, stack.operations,
                           {**changes.commands(stack), **rollouts.commands()}, rollouts.signals()).start()
    if not quiet:
        names = list(stack.supervisor.components)
        threading.Thread(target=console.follow_logs, args=(stack.logs, stop, names), daemon=True).start()
    stack.mark_ready()
    console.endpoints(stack.snapshot().labelled_endpoints())
    reason = stack.watch(stop)
    server.close()
    console.message("stopping the mesh …")
    stack.stop()
    state.remove(spec.state_dir)
    if reason:
        console.message("stopped; no process left behind")
        print(f"opsconductor up: {reason}", file=sys.stderr, flush=True)
        return 1
    console.message(f"stopped by {signal.Signals(received[0]).name}; no process left behind")
    return 128 + received[0]


def start_detached(argv: Sequence[str], spec: StackSpec) -> tuple[int, state.StackState]:
    """Runs `opsconductor up ARGV` (without --detach) in a new session, logging to up.log, and
    waits until it is ready; returns its pid and state, or raises RuntimeError with the log.
    Interrupted while it starts, it stops the half-started stack before going."""
    argv = [a for a in argv if a != "--detach"]
    if "--quiet" not in argv:
        argv.append("--quiet")
    log = spec.state_dir / UP_LOG
    _rotate(log)
    with open(log, "ab") as out:
        child = subprocess.Popen([sys.executable, "-m", "opsconductor.cli", *argv], stdout=out,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                 cwd=os.getcwd())
    try:
        while True:
            if child.poll() is not None:
                raise RuntimeError(f"the stack did not start:\n{log.read_text(errors='replace')[-3000:]}")
            stack_state = state.StackState.read(spec.state_dir)
            if stack_state is not None and stack_state.ready and stack_state.supervisor_pid == child.pid:
                return child.pid, stack_state
            time.sleep(0.1)  # polling the state file the child writes once it is ready
    except KeyboardInterrupt:
        child.terminate()
        child.wait(90)
        raise


def stop(state_dir: Path) -> bool:
    """Stops the stack running from `state_dir`; False when there was none."""
    stack_state = state.StackState.read(state_dir)
    if stack_state is None:
        return False
    if supervisor_alive(stack_state):
        os.kill(stack_state.supervisor_pid, signal.SIGTERM)
        try:
            psutil.Process(stack_state.supervisor_pid).wait(90)
        except psutil.NoSuchProcess:
            pass
    # Whatever the supervisor could not stop is stopped here: only the processes it started
    # (same pid and start time), never a process that reused a pid since.
    for info in stack_state.components.values():
        if info.pid <= 0:
            continue
        try:
            child = psutil.Process(info.pid)
            if info.started_at is not None and abs(child.create_time() - info.started_at) > 2:
                continue
            child.terminate()
            child.wait(20)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            child.kill()
    state.remove(state_dir)
    return True
