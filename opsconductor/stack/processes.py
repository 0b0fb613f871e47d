"""Child processes of the operator tool: started so that none outlives its parent, however the
parent ends, waited on through gRPC health checks, and stopped gracefully by PID.

Every child runs in a session of its own (no controlling terminal: a Ctrl-C or a closed
terminal reaches the parent only, which then stops its children in order) and gets a
parent-death signal (PR_SET_PDEATHSIG, SIGKILL), so even a SIGKILLed parent leaves no child
behind. The kernel sends that signal when the *thread* that forked the child ends, so every
child is forked from one thread that lives as long as the process."""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

BIN = Path(sys.executable).parent
SERVING = health_pb2.HealthCheckResponse.SERVING
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Polls `predicate` until it holds; raises TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def wait_held(predicate: Callable[[], bool], hold_s: float, timeout: float, what: str,
                interval: float = 0.1) -> None:
    """Waits until `predicate` has held for `hold_s` in a row (a check that passes once can still
    be overturned by one already under way, such as a health check Envoy sent a moment before)."""
    since: list[float] = []

    def held() -> bool:
        if not predicate():
            since.clear()
            return False
        since[:] = since or [time.monotonic()]
        return time.monotonic() - since[0] >= hold_s

    wait_for(held, timeout, what, interval=interval)


def health_status(target: str, service: str = "", timeout: float = 1.0) -> int | None:
    """The grpc.health.v1 status of `service` at `target`, or None when it does not answer."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError:
            return None
    return reply.status


def _die_with_parent(parent: int) -> None:
    """Runs in the child between fork and exec."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class _Spawner:
    """Forks children on one long-lived thread (see the module docstring for why)."""

    def __init__(self) -> None:
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def popen(self, argv: Sequence[str], **options: object) -> subprocess.Popen:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="spawner", daemon=True)
                self._thread.start()
        if threading.current_thread() is self._thread:
            return self._spawn(argv, options)
        result: Future = Future()
        self._requests.put((argv, options, result))
        return result.result()

    def _serve(self) -> None:
        while True:
            argv, options, result = self._requests.get()
            try:
                result.set_result(self._spawn(argv, options))
            except BaseException as error:  # the caller re-raises it
                result.set_exception(error)

    @staticmethod
    def _spawn(argv: Sequence[str], options: dict) -> subprocess.Popen:
        parent = os.getpid()
        return subprocess.Popen(list(argv), start_new_session=True, preexec_fn=lambda: _die_with_parent(parent),
                                **options)


_SPAWNER = _Spawner()


def spawn(argv: Sequence[str], **options: object) -> subprocess.Popen:
    """subprocess.Popen(argv, **options) in a new session, killed when this process dies."""
    return _SPAWNER.popen(argv, **options)


def exit_reason(returncode: int | None) -> str:
    """'exit code 2', 'signal 9 (SIGKILL)' or 'running' for a Popen return code."""
    if returncode is None:
        return "running"
    if returncode < 0:
        try:
            return f"signal {-returncode} ({signal.Signals(-returncode).name})"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


@dataclass
class Child:
    """A child process whose output goes to a log file."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    cwd: Path | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> Child:
        with open(self.log_path, "ab") as log:
            self.popen = spawn(self.argv, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, cwd=self.cwd)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_healthy(self, target: str, service: str = "", timeout: float = 30.0) -> None:
        """Waits until the gRPC health of `service` at `target` is SERVING."""
        self.wait_until(lambda: health_status(target, service) == SERVING, timeout,
                        f"{self.name} to serve {service or 'liveness'} at {target}")

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Waits until `ready()`; raises RuntimeError if the process exits first, TimeoutError
        after `timeout` s, each with its last log lines."""
        def check() -> bool:
            if not self.running():
                raise RuntimeError(f"{self.name} exited ({exit_reason(self.popen.returncode)}):\n{self.log_tail()}")
            return ready()

        try:
            wait_for(check, timeout, what)
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{self.log_tail()}") from None

    def send(self, sig: int) -> None:
        """Sends `sig` to the child's process group (it and anything it started)."""
        if self.running():
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Sends `sig`, waits, and kills the process group after `timeout`; returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.send(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send(signal.SIGKILL)
                self.popen.wait()
        return self.popen.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
