"""What the gateway's Envoy config may vary by deployment, and the names it fixes for all."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal

from opsconductor.gateway.tls import EdgeTls, MeshTls
from opsconductor.stack.ports import LOCAL_PORTS, replica_ports

# Route-level clusters are named after the pools; the runtime key of a pool's weight is
# "<RUNTIME_KEY_PREFIX>.<pool>", a file of the weights layer (opsconductor/gateway/runtime.py).
RUNTIME_KEY_PREFIX = "routing.automation"
# Percent of the weighted calls also copied to the canary's pool (replies discarded), a file of
# the same layer, so every replica mirrors alike; 0 in the static layer.
MIRROR_RUNTIME_KEY = f"{RUNTIME_KEY_PREFIX}.mirror"
# MIRRORED_HEADER (services/common/names.py) marks a mirrored copy: gRPC Python does not show
# a handler the :authority that Envoy suffixes with "-shadow".
CANARY_HEADER = "x-canary"
RATE_LIMITED_HEADER = "x-ratelimited"
ENDPOINT_METADATA = "opsconductor"  # filter_metadata namespace carrying each host's pool

TYPE_PREFIX = "type.googleapis.com/envoy."

Host = tuple[str, int]
# Calls the gateway traces when the caller did not decide: 1 %, as Istio's default. Measured on
# this machine (docs/BENCHMARKS.md) 10 % cost more than the 10 % more CPU per call we allow
# tracing; a caller that wants its call traced says so in its traceparent, as the page does.
DEFAULT_SAMPLE_PERCENT = 1.0


@dataclass(frozen=True)
class JwtSettings:
    """Bearer-token check on AutomationService calls (health, reflection and stats stay open)."""

    issuer: str
    audiences: tuple[str, ...]
    jwks_path: str  # a local JWKS file (mounted from a Secret in Kubernetes)


@dataclass(frozen=True)
class TracingSettings:
    """Where the gateway's spans go (OTLP/gRPC) and the share of calls traced (see tracing.py)."""

    collector: Host = ("127.0.0.1", LOCAL_PORTS.traces_otlp)
    discovery: Literal["STATIC", "STRICT_DNS"] = "STATIC"
    sample_percent: float = DEFAULT_SAMPLE_PERCENT
    # How long a finished span may wait in Envoy before export (Envoy's default is 5 s; the
    # Exec Sandbox shows a call's waterfall right after the call).
    flush_interval_ms: int = 1000

    def __post_init__(self) -> None:
        if not 0 <= self.sample_percent <= 100:
            raise ValueError(f"sample_percent must be 0-100, got {self.sample_percent}")
        if not 0 < self.collector[1] < 65536:
            raise ValueError(f"bad collector port {self.collector[1]}")
        if self.discovery == "STATIC" and not _is_ip(self.collector[0]):
            raise ValueError(f"STATIC discovery takes an IP address, got collector {self.collector[0]!r}")
        if self.flush_interval_ms < 1:
            raise ValueError("flush_interval_ms must be at least 1")


