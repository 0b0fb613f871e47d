"""What a running stack tells its commands: the one reader and writer of the state directory's
files (stack.json, weights.json, the control socket's path). Every command and test reads the
stack through `StackState`, keyed by stable names rather than the labels `up` prints."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from opsconductor.gateway.admin import Weights

DEFAULT_STATE_DIR = Path(os.environ.get("OPSCONDUCTOR_STATE_DIR", ".opsconductor"))
STATE_FILE = "stack.json"
WEIGHTS_FILE = "weights.json"
CONTROL_SOCKET = "control.sock"
ROLLOUT_FILE = "rollout.json"  # the canary rollout in progress (or the last one), for the mesh view

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


class NoStack(RuntimeError):
    """No stack runs from the state directory."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(f"no stack is running from {state_dir.resolve()} (start one with `opsconductor up`)")


@dataclass(frozen=True)
class ComponentState:
    """One child process of the supervisor."""

    pid: int
    log: str


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
    tls: bool = False  # mTLS inside the mesh; the operator's identity is in the state directory
    gateway_tls: bool = False  # the gateway's edge listener speaks TLS

    def endpoint(self, key: str) -> str:
        """The endpoint's address, or "" when the stack runs without it."""
        return self.endpoints.get(key, "")

    def replica_of(self, component: str) -> ReplicaState | None:
        """The replica a component key belongs to (None for envoy, page, prometheus)."""
        return next((r for r in self.replicas if component.startswith(r.name + "-")), None)

    def labelled_endpoints(self) -> list[tuple[str, str]]:
        """(label, address) of every endpoint, as `up` prints them."""
        rows = [(f"{r.name} automation", r.automation) for r in self.replicas]
        rows += [(ENDPOINT_LABELS[key], address) for key, address in self.endpoints.items()]
        return rows

    def write(self, state_dir: Path) -> None:
        _write_json(state_dir / STATE_FILE, asdict(self))

    @classmethod
    def read(cls, state_dir: Path) -> StackState | None:
        """The state file's content, or None when there is none (or it is unreadable)."""
        try:
            data = json.loads((state_dir / STATE_FILE).read_text())
            return cls(supervisor_pid=data["supervisor_pid"], ports=data["ports"], endpoints=data["endpoints"],
                       components={name: ComponentState(**c) for name, c in data["components"].items()},
                       replicas=[ReplicaState(**r) for r in data["replicas"]],
                       control_socket=data["control_socket"], ready=data.get("ready", False),
                       tls=data.get("tls", False), gateway_tls=data.get("gateway_tls", False))
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
        return Weights(stable=int(data["stable"]), canary=int(data["canary"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_weights(state_dir: Path, weights: Weights) -> None:
    _write_json(state_dir / WEIGHTS_FILE, asdict(weights))


def write_rollout(state_dir: Path, record: dict) -> None:
    """What the mesh view shows of the rollout: its steps, the weight and verdicts so far."""
    _write_json(state_dir / ROLLOUT_FILE, record)


def _write_json(path: Path, data: object) -> None:
    # Readers poll these files: write a sibling, then rename it over, so none sees half a file.
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2))
    os.replace(temporary, path)
