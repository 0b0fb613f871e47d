"""Child processes of the operator tool: readiness through gRPC health checks, and graceful
stops by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

BIN = Path(sys.executable).parent
SERVING = health_pb2.HealthCheckResponse.SERVING


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Polls `predicate` until it holds; raises TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def health_status(target: str, service: str = "", timeout: float = 1.0) -> int | None:
    """The grpc.health.v1 status of `service` at `target`, or None when it does not answer."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError:
            return None
    return reply.status


@dataclass
class Child:
    """A child process whose output goes to a log file."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    cwd: Path | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, new_session: bool = False) -> Child:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(list(self.argv), env={**os.environ, **self.env}, stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.cwd,
                                          start_new_session=new_session)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_healthy(self, target: str, service: str = "", timeout: float = 30.0) -> None:
        """Waits until the gRPC health of `service` at `target` is SERVING."""
        def serving() -> bool:
            if not self.running():
                raise RuntimeError(f"{self.name} exited with code {self.popen.returncode}:\n{self.log_tail()}")
            return health_status(target, service) == SERVING

        try:
            wait_for(serving, timeout, f"{self.name} to serve {service or 'liveness'} at {target}")
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{self.log_tail()}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Sends `sig`, waits, and kills after `timeout`; returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
