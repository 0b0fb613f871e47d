"""The golden metrics of a running mesh per pool (or per replica), as `opsconductor stat` and
`canary status` show them: weight and healthy hosts from the gateway, request rate, success
rate (server faults only) and p50/p95/p99 from Prometheus when there is one, else from the
processes' own /metrics. Every figure is a number or None ("unknown"), and each row says why
a figure is missing: no traffic, no hosts, no data yet, or its source failing."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from opsconductor.gateway.admin import AdminError, EnvoyAdmin
from opsconductor.observability import prometheus, queries, scraped
from opsconductor.observability.queries import PER_POOL, PER_REPLICA, Scope

FIGURES = ("rps", "calls", "success_ratio", "p50_s", "p95_s", "p99_s")
# Readings of /metrics kept for --watch: enough for a window of a few minutes at 1 s.
_KEPT_SNAPSHOTS = 400


@dataclass
class Row:
    """One pool, or one replica of a pool."""

    name: str
    pool: str
    weight: int | None = None
    healthy_hosts: int | None = None
    hosts: int | None = None
    rps: float | None = None
    calls: float | None = None
    success_ratio: float | None = None
    p50_s: float | None = None
    p95_s: float | None = None
    p99_s: float | None = None
    state: str = "unknown"  # ok, below SLO, no traffic, no hosts, no data, down, unknown


@dataclass
class Report:
    source: str  # "prometheus URL" or "/metrics"
    window: str  # the window the figures span (shorter than asked while /metrics warms up)
    at: float
    rows: list[Row]
    problems: list[str] = field(default_factory=list)
    # The weights each gateway replica applies, read from its runtime (name -> weights or error).
    gateways: dict[str, dict[str, int] | str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Replica:
    """What the report needs of a replica: its name, pool, gateway address and metrics page."""

    name: str
    pool: str
    address: str  # host:port Envoy sends calls to
    metrics_url: str
    instance: str  # the instance label Prometheus gives its automation process


class SourceError(RuntimeError):
    """A figure's source failed (unreachable, timed out, refused the query)."""


