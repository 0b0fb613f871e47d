"""What `opsconductor status` reports: the supervisor; each component's state, health, pid,
ports, version, uptime, restart count and last exit (and its last log lines on request); the
weights and the operation in progress. Read from the state directory, health checked live."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from opsconductor.stack import state, traces
from opsconductor.stack.components import RUNNING, grpc_ready, http_ready
from opsconductor.stack.lifecycle import supervisor_alive
from opsconductor.stack.weights import applied, disagreement, gateway_admins
from services.common.names import AUTOMATION_SERVICE, PIPELINE_SERVICE

# How `status` checks a running component of each kind, from its ports. A kind without a
# probe counts as healthy while it runs.
# A service's readiness is read on its health-only port when it has one, else on its gRPC port.
PROBES: dict[str, Callable[[Mapping[str, int]], Callable[[], bool]]] = {
    "automation": lambda ports: grpc_ready(f"127.0.0.1:{ports.get('health', ports['grpc'])}", AUTOMATION_SERVICE),
    "pipeline": lambda ports: grpc_ready(f"127.0.0.1:{ports.get('health', ports['grpc'])}", PIPELINE_SERVICE),
    "gateway": lambda ports: http_ready(f"http://127.0.0.1:{ports['admin']}/ready"),
    "page": lambda ports: http_ready(f"http://127.0.0.1:{ports['http']}/healthz"),
    "prometheus": lambda ports: http_ready(f"http://127.0.0.1:{ports['http']}/-/ready"),
    traces.STORE: traces.store_ready,
}


@dataclass
class ComponentReport:
    name: str
    kind: str
    state: str
    healthy: bool
    pid: int | None
    ports: dict[str, int]
    version: str
    uptime_s: float | None
    restarts: int
    last_exit: str
    last_exit_ago_s: float | None
    essential: bool
    log: str
    replica_set: str = ""
    last_lines: list[str] | None = None


@dataclass
class StatusReport:
    state_dir: str
    supervisor_pid: int
    uptime_s: float
    version: str
    components: list[ComponentReport]
    weights: dict[str, int] | None
    weights_error: str = ""
    gateways: dict[str, dict[str, int] | str] = field(default_factory=dict)  # what each replica applies
    operation: dict | None = None  # the running one, else the latest
    healthy: bool = False
    endpoints: dict[str, str] = field(default_factory=dict)


class NotRunning(RuntimeError):
    """No supervisor runs from the state directory."""


def report(state_dir: Path, names: Sequence[str] = (), log_lines: int = 0) -> StatusReport:
    """The stack's status; `names` limits the components, `log_lines` adds each one's last lines."""
    stack_state = state.StackState.read(state_dir)
    if not supervisor_alive(stack_state):
        why = "" if stack_state is None else (f" (the last supervisor, pid {stack_state.supervisor_pid}, ended "
                                              "without cleaning up; its children died with it)")
        raise NotRunning(f"no stack is running from {state_dir.resolve()}{why}")
    unknown = [name for name in names if name not in stack_state.components]
    if unknown:
        raise ValueError(f"no component {', '.join(unknown)}; the stack has {', '.join(stack_state.components)}")
    now = time.time()
    chosen = {name: info for name, info in stack_state.components.items() if not names or name in names}
    with ThreadPoolExecutor(max(1, len(chosen))) as pool:
        health = dict(zip(chosen, pool.map(_healthy, chosen.values()), strict=True))
    components = [ComponentReport(
        name=name, kind=info.kind, state=info.state, healthy=health[name], pid=info.pid or None,
        ports=dict(info.ports), version=info.version,
        uptime_s=now - info.started_at if info.started_at and info.state == RUNNING else None,
        restarts=info.restarts, last_exit=info.last_exit,
        last_exit_ago_s=now - info.last_exit_at if info.last_exit_at else None, essential=info.essential,
        log=info.log, replica_set=info.replica_set, last_lines=_tail(Path(info.log), log_lines) if log_lines else None)
        for name, info in chosen.items()]
    # Read from each gateway replica's runtime: what it applies, not what was asked.
    gateways = applied(gateway_admins(stack_state))
    first = next(iter(gateways.values()), "no gateway in the stack")
    weights, weights_error = (first, "") if isinstance(first, dict) else (None, first)
    if weights is not None and disagreement(gateways):
        weights, weights_error = None, disagreement(gateways)
    operations = state.read_operations(state_dir)
    operation = next((op for op in reversed(operations) if not op.finished), operations[-1] if operations else None)
    return StatusReport(
        state_dir=str(state_dir.resolve()), supervisor_pid=stack_state.supervisor_pid,
        uptime_s=now - stack_state.started_at if stack_state.started_at else 0.0, version=stack_state.version,
        components=components, weights=weights, weights_error=weights_error, gateways=gateways,
        operation=asdict(operation) if operation else None, endpoints=dict(stack_state.endpoints),
        healthy=weights is not None and all(c.healthy for c in components))


def _healthy(info: state.ComponentState) -> bool:
    if info.state != RUNNING:
        return False
    probe = PROBES.get(info.kind)
    try:
        return probe(info.ports)() if probe else True
    except KeyError:  # a component of that kind without the port its probe reads
        return False


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def duration(seconds: float | None) -> str:
    """'12s', '4m 02s', '3h 07m', or '—'."""
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def table(status: StatusReport) -> str:
    """The report as a person reads it."""
    lines = [f"mesh running from {status.state_dir} (supervisor pid {status.supervisor_pid}, up "
             f"{duration(status.uptime_s)}, opsconductor {status.version or '?'})", ""]
    rows = [("COMPONENT", "STATE", "HEALTH", "PID", "PORTS", "VERSION", "UPTIME", "RESTARTS", "LAST EXIT")]
    for c in status.components:
        last = f"{c.last_exit}, {duration(c.last_exit_ago_s)} ago" if c.last_exit else "—"
        rows.append((c.name, c.state, "ready" if c.healthy else "NOT READY", str(c.pid or "—"),
                     ", ".join(f"{use} {port}" for use, port in c.ports.items()) or "—", c.version or "—",
                     duration(c.uptime_s), str(c.restarts), last))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    for c in status.components:
        if c.last_lines is not None:
            lines += ["", f"{c.name}: last {len(c.last_lines)} lines of {c.log}", *(f"  {x}" for x in c.last_lines)]
    lines.append("")
    if status.weights is not None:
        every = f" (applied by every gateway: {', '.join(status.gateways)})" if len(status.gateways) > 1 else ""
        lines.append(f"weights: stable {status.weights['stable']} % / canary {status.weights['canary']} %{every}")
    else:
        lines.append(f"weights unknown: {status.weights_error}")
    lines.append(operation_line(status.operation))
    return "\n".join(lines)


def operation_line(operation: dict | None) -> str:
    if operation is None:
        return "operations: none yet"
    progress = operation["progress"][-1] if operation["progress"] else "starting"
    if operation["state"] == "running":
        return (f"operation {operation['id']} running for {duration(time.time() - operation['started_at'])}: "
                f"{operation['description']} — {progress}")
    outcome = "succeeded" if operation["state"] == "succeeded" else f"failed: {operation['error']}"
    ago = duration(time.time() - (operation["ended_at"] or operation["started_at"]))
    return f"last operation {operation['id']} ({operation['description']}) {outcome}, {ago} ago"
