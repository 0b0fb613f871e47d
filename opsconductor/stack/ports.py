"""The local stack's port table (the one copy: the gateway's local variant, `up`, its flags and
the port table in docs/ARCHITECTURE.md read it), the layout of each pool's replica ports, and
who holds a port that is taken."""

from __future__ import annotations

import errno
import random
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields

from services.common.names import POOLS

# Replica i of a pool listens at base + i; 20 replicas per pool fit without collisions.
MAX_REPLICAS = 20
# The listeners of one replica, in the order a base-port block lays them out. The health
# ports serve grpc.health.v1 only, in plaintext, for probes that cannot do TLS.
REPLICA_PORT_NAMES = ("automation", "automation_metrics", "pipeline", "pipeline_metrics", "automation_health",
                      "pipeline_health")
# The default table: each listener of a pool has its own base.
REPLICA_BASES = {
    "stable": {"automation": 3010, "automation_metrics": 9110, "pipeline": 8010, "pipeline_metrics": 9210,
               "automation_health": 9310, "pipeline_health": 9410},
    "canary": {"automation": 3030, "automation_metrics": 9130, "pipeline": 8030, "pipeline_metrics": 9230,
               "automation_health": 9330, "pipeline_health": 9430},
}
LOWEST_PORT, HIGHEST_PORT = 1, 65535
# Gateway replica 0 listens on the fixed ports (Ports); replica i ≥ 1 at base + i - 1.
MAX_GATEWAY_REPLICAS = 20
GATEWAY_PORT_NAMES = ("gateway", "envoy_admin", "envoy_stats")
GATEWAY_REPLICA_BASES = {"gateway": 3050, "envoy_admin": 9950, "envoy_stats": 9970}


@dataclass(frozen=True)
class Ports:
    """The fixed ports of a stack; the defaults keep the original system's where it had them.
    Each field is a flag of `up`: --gateway-port, --page-port, …"""

    gateway: int = 3000
    page: int = 3100
    prometheus: int = 9090
    envoy_admin: int = 9901
    envoy_stats: int = 9902
    # The local trace store: OTLP/gRPC in (the standard port), its query API, its metrics.
    traces_otlp: int = 4317
    traces_query: int = 3210  # not 3200: compose publishes Grafana there
    traces_metrics: int = 9095  # 9093 and 9094 are the services' health ports in containers


LOCAL_PORTS = Ports()
PORT_LABELS = {
    "gateway": "gateway (Envoy, gRPC + gRPC-Web)",
    "page": "Exec Sandbox page",
    "prometheus": "Prometheus",
    "envoy_admin": "Envoy admin (loopback only)",
    "envoy_stats": "Envoy Prometheus stats listener (`/stats/prometheus` only)",
    "traces_otlp": "trace store, OTLP/gRPC receiver (not with `--otlp-endpoint` or `--trace-sample off`)",
    "traces_query": "trace store, query API (`opsconductor trace`, the page's waterfalls)",
    "traces_metrics": "trace store `/metrics`",
}

# Inside a container or pod (compose, Kubernetes) every service listens on the standalone
# defaults, plus its plaintext health-only port for probes that cannot do TLS.
CONTAINER_PORTS = {
    "automation": {"grpc": 3003, "metrics": 9091, "health": 9093},
    "pipeline": {"grpc": 8001, "metrics": 9092, "health": 9094},
    "gateway": {"gateway": 3000, "stats": 9902},
}


def replica_port_label(name: str) -> str:
    """'automation gRPC', 'pipeline metrics' … for a replica listener's name."""
    service, _, use = name.partition("_")
    return f"{service} {use or 'gRPC'}"


def port_flag(name: str) -> str:
    """The `up` flag that sets a fixed port: envoy_admin → --envoy-admin-port."""
    return f"--{name.replace('_', '-')}-port"


def base_port_flag(pool: str) -> str:
    """The `up` flag that moves a pool's replica ports: --stable-base-port."""
    return f"--{pool}-base-port"


