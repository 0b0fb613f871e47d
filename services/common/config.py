"""Service configuration: every environment variable, its default and its check, in one place.

Read once at start into frozen dataclasses; bad values raise ConfigError, which the command
line turns into a one-line message and exit code 2.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata

from services.common import spiffe
from services.common.names import POOLS
from services.common.numbers import strict_port

DEFAULT_ALLOWLIST = "127.0.0.0/8,::1,localhost"
# Sized for a 2-core machine (docs/SECURITY.md, "Admission"): far above what the services
# serve at their peak (~2,500 calls/s of a few ms each is tens in flight), low enough that one
# caller holding calls open cannot take the whole process.
DEFAULT_MAX_CONCURRENT_RPCS = 512
DEFAULT_MAX_OPEN_STREAMS = 32
DEFAULT_TOOL_MAX_WAITING = 128


class ConfigError(ValueError):
    """A configuration value is missing or malformed."""


def package_version() -> str:
    try:
        return metadata.version("opsconductor-mesh")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


@dataclass(frozen=True)
class CommonConfig:
    """Settings both services take."""

    pool: str  # POOL: "stable" or "canary"
    version: str  # SERVICE_VERSION: reported in build info and responses
    instance: str  # INSTANCE_NAME: this process's name in responses and logs
    log_level: str  # LOG_LEVEL
    log_format: str  # LOG_FORMAT: "auto" (readable on a terminal, else JSON lines), "json" or "text"
    no_color: bool  # NO_COLOR set to anything: readable logs without colour (no-color.org)
    shutdown_grace_s: float  # SHUTDOWN_GRACE_S: how long in-flight calls may finish on SIGTERM
    telemetry: bool  # TELEMETRY: "off" drops per-call metrics and logs (to measure their cost)
    max_concurrent_rpcs: int  # MAX_CONCURRENT_RPCS: calls served at once; the excess is refused
    max_open_streams: int  # MAX_OPEN_STREAMS: health Watch and reflection streams open at once
    tracing: TracingConfig  # the standard OTEL_* variables (see TracingConfig)
    tls: TlsConfig | None = None  # TLS_*: mTLS on every port but the health port; None = plaintext


@dataclass(frozen=True)
class TlsConfig:
    """Mutual TLS with workload identities (TLS_CERT_FILE, TLS_KEY_FILE, TLS_CA_FILE: all or
    none). The files are re-read while the service runs, so a renewed certificate is used
    without a restart."""

    cert_file: str  # TLS_CERT_FILE: this workload's certificate (PEM, its chain after it)
    key_file: str  # TLS_KEY_FILE: its private key
    ca_file: str  # TLS_CA_FILE: the mesh CA that signs every peer's certificate
    allowed_callers: tuple[str, ...]  # TLS_ALLOWED_CALLERS: SPIFFE IDs that may call the gRPC port
    allowed_scrapers: tuple[str, ...]  # TLS_ALLOWED_SCRAPERS: SPIFFE IDs that may read /metrics


@dataclass(frozen=True)
class AutomationConfig:
    """The public automation service."""

    common: CommonConfig
    grpc_addr: str  # AUTOMATION_GRPC_ADDR
    metrics_addr: str  # AUTOMATION_METRICS_ADDR
    health_addr: str  # AUTOMATION_HEALTH_ADDR: plaintext grpc.health.v1 only, for probes ("" = none)
    pipeline_target: str  # PIPELINE_TARGET
    execute_timeout_s: float  # EXECUTE_TIMEOUT_S: deadline of a pipeline call


@dataclass(frozen=True)
class FaultConfig:
    """Deliberate failures, off by default, so canary analysis can be shown a bad canary."""

    every_n: int  # FAULT_INJECT_EVERY_N: every Nth Execute fails (0 = never); deterministic
    rate: float  # FAULT_INJECT_RATE: this fraction of Executes fail at random (0-1)
    latency_ms: int  # FAULT_INJECT_LATENCY_MS: added to every Execute

    @property
    def enabled(self) -> bool:
        return bool(self.every_n or self.rate or self.latency_ms)


@dataclass(frozen=True)
class PipelineConfig:
    """The internal pipeline service."""

    common: CommonConfig
    grpc_addr: str  # PIPELINE_GRPC_ADDR
    metrics_addr: str  # PIPELINE_METRICS_ADDR
    health_addr: str  # PIPELINE_HEALTH_ADDR: plaintext grpc.health.v1 only, for probes ("" = none)
    bypass_llm: bool  # FEATURE_BYPASS_LLM: "ping"/echo runs echo directly, skipping selection
    allowlist: tuple[str, ...]  # TOOL_ALLOWLIST: CIDRs, host names and *.suffix names
    # MESH_PORTS (plus this process's own two): ports the tools never reach on any address
    mesh_ports: tuple[int, ...]
    tool_max_waiting: int  # TOOL_MAX_WAITING: runs of tools that wait (delay, network) at once
    cache_size: int  # SELECTOR_CACHE_SIZE
    cache_ttl_s: float  # SELECTOR_CACHE_TTL_S
    faults: FaultConfig


@dataclass(frozen=True)
class MeshViewConfig:
    """What the page server's mesh view reads: Prometheus (read-only) and the rollout's state."""

    prometheus_url: str  # PROMETHEUS_URL: http(s)://host:port; "" when there is none
    prometheus_timeout_s: float  # PROMETHEUS_TIMEOUT_S: longest a forwarded read may take
    rollout_file: str  # ROLLOUT_STATE_FILE: the JSON a running rollout keeps up to date; "" for none


def mesh_view_config(env: Mapping[str, str] = os.environ) -> MeshViewConfig:
    url = env.get("PROMETHEUS_URL", "").strip().rstrip("/")
    if url and not (url.startswith(("http://", "https://")) and len(url.split("/")) == 3):
        raise ConfigError(f"PROMETHEUS_URL must be http(s)://host:port with no path, not {url!r}")
    return MeshViewConfig(prometheus_url=url,
                          prometheus_timeout_s=_number(env, "PROMETHEUS_TIMEOUT_S", 10.0, low=0.1, high=120),
                          rollout_file=env.get("ROLLOUT_STATE_FILE", "").strip())


def automation_config(env: Mapping[str, str] = os.environ) -> AutomationConfig:
    grpc_addr = _address(env, "AUTOMATION_GRPC_ADDR", "127.0.0.1:3003")
    return AutomationConfig(
        common=_common(env, "automation", grpc_addr),
        grpc_addr=grpc_addr,
        metrics_addr=_address(env, "AUTOMATION_METRICS_ADDR", "127.0.0.1:9091"),
        health_addr=_optional_address(env, "AUTOMATION_HEALTH_ADDR"),
        pipeline_target=_address(env, "PIPELINE_TARGET", "127.0.0.1:8001"),
        execute_timeout_s=_number(env, "EXECUTE_TIMEOUT_S", 30.0, low=0.01, high=3600),
    )


def pipeline_config(env: Mapping[str, str] = os.environ) -> PipelineConfig:
    grpc_addr = _address(env, "PIPELINE_GRPC_ADDR", "127.0.0.1:8001")
    metrics_addr = _address(env, "PIPELINE_METRICS_ADDR", "127.0.0.1:9092")
    # A process always knows its own ports; MESH_PORTS adds the rest of the mesh's.
    own_ports = {split_address(grpc_addr)[1], split_address(metrics_addr)[1]} - {0}
    return PipelineConfig(
        common=_common(env, "pipeline", grpc_addr),
        grpc_addr=grpc_addr,
        metrics_addr=metrics_addr,
        health_addr=_optional_address(env, "PIPELINE_HEALTH_ADDR"),
        bypass_llm=_flag(env, "FEATURE_BYPASS_LLM", False),
        allowlist=_allowlist(env.get("TOOL_ALLOWLIST", DEFAULT_ALLOWLIST)),
        mesh_ports=tuple(sorted(own_ports | set(_ports(env, "MESH_PORTS")))),
        tool_max_waiting=int(_number(env, "TOOL_MAX_WAITING", DEFAULT_TOOL_MAX_WAITING, low=1, high=100_000,
                                     integer=True)),
        cache_size=int(_number(env, "SELECTOR_CACHE_SIZE", 1024, low=1, high=1_000_000, integer=True)),
        cache_ttl_s=_number(env, "SELECTOR_CACHE_TTL_S", 300.0, low=0.001, high=86400),
        faults=FaultConfig(
            every_n=int(_number(env, "FAULT_INJECT_EVERY_N", 0, low=0, high=10**9, integer=True)),
            rate=_number(env, "FAULT_INJECT_RATE", 0.0, low=0, high=1),
            latency_ms=int(_number(env, "FAULT_INJECT_LATENCY_MS", 0, low=0, high=60_000, integer=True)),
        ),
    )


def _common(env: Mapping[str, str], service: str, grpc_addr: str) -> CommonConfig:
    pool = env.get("POOL", "stable")
    if pool not in POOLS:
        raise ConfigError(f"POOL must be one of {', '.join(POOLS)}, not {pool!r}")
    level = env.get("LOG_LEVEL", "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {level!r}")
    return CommonConfig(
        pool=pool,
        version=env.get("SERVICE_VERSION") or package_version(),
        instance=env.get("INSTANCE_NAME") or f"{service}@{grpc_addr}",
        log_level=level,
        log_format=log_format(env),
        no_color=bool(env.get("NO_COLOR")),
        shutdown_grace_s=_number(env, "SHUTDOWN_GRACE_S", 10.0, low=0, high=3600),
        telemetry=_flag(env, "TELEMETRY", True),
        max_concurrent_rpcs=int(_number(env, "MAX_CONCURRENT_RPCS", DEFAULT_MAX_CONCURRENT_RPCS, low=1,
                                        high=100_000, integer=True)),
        max_open_streams=int(_number(env, "MAX_OPEN_STREAMS", DEFAULT_MAX_OPEN_STREAMS, low=1, high=100_000,
                                     integer=True)),
        tracing=tracing_config(env, service),
        tls=_tls(env, pool, service),
    )


def log_format(env: Mapping[str, str] = os.environ) -> str:
    """LOG_FORMAT: auto, json or text."""
    value = env.get("LOG_FORMAT", "auto").strip().lower() or "auto"
    if value not in ("auto", "json", "text"):
        raise ConfigError(f"LOG_FORMAT must be auto, json or text, not {value!r}")
    return value


_TLS_FILES = ("TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE")


def _tls(env: Mapping[str, str], pool: str, service: str) -> TlsConfig | None:
    files = {name: env.get(name, "").strip() for name in _TLS_FILES}
    if not any(files.values()):
        return None  # plaintext, as a service started on its own always was
    missing = ", ".join(name for name, path in files.items() if not path)
    if missing:
        raise ConfigError(f"{missing}: TLS needs TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE together")
    for name, path in files.items():
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise ConfigError(f"{name}: {path!r} is not a readable file")
    return TlsConfig(
        cert_file=files["TLS_CERT_FILE"], key_file=files["TLS_KEY_FILE"], ca_file=files["TLS_CA_FILE"],
        allowed_callers=_identities(env, "TLS_ALLOWED_CALLERS", spiffe.default_callers(pool, service)),
        allowed_scrapers=_identities(env, "TLS_ALLOWED_SCRAPERS", spiffe.DEFAULT_SCRAPERS),
    )


def _identities(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    values = tuple(value.strip() for value in raw.split(",") if value.strip())
    for value in values:
        if not spiffe.is_identity(value):
            raise ConfigError(f"{name}: {value[:80]!r} is not a spiffe://{spiffe.TRUST_DOMAIN}/... identity")
    return values


def split_address(address: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' → (host, port)."""
    host, sep, port = address.rpartition(":")
    number = 0 if port == "0" else strict_port(port)  # 0: any free port
    if not sep or not host or number is None:
        raise ConfigError(f"{address!r} is not host:port")
    return host.strip("[]"), number