def _known(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


class PrometheusSource:
    """The figures as PromQL over Prometheus's API (the query definitions, as gate runs them)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url, self.timeout = url, timeout
        self.problems: list[str] = []

    @property
    def name(self) -> str:
        return f"Prometheus {self.url}"

    def figures(self, window: str, scope: Scope) -> tuple[str, dict[tuple[str, ...], dict[str, float | None]]]:
        exprs = {"rps": queries.request_rate(window, scope), "calls": queries.calls(window, scope),
                 "success_ratio": queries.success_ratio(window, scope),
                 **{f"p{round(q * 100)}_s": queries.latency_quantile(q, window, scope) for q in queries.QUANTILES}}
        found: dict[tuple[str, ...], dict[str, float | None]] = {}
        for name, expr in exprs.items():
            try:
                samples = prometheus.query(self.url, expr, timeout=self.timeout)
            except prometheus.PrometheusError as error:
                raise SourceError(str(error)) from None
            for sample in samples:
                key = tuple(sample.labels.get(label, "") for label in scope.by)
                found.setdefault(key, {})[name] = _known(sample.value)
        return window, found


class MetricsSource:
    """The same figures computed from scrapes of each replica's /metrics page, kept between
    calls so that --watch widens the window up to the one asked for."""

    def __init__(self, replicas: Sequence[Replica], sample_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep,
                 take: Callable[[list[scraped.Target]], scraped.Snapshot] = scraped.take) -> None:
        self.targets = [scraped.Target(r.metrics_url, "automation", r.pool, r.instance) for r in replicas]
        self.sample_s, self.sleep, self.take = sample_s, sleep, take
        self.snapshots: list[scraped.Snapshot] = []
        self.problems: list[str] = []

    @property
    def name(self) -> str:
        return "/metrics of each process (no Prometheus)"

    def figures(self, window: str, scope: Scope) -> tuple[str, dict[tuple[str, ...], dict[str, float | None]]]:
        seconds = parse_window(window)
        if not self.snapshots:
            self.snapshots.append(self.take(self.targets))
            self.sleep(min(self.sample_s, seconds))  # a rate needs two readings
        newest = self.take(self.targets)
        self.snapshots = [*self.snapshots, newest][-_KEPT_SNAPSHOTS:]
        oldest = next(s for s in self.snapshots if s.at >= newest.at - seconds - 0.5 or s is newest)
        if oldest is newest:
            oldest = self.snapshots[-2]
        view = scraped.Window(oldest, newest)
        columns = {"rps": view.request_rate(scope), "calls": view.calls(scope),
                   "error_ratio": view.error_ratio(scope),
                   **{f"p{round(q * 100)}_s": view.latency_quantile(q, scope) for q in queries.QUANTILES}}
        found: dict[tuple[str, ...], dict[str, float | None]] = {}
        for name, values in columns.items():
            for key, value in values.items():
                found.setdefault(key, {})[name] = value
        for values in found.values():
            error = values.pop("error_ratio", None)
            values["success_ratio"] = None if error is None else 1 - error
        # A process that did not answer has no figures (not zeros), and its pool's are partial.
        self.problems = [f"{instance}: /metrics did not answer" for instance in newest.unreachable]
        for key in [key for key in found if set(key) & set(newest.unreachable)]:
            del found[key]
        return format_window(view.seconds), found


class NoFigures:
    """A source with nothing to read: every figure unknown, and the reason said once."""

    name = "no source of figures"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.problems: list[str] = []

    def figures(self, window: str, scope: Scope) -> tuple[str, dict[tuple[str, ...], dict[str, float | None]]]:
        raise SourceError(self.reason)


def parse_window(text: str) -> float:
    """Seconds of a Prometheus duration such as 30s, 1m, 1h30m; ValueError otherwise."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"window must be a duration such as 30s, 1m or 1h, not {text!r}")
    seconds = sum(int(number) * units[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError(f"window must be longer than 0, not {text!r}")
    return seconds


def format_window(seconds: float) -> str:
    return f"{max(1, round(seconds))}s" if seconds < 120 else f"{round(seconds / 60)}m"


def report(source: PrometheusSource | MetricsSource | NoFigures, admin: EnvoyAdmin | None, pools: Sequence[str],
           replicas: Sequence[Replica], window: str, per_replica: bool = False) -> Report:
    """One reading of every pool (or replica): figures, weights and hosts, and what failed."""
    problems: list[str] = []
    rows = ([Row(r.name, r.pool) for r in replicas] if per_replica else [Row(pool, pool) for pool in pools])
    _gateway_facts(admin, rows, replicas, per_replica, problems)
    scope = PER_REPLICA if per_replica else PER_POOL
    effective = window
    try:
        effective, found = source.figures(window, scope)
    except (SourceError, OSError) as error:
        problems.append(f"{source.name}: {error}")
        found = None
    problems.extend(source.problems)
    by_instance = {r.name: r.instance for r in replicas}
    for row in rows:
        key = (row.pool, by_instance[row.name]) if per_replica else (row.pool,)
        values = None if found is None else found.get(key)
        if values:
            for name in FIGURES:
                setattr(row, name, values.get(name))
        row.state = _state(row, values, found is None)
    return Report(source.name, effective, time.time(), rows, problems)


def _gateway_facts(admin: EnvoyAdmin | None, rows: list[Row], replicas: Sequence[Replica], per_replica: bool,
                   problems: list[str]) -> None:
    if admin is None:
        return
    try:
        weights, health = admin.weights(), admin.pool_health()
        hosts = admin.host_health() if per_replica else {}
    except AdminError as error:
        problems.append(f"gateway: {error}")
        return
    address = {r.name: r.address for r in replicas}
    for row in rows:
        row.weight = getattr(weights, row.pool, None)
        if per_replica:
            healthy = hosts.get(address[row.name])
            row.hosts = 0 if healthy is None else 1
            row.healthy_hosts = int(bool(healthy))
        elif row.pool in health:
            row.healthy_hosts, row.hosts = health[row.pool].healthy, health[row.pool].total
        else:
            row.healthy_hosts, row.hosts = 0, 0


def _state(row: Row, values: dict | None, source_failed: bool) -> str:
    if row.hosts == 0:
        return "no hosts"
    if source_failed:
        return "unknown"
    if not values or values.get("rps") is None:
        return "no data"
    if row.rps == 0:
        return "no traffic"
    if row.healthy_hosts == 0:
        return "down"
    if row.success_ratio is not None and row.success_ratio < queries.AVAILABILITY_OBJECTIVE:
        return "below SLO"
    return "ok"


# --- how a report reads ---------------------------------------------------------------------------

def _cell(value: float | None, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def table(report_: Report) -> str:
    """The report as linkerd viz stat prints it: one line per pool or replica."""
    header = f"{'NAME':10} {'WEIGHT':>6} {'HOSTS':>5} {'RPS':>8} {'SUCCESS':>8} {'P50':>9} {'P95':>9} {'P99':>9}  STATE"
    lines = [header]
    for row in report_.rows:
        hosts = "—" if row.hosts is None else f"{row.healthy_hosts}/{row.hosts}"
        lines.append(f"{row.name:10} {_cell(row.weight, '{:d}%'):>6} {hosts:>5} {_cell(row.rps, '{:.1f}/s'):>8} "
                     f"{_cell(None if row.success_ratio is None else row.success_ratio * 100, '{:.2f}%'):>8} "
                     f"{_ms(row.p50_s):>9} {_ms(row.p95_s):>9} {_ms(row.p99_s):>9}  {row.state}")
    at = time.strftime("%H:%M:%S", time.localtime(report_.at))
    lines.append(f"window {report_.window} · {report_.source} · {at}")
    if len(report_.gateways) > 1:
        lines.append("gateways: " + " · ".join(
            f"{name} {value['stable']}/{value['canary']}" if isinstance(value, dict) else f"{name} unknown"
            for name, value in report_.gateways.items()))
    lines.extend(f"! {problem}" for problem in report_.problems)
    return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.1f}ms"