def pool_bases(pool: str, base_port: int | None = None, replicas: int = MAX_REPLICAS) -> dict[str, int]:
    """Where each listener of the pool's replica 0 sits: the default table, or with a base port
    a block of (listeners per replica) × `replicas` ports from it (every automation port, then
    every automation metrics port, and so on in REPLICA_PORT_NAMES' order), so a pool's ports
    are contiguous and a new kind of listener only adds to the end of the block."""
    if base_port is None:
        return dict(REPLICA_BASES[pool])
    return {name: base_port + offset * replicas for offset, name in enumerate(REPLICA_PORT_NAMES)}


def replica_ports(pool: str, index: int, base_port: int | None = None, replicas: int = MAX_REPLICAS) -> dict[str, int]:
    """Every port of replica `index`, by listener name (REPLICA_PORT_NAMES)."""
    if not 0 <= index < (MAX_REPLICAS if base_port is None else replicas):
        raise ValueError(f"at most {MAX_REPLICAS} replicas per pool")
    return {name: base + index for name, base in pool_bases(pool, base_port, replicas).items()}


def gateway_base_flag() -> str:
    return "--gateway-base-port"


def gateway_ports(fixed: Ports, index: int, base_port: int | None = None, replicas: int = MAX_GATEWAY_REPLICAS
                  ) -> dict[str, int]:
    """Gateway replica `index`'s ports by GATEWAY_PORT_NAMES: replica 0 has the fixed ones;
    the others the table's, or with a base port a block of 3 × (replicas - 1) ports from it
    (every listener port, then every admin port, then every stats port)."""
    if not 0 <= index < min(replicas, MAX_GATEWAY_REPLICAS):
        raise ValueError(f"at most {MAX_GATEWAY_REPLICAS} gateway replicas")
    if index == 0:
        return {name: getattr(fixed, name) for name in GATEWAY_PORT_NAMES}
    if base_port is None:
        return {name: base + index - 1 for name, base in GATEWAY_REPLICA_BASES.items()}
    return {name: base_port + offset * (replicas - 1) + index - 1 for offset, name in enumerate(GATEWAY_PORT_NAMES)}


def check_layout(fixed: Ports, replicas: Mapping[str, list[dict[str, int]]],
                 gateways: list[dict[str, int]] = ()) -> None:
    """Raises ValueError naming the first port out of range or used twice."""
    uses: dict[int, str] = {}
    named = [(PORT_LABELS[f.name].split(" (")[0], getattr(fixed, f.name)) for f in fields(fixed)]
    for index, ports in enumerate(gateways[1:], start=2):
        named += [(f"gateway-{index} {PORT_LABELS[name].split(' (')[0]}", port) for name, port in ports.items()]
    for pool, ports_of_replicas in replicas.items():
        for index, ports in enumerate(ports_of_replicas):
            named += [(f"{pool}-{index + 1} {replica_port_label(name)}", port) for name, port in ports.items()]
    for use, port in named:
        if not LOWEST_PORT <= port <= HIGHEST_PORT:
            raise ValueError(f"{use} would listen on port {port}, outside {LOWEST_PORT}-{HIGHEST_PORT}")
        if port in uses:
            raise ValueError(f"port {port} would be both the {uses[port]} and the {use} port")
        uses[port] = use


