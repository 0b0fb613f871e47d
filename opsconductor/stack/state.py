"""What a running stack tells its commands: the one reader and writer of the state directory's
files (stack.json, weights.json, operations.json, rollout.json, the control socket's path). Every command and
test reads the stack through these types, keyed by stable names rather than the labels `up`
prints."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from opsconductor.gateway.admin import Weights

STATE_DIR_VARIABLE = "OPSCONDUCTOR_STATE_DIR"
STATE_FILE = "stack.json"
WEIGHTS_FILE = "weights.json"  # the canary weights: their one source
RUNTIME_DIR = "runtime"  # the runtime layer every gateway reads, made from weights.json
OPERATIONS_FILE = "operations.json"
CONTROL_SOCKET = "control.sock"
LOG_DIR = "logs"
KEPT_OPERATIONS = 20
ROLLOUT_FILE = "rollout.json"  # the canary rollout in progress (or the last one), for the mesh view
ROLLOUTS_DIR = "rollouts"  # one record (and its plot) per finished rollout
KEPT_ROLLOUTS = 50

# Endpoint keys, and how `up` shows each one.
GATEWAY, ENVOY_ADMIN, ENVOY_STATS, PAGE, PROMETHEUS = "gateway", "envoy_admin", "envoy_stats", "page", "prometheus"
TRACES = "traces"
ENDPOINT_LABELS = {
    GATEWAY: "gateway (gRPC, gRPC-Web)",
    ENVOY_ADMIN: "Envoy admin",
    ENVOY_STATS: "Envoy stats",
    PAGE: "Exec Sandbox page",
    PROMETHEUS: "Prometheus",
    TRACES: "trace store (query API)",
}


def endpoint_label(key: str) -> str:
    """How `up` shows an endpoint; gateway replica N's listener is "gateway-N"."""
    if key.startswith(f"{GATEWAY}-") and key.removeprefix(f"{GATEWAY}-").isdigit():
        return f"{ENDPOINT_LABELS[GATEWAY]} replica {key.removeprefix(f'{GATEWAY}-')}"
    return ENDPOINT_LABELS[key]


def default_dir() -> Path:
    """The state directory when no --state-dir is given: $OPSCONDUCTOR_STATE_DIR, else .opsconductor."""
    return Path(os.environ.get(STATE_DIR_VARIABLE) or ".opsconductor")


DEFAULT_STATE_DIR = default_dir()


class NoStack(RuntimeError):
    """No stack runs from the state directory."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(f"no stack is running from {state_dir.resolve()} (start one with `opsconductor up`)")


@dataclass(frozen=True)
class ComponentState:
    """One supervised component: its process, what it listens on, and what happened to it."""

    pid: int  # 0 while it has no process
    log: str
    kind: str = ""  # automation, pipeline, gateway, page, prometheus …
    state: str = "running"  # starting, running, restarting, crash-looping, stopped
    ports: dict[str, int] = field(default_factory=dict)
    version: str = ""
    started_at: float | None = None  # epoch seconds of the current process's start
    restarts: int = 0
    last_exit: str = ""  # "signal 9 (SIGKILL)", "exit code 2", or "" when it never exited
    last_exit_at: float | None = None
    essential: bool = False  # the stack stops when it cannot be kept up
    replica_set: str = ""  # the set of interchangeable replicas it belongs to ("gateway")


@dataclass
class OperationState:
    """A change the supervisor carries out (promote, set weights …), kept after every step."""

    id: int
    kind: str  # e.g. "promote", "set-weights"
    description: str  # what a person reads: "promote the canary"
    state: str = "running"  # running, succeeded, failed
    started_at: float = 0.0
    ended_at: float | None = None
    progress: list[str] = field(default_factory=list)
    error: str = ""
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state != "running"


@dataclass(frozen=True)
class ReplicaState:
    """One replica: an automation process and the pipeline it calls, each with its metrics port."""

    name: str  # "stable-1"
    pool: str
    automation: str  # host:port of each listener
    pipeline: str
    automation_metrics: str
    pipeline_metrics: str
    version: str
    source: str
    automation_health: str = ""  # plaintext grpc.health.v1 only
    pipeline_health: str = ""

    def health(self, service: str) -> str:
        """Where `service`'s health is read (its plaintext health port; its gRPC port before those existed)."""
        return getattr(self, f"{service}_health") or getattr(self, service)

    def component(self, service: str) -> str:
        """The component key of this replica's automation or pipeline process."""
        return f"{self.name}-{service}"