@dataclass(frozen=True)
class EnvoySettings:
    """Everything that differs between deployments; defaults are the local stack's."""

    stable_hosts: tuple[Host, ...] = (("127.0.0.1", replica_ports("stable", 0)["automation"]),)
    canary_hosts: tuple[Host, ...] = (("127.0.0.1", replica_ports("canary", 0)["automation"]),)
    # STATIC for IP literals; STRICT_DNS for container and Service names (headless Services
    # resolve to every pod IP, so Envoy balances across pods itself).
    discovery: Literal["STATIC", "STRICT_DNS"] = "STATIC"
    listen_address: str = "127.0.0.1"
    listen_port: int = LOCAL_PORTS.gateway
    admin_port: int = LOCAL_PORTS.envoy_admin
    admin_address: str = "127.0.0.1"  # loopback only: the admin can change routing
    stats_address: str = "127.0.0.1"
    stats_port: int = LOCAL_PORTS.envoy_stats
    cors_origins: tuple[str, ...] = (f"http://127.0.0.1:{LOCAL_PORTS.page}", f"http://localhost:{LOCAL_PORTS.page}")
    canary_weight: int = 10
    # Where the shared weights layer is (its `..data` symlink): every replica reading the same
    # directory splits alike. Empty: the configured split only.
    runtime_dir: str = ""
    # Above the services' own 30 s deadline, so their TIMEOUT reaches the caller and a slow
    # call is never cut by Envoy and re-run on another host.
    route_timeout_s: int = 35
    per_try_timeout_s: int = 31
    num_retries: int = 3
    health_check_interval_s: float = 1.0
    # Admission (docs/SECURITY.md), sized for this 2-core machine: the mesh serves about 2,500
    # calls/s of a few ms each there (tens in flight), and each service takes at most 512 calls
    # at once (MAX_CONCURRENT_RPCS). Per pool: calls in flight, calls waiting for an upstream
    # connection, upstream connections (HTTP/2 carries hundreds of calls on one) and retries in
    # flight. The excess is answered at once by Envoy: UNAVAILABLE, "overflow".
    max_requests: int = 512
    max_pending_requests: int = 128
    max_connections: int = 32
    max_retries: int = 64
    # Per caller connection: HTTP/2 streams open at once (a client queues the rest itself),
    # and connections open at once in all.
    max_streams_per_connection: int = 256
    max_downstream_connections: int = 4096
    # Far above what this mesh can serve, so only a deliberate setting ever limits anything.
    rate_limit_per_s: int = 100_000
    access_log_path: str = "/dev/stdout"
    jwt: JwtSettings | None = field(default=None)
    tracing: TracingSettings | None = None  # None: no spans (the deployment variants set it)
    # mTLS to the pools and on the stats listener; TLS at the edge (opsconductor/gateway/tls.py).
    mesh_tls: MeshTls | None = None
    edge_tls: EdgeTls | None = None

    def __post_init__(self) -> None:
        for name in ("listen_address", "admin_address", "stats_address"):
            try:
                ipaddress.ip_address(getattr(self, name))
            except ValueError:
                raise ValueError(
                    f"{name} must be an IP address, got {getattr(self, name)!r}") from None
        if not ipaddress.ip_address(self.admin_address).is_loopback:
            raise ValueError(f"admin_address must be loopback, got {self.admin_address!r}")
        for name in ("listen_port", "admin_port", "stats_port"):
            if not 0 < getattr(self, name) < 65536:
                raise ValueError(f"{name} must be 1-65535, got {getattr(self, name)}")
        if len({self.listen_port, self.admin_port, self.stats_port}) != 3:
            raise ValueError("listen_port, admin_port and stats_port must differ")
        if not self.stable_hosts or not self.canary_hosts:
            raise ValueError("each pool needs at least one host")
        for host, port in (*self.stable_hosts, *self.canary_hosts):
            if not 0 < port < 65536:
                raise ValueError(f"bad upstream port {host}:{port}")
            if self.discovery == "STATIC" and not _is_ip(host):
                raise ValueError(f"STATIC discovery takes IP addresses, got {host!r}; "
                                 "use STRICT_DNS for names")
        if not 0 <= self.canary_weight <= 100:
            raise ValueError(f"canary_weight must be 0-100, got {self.canary_weight}")
        if self.per_try_timeout_s > self.route_timeout_s:
            raise ValueError("per_try_timeout_s must not exceed route_timeout_s")
        if self.rate_limit_per_s < 1:
            raise ValueError("rate_limit_per_s must be at least 1")
        for name in ("max_requests", "max_pending_requests", "max_connections", "max_retries",
                     "max_streams_per_connection", "max_downstream_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def socket_address(host: str, port: int) -> dict[str, Any]:
    """An Envoy socket address."""
    return {"socket_address": {"address": host, "port_value": port}}


def duration(seconds: float) -> str:
    """An Envoy duration."""
    return f"{seconds:g}s"