# Free ports are chosen from here up to the kernel's ephemeral range: above every port of the
# table, and out of reach of the kernel's own choices.
FREE_PORTS_FROM = 20_000
_scan: dict[str, int] = {}  # the next port to try (one scan per process)
_handed_out: set[int] = set()  # every port this process handed out, never handed out again
_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing uses now, for a listener this process or its child binds a moment later,
    and never one this process handed out before (a stack or a test asks for many at once, and
    a port released and offered again would go to two listeners).

    Chosen below the kernel's ephemeral range, not by binding to port 0: outgoing connections
    take their local ports from that range, and so does every other program's bind to 0, and on
    a busy machine one of them took a port between its choice and the bind that followed. Ports
    are tried in increasing order from a random start."""
    low = _ephemeral_low()
    span = low - FREE_PORTS_FROM
    with _lock:
        if span >= 1000:  # an unusual range leaves the choice to the kernel
            port = _scan.setdefault("next", random.randrange(FREE_PORTS_FROM, low))
            for _ in range(span):
                _scan["next"] = FREE_PORTS_FROM + (port + 1 - FREE_PORTS_FROM) % span
                if port not in _handed_out and _bindable(host, port):
                    _handed_out.add(port)
                    return port
                port = _scan["next"]
        while True:
            port = _kernel_port(host)
            if port not in _handed_out:
                _handed_out.add(port)
                return port


def free_port_block(count: int, host: str = "127.0.0.1") -> int:
    """The first of `count` consecutive ports free now, from the same range as free_port and
    under the same rule: none of them handed out before, and none handed out again."""
    low = _ephemeral_low()
    high = low if low - FREE_PORTS_FROM >= 1000 else HIGHEST_PORT  # an unusual range: anywhere above
    with _lock:
        for _ in range(200):
            base = random.randrange(FREE_PORTS_FROM, high - count)
            block = range(base, base + count)
            if _handed_out.isdisjoint(block) and all(_bindable(host, port) for port in block):
                _handed_out.update(block)
                return base
    raise RuntimeError(f"no {count} consecutive free ports")


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports_range:
            return int(ports_range.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(host: str, port: int) -> bool:
    # Without SO_REUSEADDR: a port with connections lingering in TIME_WAIT is passed over too.
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _kernel_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def free_replica_ports() -> dict[str, int]:
    """Free ports for one replica's listeners, instead of the table's."""
    return {name: free_port() for name in REPLICA_PORT_NAMES}


def markdown_table() -> str:
    """The port table of docs/ARCHITECTURE.md (`make generate` writes it there)."""
    lines = ["| component | port | set by |", "|---|---|---|"]
    for field in fields(Ports):
        lines.append(f"| {PORT_LABELS[field.name]} | {field.default} | `{port_flag(field.name)}` |")
    for pool in POOLS:
        bases = REPLICA_BASES[pool]
        for name in REPLICA_PORT_NAMES:
            lines.append(f"| {pool} replica *i* (0-based): {replica_port_label(name)} | {bases[name]}+*i* "
                         f"| `{base_port_flag(pool)}` |")
    for name in GATEWAY_PORT_NAMES:
        lines.append(f"| gateway replica *i* ≥ 1 (`--gateway-replicas`): {PORT_LABELS[name].split(' (')[0]} "
                     f"| {GATEWAY_REPLICA_BASES[name]}+*i*-1 | `{gateway_base_flag()}` |")
    offsets = {0: "", 1: "N+"}
    order = ", ".join(f"{replica_port_label(name)} B+{offsets.get(offset, f'{offset}N+')}*i*"
                      for offset, name in enumerate(REPLICA_PORT_NAMES))
    lines += ["", f"`{base_port_flag('stable')} B` (or `{base_port_flag('canary')} B`) gives that pool of N "
              f"replicas the {len(REPLICA_PORT_NAMES)}×N ports from B instead: {order}. "
              "`--service-ports auto` gives every replica free ports instead. `up` refuses a port out of "
              f"range or used twice (exit code 2), and a port another process holds (exit code 1), naming it. "
              f"`{gateway_base_flag()} B` gives gateway replicas 1 … G-1 listener ports from B, admin ports from "
              "B+(G-1) and stats ports from B+2(G-1)."]
    return "\n".join(lines)


class PortTaken(RuntimeError):
    """A port the stack needs is already in use."""


def check_free(ports: dict[str, int], host: str = "127.0.0.1") -> None:
    """Raises PortTaken naming the first taken port, its use, and the process holding it."""
    for use, port in ports.items():
        with socket.socket() as sock:
            # As servers bind: connections lingering in TIME_WAIT must not count as taken.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                raise PortTaken(f"port {port} ({use}) is taken by {holder(port)}; free it or choose another "
                                f"port (see `opsconductor up --help`)") from None


def holder(port: int) -> str:
    """'pid 123 (envoy)' for the process listening on `port`, as far as we may know."""
    import psutil  # only when a port is taken: rendering configs needs no process table

    try:
        for connection in psutil.net_connections(kind="inet"):
            if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
                if connection.pid is None:
                    return "another user's process"
                try:
                    return f"pid {connection.pid} ({psutil.Process(connection.pid).name()})"
                except psutil.Error:
                    return f"pid {connection.pid}"
    except psutil.AccessDenied:
        pass
    return "an unknown process"