@dataclass
class StackState:
    """stack.json: PIDs, addresses and versions of everything `up` started."""

    supervisor_pid: int
    ports: dict[str, int]
    endpoints: dict[str, str]  # endpoint key -> address or URL
    components: dict[str, ComponentState]
    replicas: list[ReplicaState]
    control_socket: str
    ready: bool = False
    supervisor_started: float = 0.0  # the supervisor's process start time (tells a reused pid apart)
    version: str = ""  # the operator tool's version
    started_at: float = 0.0  # epoch seconds when `up` started
    tls: bool = False  # mTLS inside the mesh; the operator's identity is in the state directory
    gateway_tls: bool = False  # the gateway's edge listener speaks TLS

    def endpoint(self, key: str) -> str:
        """The endpoint's address, or "" when the stack runs without it."""
        return self.endpoints.get(key, "")

    def labelled_endpoints(self) -> list[tuple[str, str]]:
        """(label, address) of every endpoint, as `up` prints them."""
        rows = [(f"{r.name} automation", r.automation) for r in self.replicas]
        rows += [(endpoint_label(key), address) for key, address in self.endpoints.items()]
        return rows

    def write(self, state_dir: Path) -> None:
        _write_json(state_dir / STATE_FILE, asdict(self))

    @classmethod
    def read(cls, state_dir: Path) -> StackState | None:
        """The state file's content, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads((state_dir / STATE_FILE).read_text())
            return cls(**{**_known(cls, data),
                          "components": {name: ComponentState(**_known(ComponentState, c))
                                         for name, c in data["components"].items()},
                          "replicas": [ReplicaState(**_known(ReplicaState, r)) for r in data["replicas"]]})
        except (OSError, ValueError, KeyError, TypeError):
            return None


def load(state_dir: Path) -> StackState:
    """The running stack's state; raises NoStack when there is none."""
    state = StackState.read(state_dir)
    if state is None:
        raise NoStack(state_dir)
    return state


def remove(state_dir: Path) -> None:
    (state_dir / STATE_FILE).unlink(missing_ok=True)


def read_weights(state_dir: Path) -> Weights | None:
    """The weights kept for a restarted stack, if any were set."""
    try:
        data = json.loads((state_dir / WEIGHTS_FILE).read_text())
        return Weights(stable=int(data["stable"]), canary=int(data["canary"]), mirror=int(data.get("mirror", 0)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_weights(state_dir: Path, weights: Weights) -> None:
    _write_json(state_dir / WEIGHTS_FILE, asdict(weights))


def read_operations(state_dir: Path) -> list[OperationState]:
    """The latest operations, oldest first (at most KEPT_OPERATIONS)."""
    try:
        return [OperationState(**_known(OperationState, entry))
                for entry in json.loads((state_dir / OPERATIONS_FILE).read_text())]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def write_operation(state_dir: Path, operation: OperationState) -> None:
    """Records `operation` (new, or a step further), keeping the latest few."""
    kept = [entry for entry in read_operations(state_dir) if entry.id != operation.id]
    kept = (kept + [operation])[-KEPT_OPERATIONS:]
    _write_json(state_dir / OPERATIONS_FILE, [asdict(entry) for entry in sorted(kept, key=lambda e: e.id)])


def _known(cls: type, data: dict) -> dict:
    """The entries of `data` that are fields of `cls`: a newer or older file still reads."""
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in data.items() if key in names}


def write_rollout(state_dir: Path, record: dict) -> None:
    """What the mesh view shows of the rollout: its steps, the weight and verdicts so far."""
    _write_json(state_dir / ROLLOUT_FILE, record)


def read_rollout(state_dir: Path) -> dict | None:
    """The rollout in progress (or the last one), as write_rollout kept it."""
    try:
        data = json.loads((state_dir / ROLLOUT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def history_path(state_dir: Path, rollout_id: int, suffix: str = ".json") -> Path:
    return state_dir / ROLLOUTS_DIR / f"rollout-{rollout_id:04d}{suffix}"


def write_history(state_dir: Path, record: dict) -> Path:
    """Keeps a finished rollout's record (the latest KEPT_ROLLOUTS, plots with them)."""
    path = history_path(state_dir, int(record["id"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json(path, record)
    for old in sorted(path.parent.glob("rollout-*.json"))[:-KEPT_ROLLOUTS]:
        for sibling in path.parent.glob(f"{old.stem}.*"):
            sibling.unlink(missing_ok=True)
    return path


def read_history(state_dir: Path) -> list[dict]:
    """Finished rollouts, oldest first."""
    records = []
    for path in sorted((state_dir / ROLLOUTS_DIR).glob("rollout-*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            records.append(data)
    return records


def _write_json(path: Path, data: object) -> None:
    # Readers poll these files: write a sibling, then rename it over, so none sees half a file.
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2))
    os.replace(temporary, path)
