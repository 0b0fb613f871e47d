"""What the supervisor runs: a component is a named process (argv, environment, working
directory), a readiness check, a restart policy, and whether the stack can live without it.
A new part of the stack (a trace store, a certificate issuer …) is one ComponentSpec."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from opsconductor.stack.processes import SERVING, health_status

# Component states, as `status` shows them.
STARTING, RUNNING, RESTARTING, CRASH_LOOPING, STOPPED = "starting", "running", "restarting", "crash-looping", "stopped"


@dataclass(frozen=True)
class RestartPolicy:
    """A component that exits unasked is started again after a delay that doubles with each
    failure in a row; past `crash_loop_limit` failures in a row it is left down
    (crash-looping). A run that stayed ready for `stable_after_s` starts the count again."""

    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    factor: float = 2.0
    crash_loop_limit: int = 5
    stable_after_s: float = 10.0

    def __post_init__(self) -> None:
        if self.backoff_s < 0 or self.max_backoff_s < self.backoff_s or self.factor < 1:
            raise ValueError("restart backoff must be ≥ 0, its maximum at least the first delay, factor ≥ 1")
        if self.crash_loop_limit < 0:
            raise ValueError("the crash-loop limit must be ≥ 0")

    def delay(self, failures: int) -> float:
        """Seconds to wait before the restart that follows the `failures`-th failure in a row."""
        return min(self.backoff_s * self.factor ** max(failures - 1, 0), self.max_backoff_s)


@dataclass(frozen=True)
class ComponentSpec:
    """One supervised process."""

    name: str  # unique in the stack, e.g. "stable-1-pipeline", "envoy"
    kind: str  # what it is: automation, pipeline, gateway, page, prometheus …
    argv: tuple[str, ...]
    ready: Callable[[], bool]  # a quick probe: True once it does its job (gRPC health, HTTP 200)
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    ports: Mapping[str, int] = field(default_factory=dict)  # what it listens on, for `status`
    version: str = ""
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    essential: bool = False  # when it cannot be kept up, the whole stack stops
    replica_set: str = ""  # the set of interchangeable replicas it is one of (e.g. "gateway")
    before_start: Callable[[], None] | None = None  # runs before each start (e.g. write its config)
    after_ready: Callable[[], None] | None = None  # runs after each start once ready
    start_timeout_s: float = 60.0
    stop_timeout_s: float = 20.0


def grpc_ready(target: str, service: str = "") -> Callable[[], bool]:
    """Ready when the gRPC health of `service` at `target` is SERVING."""
    return lambda: health_status(target, service) == SERVING


def http_ready(url: str) -> Callable[[], bool]:
    """Ready when `url` answers 200."""
    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except (OSError, ValueError):
            return False

    return ready
