"""Traces in the local stack: where every component sends its spans (the embedded trace store,
or a real backend given with `up --otlp-endpoint`), the share of calls the gateway samples, and
the store's own component. The stack asks this module (one call per concern: ports, service
and Envoy settings, the page's flags, the store's ComponentSpec); it holds no state of its own."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from opsconductor.gateway.settings import DEFAULT_SAMPLE_PERCENT, TracingSettings
from opsconductor.stack.components import ComponentSpec, RestartPolicy, grpc_ready
from opsconductor.stack.ports import Ports
from services.common.config import package_version

_ROOT = Path(__file__).resolve().parents[2]  # the checkout: the store runs this one's code

STORE = "traces"  # the store's component name
# Spans wait at most this long in a service before export: the page shows a call's waterfall
# right after the call. Export timeout: a collector that does not answer costs a batch, not more.
SCHEDULE_DELAY_MS = 500
EXPORT_TIMEOUT_MS = 2000
STORE_MAX_SPANS = 200_000
STORE_MAX_AGE_S = 3600


class BadEndpoint(ValueError):
    """An --otlp-endpoint that is not http://HOST:PORT."""


@dataclass(frozen=True)
class TraceSpec:
    """What `up` was asked about traces."""

    sample_percent: float | None = DEFAULT_SAMPLE_PERCENT  # None: no spans at all
    otlp_endpoint: str = ""  # a real backend's OTLP/gRPC receiver; "" runs the local store

    @property
    def enabled(self) -> bool:
        return self.sample_percent is not None

    @property
    def local_store(self) -> bool:
        return self.enabled and not self.otlp_endpoint


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """(host, port) of http://HOST:PORT; the gateway sends plaintext OTLP/gRPC, as collectors take on 4317."""
    scheme, sep, rest = endpoint.partition("://")
    host, colon, port = rest.rstrip("/").rpartition(":")
    if scheme != "http" or not sep or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadEndpoint(f"--otlp-endpoint takes http://HOST:PORT (an OTLP/gRPC receiver), not {endpoint!r}")
    return host.strip("[]"), int(port)


def collector(spec: TraceSpec, ports: Ports) -> tuple[str, int]:
    return parse_endpoint(spec.otlp_endpoint) if spec.otlp_endpoint else ("127.0.0.1", ports.traces_otlp)


def service_env(spec: TraceSpec, ports: Ports) -> dict[str, str]:
    """The standard OTEL_* variables of every service process."""
    if not spec.enabled:
        return {"OTEL_SDK_DISABLED": "true"}
    host, port = collector(spec, ports)
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{host}:{port}",
        # Behind the gateway every call arrives with its decision; this ratio applies only to
        # calls made to a service directly, which then decides as the edge would.
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": f"{spec.sample_percent / 100:g}",
        "OTEL_BSP_SCHEDULE_DELAY": str(SCHEDULE_DELAY_MS),
        "OTEL_EXPORTER_OTLP_TIMEOUT": str(EXPORT_TIMEOUT_MS),
    }


def envoy_tracing(spec: TraceSpec, ports: Ports) -> TracingSettings | None:
    if not spec.enabled:
        return None
    host, port = collector(spec, ports)
    discovery = "STRICT_DNS" if any(c.isalpha() for c in host) and ":" not in host else "STATIC"
    return TracingSettings(collector=(host, port), discovery=discovery, sample_percent=spec.sample_percent)


def store_spec(ports: Ports, state_dir: Path, restart: RestartPolicy) -> ComponentSpec:
    """The store as a supervised component: restarted like any other when it exits, and not
    essential (the calls go on without it; spans of the meantime are lost, never a call)."""
    return ComponentSpec(
        name=STORE, kind=STORE, argv=(sys.executable, "-m", "services", STORE), env=store_env(ports, state_dir),
        cwd=_ROOT, ready=store_ready(store_ports(ports)), restart=restart, version=package_version(),
        ports=store_ports(ports))


def store_ready(ports: Mapping[str, int]) -> Callable[[], bool]:
    """Ready once its OTLP receiver's gRPC health is SERVING (its query API listens by then)."""
    def ready() -> bool:
        from services.traces.otlp import TRACE_SERVICE  # the store's own module: only when one runs

        return grpc_ready(f"127.0.0.1:{ports['otlp']}", TRACE_SERVICE)()

    return ready


def required_ports(spec: TraceSpec, ports: Ports) -> dict[str, int]:
    """The ports `up` needs free for traces: the local store's, when it runs one."""
    return {f"trace store {use}": port for use, port in store_ports(ports).items()} if spec.local_store else {}


def mesh_ports(spec: TraceSpec) -> set[int]:
    """Ports the tools must never reach beyond the stack's own: a real backend's collector."""
    return {collector(spec, Ports())[1]} if spec.enabled and spec.otlp_endpoint else set()


def page_args(spec: TraceSpec, ports: Ports) -> list[str]:
    """The page shows each run's waterfall from the local store, fetched through its own server."""
    return ["--traces-url", query_url(ports)] if spec.local_store else []


def store_env(ports: Ports, state_dir: Path) -> dict[str, str]:
    return {"TRACES_GRPC_ADDR": f"127.0.0.1:{ports.traces_otlp}",
            "TRACES_QUERY_ADDR": f"127.0.0.1:{ports.traces_query}",
            "TRACES_METRICS_ADDR": f"127.0.0.1:{ports.traces_metrics}",
            "TRACES_DB": str(state_dir / "traces.sqlite"),
            "TRACES_MAX_SPANS": str(STORE_MAX_SPANS), "TRACES_MAX_AGE_S": str(STORE_MAX_AGE_S)}


def store_ports(ports: Ports) -> dict[str, int]:
    """The store's listeners by use, as `status` shows them."""
    return {"otlp": ports.traces_otlp, "query": ports.traces_query, "metrics": ports.traces_metrics}


def query_url(ports: Ports) -> str:
    return f"http://127.0.0.1:{ports.traces_query}"