def _address(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    try:
        split_address(value)
    except ConfigError as error:
        raise ConfigError(f"{name}: {error}") from None
    return value


def _optional_address(env: Mapping[str, str], name: str) -> str:
    return _address(env, name, "") if env.get(name) else ""


def _number(
    env: Mapping[str, str], name: str, default: float, *, low: float, high: float, integer: bool = False
) -> float:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{name} must be {kind}, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, not {raw}")
    return value


def _ports(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    ports = []
    for entry in env.get(name, "").split(","):
        if entry.strip():
            port = strict_port(entry.strip())
            if port is None:
                raise ConfigError(f"{name} must be a comma-separated list of ports 1-65535, not {entry.strip()!r}")
            ports.append(port)
    return tuple(ports)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _allowlist(raw: str) -> tuple[str, ...]:
    entries = tuple(entry.strip().lower() for entry in raw.split(",") if entry.strip())
    for entry in entries:
        if "/" in entry or entry.replace(".", "").isdigit() or ":" in entry:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ConfigError(f"TOOL_ALLOWLIST: {entry!r} is not a valid address or network") from None
    return entries


# --- tracing: the standard OpenTelemetry variables, read here rather than by the SDK itself so
# a bad value stops the service at start with one line, like every other setting.

SAMPLERS = ("always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off",
            "parentbased_traceidratio")


@dataclass(frozen=True)
class TracingConfig:
    """OpenTelemetry spans of a service and where they go."""

    enabled: bool  # OTEL_SDK_DISABLED=true turns spans off altogether (trace ids still travel)
    service_name: str  # OTEL_SERVICE_NAME, default the service's own name
    endpoint: str  # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT; "" exports nothing
    sampler: str  # OTEL_TRACES_SAMPLER, default parentbased_always_on: the caller's (gateway's) decision
    sampler_arg: float  # OTEL_TRACES_SAMPLER_ARG: the ratio of the *traceidratio samplers (0-1)
    max_queue_size: int  # OTEL_BSP_MAX_QUEUE_SIZE: spans waiting for export; beyond it they are dropped
    max_export_batch_size: int  # OTEL_BSP_MAX_EXPORT_BATCH_SIZE
    schedule_delay_ms: int  # OTEL_BSP_SCHEDULE_DELAY: longest a finished span waits before export
    export_timeout_ms: int  # OTEL_EXPORTER_OTLP_TRACES_TIMEOUT / OTEL_EXPORTER_OTLP_TIMEOUT (milliseconds)

    @property
    def exporting(self) -> bool:
        return self.enabled and bool(self.endpoint)


def tracing_config(env: Mapping[str, str] = os.environ, service: str = "") -> TracingConfig:
    sampler = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    if sampler not in SAMPLERS:
        raise ConfigError(f"OTEL_TRACES_SAMPLER must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    if exporter not in ("otlp", "none"):
        raise ConfigError(f"OTEL_TRACES_EXPORTER must be otlp or none, not {exporter!r}")
    endpoint = _otlp_endpoint(env) if exporter == "otlp" else ""
    queue = int(_number(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048, low=1, high=1_000_000, integer=True))
    batch = int(_number(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", min(512, queue), low=1, high=queue, integer=True))
    timeout_name = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT" if env.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") else (
        "OTEL_EXPORTER_OTLP_TIMEOUT")
    return TracingConfig(
        enabled=not _flag(env, "OTEL_SDK_DISABLED", False),
        service_name=env.get("OTEL_SERVICE_NAME", "").strip() or service,
        endpoint=endpoint,
        sampler=sampler,
        sampler_arg=_number(env, "OTEL_TRACES_SAMPLER_ARG", 1.0, low=0, high=1),
        max_queue_size=queue,
        max_export_batch_size=batch,
        schedule_delay_ms=int(_number(env, "OTEL_BSP_SCHEDULE_DELAY", 5000, low=1, high=600_000, integer=True)),
        export_timeout_ms=int(_number(env, timeout_name, 10_000, low=1, high=600_000, integer=True)),
    )


def _otlp_endpoint(env: Mapping[str, str]) -> str:
    """http://host:port (plaintext) or https://host:port; a bare host:port means plaintext."""
    name = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") else (
        "OTEL_EXPORTER_OTLP_ENDPOINT")
    raw = env.get(name, "").strip()
    if not raw:
        return ""
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest = "http", raw
    if scheme not in ("http", "https"):
        raise ConfigError(f"{name} must be http://HOST:PORT or https://HOST:PORT, not {raw!r}")
    try:
        split_address(rest.rstrip("/"))
    except ConfigError:
        raise ConfigError(f"{name} must be http://HOST:PORT or https://HOST:PORT, not {raw!r}") from None
    return f"{scheme}://{rest.rstrip('/')}"


@dataclass(frozen=True)
class TracesConfig:
    """The local trace store: an OTLP/gRPC receiver keeping recent spans in SQLite."""

    common: CommonConfig
    grpc_addr: str  # TRACES_GRPC_ADDR: where spans arrive (OTLP/gRPC)
    query_addr: str  # TRACES_QUERY_ADDR: the HTTP API answering by trace id and listing the slowest
    metrics_addr: str  # TRACES_METRICS_ADDR
    database: str  # TRACES_DB: the SQLite file (":memory:" keeps spans in memory only)
    max_spans: int  # TRACES_MAX_SPANS: the oldest spans go beyond this many
    max_age_s: float  # TRACES_MAX_AGE_S: spans older than this go


def traces_config(env: Mapping[str, str] = os.environ) -> TracesConfig:
    grpc_addr = _address(env, "TRACES_GRPC_ADDR", "127.0.0.1:4317")
    # The store never traces itself: its own spans would come back to it as more spans.
    common = _common({**env, "OTEL_SDK_DISABLED": "true"}, "traces", grpc_addr)
    return TracesConfig(
        common=common,
        grpc_addr=grpc_addr,
        query_addr=_address(env, "TRACES_QUERY_ADDR", "127.0.0.1:3210"),
        metrics_addr=_address(env, "TRACES_METRICS_ADDR", "127.0.0.1:9095"),
        database=env.get("TRACES_DB", "").strip() or ":memory:",
        max_spans=int(_number(env, "TRACES_MAX_SPANS", 100_000, low=100, high=10_000_000, integer=True)),
        max_age_s=_number(env, "TRACES_MAX_AGE_S", 3600.0, low=1, high=30 * 86400),
    )
