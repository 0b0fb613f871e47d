"""The local stack's port table (the one copy: the gateway's local variant, `up` and the docs
read it), and who holds a port that is taken."""

from __future__ import annotations

import errno
import random
import socket
import threading
from dataclasses import dataclass

# Replica i of a pool listens at base + i; 20 replicas per pool fit without collisions.
MAX_REPLICAS = 20
# The health ports serve grpc.health.v1 only, in plaintext, for probes that cannot do TLS.
REPLICA_BASES = {
    "stable": {"automation": 3010, "automation_metrics": 9110, "pipeline": 8010, "pipeline_metrics": 9210,
               "automation_health": 9310, "pipeline_health": 9410},
    "canary": {"automation": 3030, "automation_metrics": 9130, "pipeline": 8030, "pipeline_metrics": 9230,
               "automation_health": 9330, "pipeline_health": 9430},
}
REPLICA_PORT_NAMES = ("automation", "automation_metrics", "pipeline", "pipeline_metrics", "automation_health",
                      "pipeline_health")


@dataclass(frozen=True)
class Ports:
    """The fixed ports of a stack; the defaults keep the original system's where it had them."""

    gateway: int = 3000
    page: int = 3100
    prometheus: int = 9090
    envoy_admin: int = 9901
    envoy_stats: int = 9902
    # The local trace store: OTLP/gRPC in (the standard port), its query API, its metrics.
    traces_otlp: int = 4317
    traces_query: int = 3210  # not 3200: compose publishes Grafana there
    traces_metrics: int = 9093


LOCAL_PORTS = Ports()

# Inside a container or pod (compose, Kubernetes) every service listens on the standalone
# defaults, plus its plaintext health-only port for probes that cannot do TLS.
CONTAINER_PORTS = {
    "automation": {"grpc": 3003, "metrics": 9091, "health": 9093},
    "pipeline": {"grpc": 8001, "metrics": 9092, "health": 9094},
    "gateway": {"gateway": 3000, "stats": 9902},
}


def replica_ports(pool: str, index: int) -> dict[str, int]:
    """Every port of replica `index` (gRPC, metrics and health of both services)."""
    if not 0 <= index < MAX_REPLICAS:
        raise ValueError(f"at most {MAX_REPLICAS} replicas per pool")
    return {name: base + index for name, base in REPLICA_BASES[pool].items()}


# Free ports are chosen from here up to the kernel's ephemeral range: above every port of the
# table, and out of reach of the kernel's own choices.
FREE_PORTS_FROM = 20_000
_scan: dict[str, int] = {}  # the next port to try (one scan per process)
_scan_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing uses now, for a listener this process or its child binds a moment later.

    Chosen below the kernel's ephemeral range, not by binding to port 0: outgoing connections
    take their local ports from that range, and so does every other program's bind to 0, and on
    a busy machine one of them took a port between its choice and the bind that followed. Ports
    are tried in increasing order from a random start, so a process never hands one out twice
    (until the scan wraps around, some 12,000 ports later)."""
    low = _ephemeral_low()
    if low - FREE_PORTS_FROM < 1000:  # an unusual range: leave the choice to the kernel
        return _kernel_port(host)
    span = low - FREE_PORTS_FROM
    with _scan_lock:
        port = _scan.setdefault("next", random.randrange(FREE_PORTS_FROM, low))
        for _ in range(span):
            _scan["next"] = FREE_PORTS_FROM + (port + 1 - FREE_PORTS_FROM) % span
            if _bindable(host, port):
                return port
            port = _scan["next"]
    return _kernel_port(host)


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
