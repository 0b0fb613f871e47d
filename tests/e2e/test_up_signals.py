"""However `opsconductor up` ends, no child outlives it: Ctrl-C (SIGINT), SIGTERM, SIGHUP (its
terminal closed) and even SIGKILL, each with real processes and real signals; and a new `up`
from the same state directory never replays the previous run's logs."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import subprocess
import termios
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from tests.support.procs import wait_for
from tests.support.stack import start_stack, stack_ports, up_argv

pytestmark = pytest.mark.slow
LEAN = ("--no-prometheus", "--no-page")


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def read_until(stream, marker: str, timeout: float = 90) -> list[str]:
    """Lines of a child's output up to the one holding `marker`."""
    lines: list[str] = []
    for line in stream:
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} never came:\n{''.join(lines)}")


def default_sigint() -> None:
    # A background job of a non-interactive shell starts with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def foreground(state_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(up_argv(state_dir, stack_ports(), *LEAN, *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=default_sigint)


def stop_and_check(up: subprocess.Popen, sig: int, code: int) -> str:
    """Sends `sig` to a foreground `up` that is up; checks it ends with `code` and no child left."""
    children = psutil.Process(up.pid).children(recursive=True)
    assert len(children) >= 5  # two pipelines, two automations, Envoy
    up.send_signal(sig)
    output = up.communicate(timeout=60)[0]
    assert up.returncode == code, output
    assert not alive(children)
    assert f"stopped by {signal.Signals(sig).name}; no process left behind" in output
    assert "Traceback" not in output
    return output


def test_ctrl_c_and_sigterm_stop_a_foreground_up_and_the_next_never_replays_its_logs(tmp_path):
    first = foreground(tmp_path)
    read_until(first.stdout, "the mesh is up")
    stop_and_check(first, signal.SIGINT, 130)
    second_started = datetime.now().astimezone()
    second = foreground(tmp_path)  # the same state directory
    lines = read_until(second.stdout, "the mesh is up")
    lines += read_until(second.stdout, '"component": "stable-1-pipeline"')  # the streamed logs begin
    stop_and_check(second, signal.SIGTERM, 143)
    entries = [json.loads(line) for line in lines]  # not a terminal: JSON lines
    earlier = [entry for entry in entries if datetime.fromisoformat(entry["time"]) < second_started]
    assert entries and not earlier, earlier[:3]
    assert (tmp_path / "logs.previous" / "stable-1-pipeline.log").exists()


def test_closing_the_terminal_of_a_foreground_up_leaves_no_child(tmp_path):
    master, slave = pty.openpty()

    def own_terminal() -> None:  # the pty becomes the controlling terminal, as in a shell
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        default_sigint()

    up = subprocess.Popen(up_argv(tmp_path, stack_ports(), *LEAN, "--quiet"), stdin=slave, stdout=slave,
                          stderr=slave, preexec_fn=own_terminal)
    os.close(slave)
    seen = b""
    try:
        while b"the mesh is up" not in seen:
            ready, _, _ = select.select([master], [], [], 90)
            assert ready and up.poll() is None, seen.decode(errors="replace")
            seen += os.read(master, 65536)
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 5
        assert b"\x1b[" in seen  # a terminal: readable lines, in colour
    finally:
        os.close(master)  # the terminal goes away: the kernel sends SIGHUP
    assert up.wait(60) == 129
    assert not alive(children)
    assert not (tmp_path / "stack.json").exists()


def test_a_sigkilled_supervisor_takes_every_child_with_it(tmp_path, built_page):
    stack = start_stack(tmp_path)  # everything: the trace store, both pools, Envoy, the page and Prometheus
    state = stack.state
    supervisor = psutil.Process(state.supervisor_pid)
    children = [psutil.Process(info.pid) for info in state.components.values()]
    try:
        assert {"traces", "envoy", "page", "prometheus"} <= set(state.components) and len(children) == 8
        os.kill(state.supervisor_pid, signal.SIGKILL)
        wait_for(lambda: not alive(children), 10, "every child to die with the supervisor")
    finally:  # nothing left behind, also when an assertion failed before the kill
        for process in alive([supervisor, *children]):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
    result = stack.cli("status")
    assert result.returncode == 5 and "ended without cleaning up" in result.stdout
    restarted = start_stack(tmp_path, *LEAN)  # the state directory is usable again at once
    assert restarted.cli("down").returncode == 0
