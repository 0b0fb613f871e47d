"""The mesh's queries, defined once: request rate, success and error ratio (server-fault codes
only, the SLO's definition), latency quantiles, cache hit ratio, errors by reason, top tools,
traffic share, healthy hosts and budget burn. The Grafana dashboards, the page's mesh view,
`opsconductor stat`, `canary status`, `gate` and `rollout` all read these functions; the
series they select (`Series`) are also what `stat` evaluates itself on raw /metrics pages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from services.common.names import AUTOMATION_SERVICE, POOLS

# Server-side faults spend error budget (the codes Envoy maps to HTTP 5xx). Caller mistakes
# (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, ...) and cancellations do not.
SERVER_FAULT_CODES = ("UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS")
BUDGET_CODES = "|".join(SERVER_FAULT_CODES)
# The availability SLO: 99.9 % over 30 days, so 0.1 % of calls may fail.
AVAILABILITY_OBJECTIVE = 0.999
ERROR_BUDGET = 0.001
QUANTILES = (0.5, 0.95, 0.99)
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.:-]*")


@dataclass(frozen=True)
class Series:
    """The samples of one metric that carry the given label matchers (label, op, value)."""

    metric: str
    matchers: tuple[tuple[str, str, str], ...] = ()

    def where(self, label: str, op: str, value: str) -> Series:
        return Series(self.metric, (*self.matchers, (label, op, value)))

    def named(self, metric: str) -> Series:
        return Series(metric, self.matchers)

    def selector(self, scope: Scope) -> str:
        matchers = [*self.matchers, *scope.matchers()]
        return self.metric + "{" + ",".join(f'{label}{op}"{value}"' for label, op, value in matchers) + "}"

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether a scraped sample's labels (target labels included) pass every matcher."""
        for label, op, value in self.matchers:
            actual = labels.get(label, "")
            ok = {"=": actual == value, "!=": actual != value}.get(op)
            if ok is None:
                ok = bool(re.fullmatch(value, actual))
                ok = ok if op == "=~" else not ok
            if not ok:
                return False
        return True


@dataclass(frozen=True)
class Scope:
    """Which pools a query reads and which labels its result keeps.

    `pool` is a pool name, a regex or a Grafana variable ("$pool"); empty reads every pool.
    `by` is () for one service-wide figure, ("pool",) per pool, ("pool", "instance") per process.
    """

    pool: str = ""
    by: tuple[str, ...] = ()

    def matchers(self) -> list[tuple[str, str, str]]:
        if not self.pool:
            return []
        return [("pool", "=" if _PLAIN_VALUE.fullmatch(self.pool) else "=~", self.pool)]

    def grouping(self, *extra: str) -> str:
        labels = [*self.by, *extra]
        return f"sum by ({', '.join(labels)}) " if labels else "sum "


SERVICE = Scope()
PER_POOL = Scope(by=("pool",))
PER_REPLICA = Scope(by=("pool", "instance"))


def pool_scope(pool: str | None) -> Scope:
    """One pool's (or, with None, the whole service's) single figure, as gate and rollout read it."""
    return Scope(pool=pool or "")


# --- what the queries select ----------------------------------------------------------------

# Every call of the public service (Execute and ListTools), as the SLO counts them; Envoy's
# gRPC health checks are another service and never count.
CALLS = Series("grpc_server_handled_total", (("job", "=", "automation"), ("grpc_service", "=", AUTOMATION_SERVICE)))
FAULTS = CALLS.where("grpc_code", "=~", BUDGET_CODES)
EXECUTE_DURATION = Series("ai_request_duration_seconds_bucket", (("job", "=", "automation"),))
EXECUTE_ERRORS = Series("ai_request_errors_total", (("job", "=", "automation"),))
CACHE_HITS = Series("selector_cache_hits_total", (("job", "=", "pipeline"),))
CACHE_MISSES = CACHE_HITS.named("selector_cache_misses_total")
SELECTIONS = Series("selector_selections_total", (("job", "=", "pipeline"),))
POOL_HOSTS_HEALTHY = Series("envoy_cluster_membership_healthy", (("job", "=", "envoy"),))
POOL_HOSTS = POOL_HOSTS_HEALTHY.named("envoy_cluster_membership_total")


def _rate(series: Series, window: str, scope: Scope, *extra: str) -> str:
    return f"{scope.grouping(*extra)}(rate({series.selector(scope)}[{window}]))"


# --- the golden signals ------------------------------------------------------------------------

def request_rate(window: str, scope: Scope = SERVICE) -> str:
    """Calls per second of the public service."""
    return _rate(CALLS, window, scope)


def calls(window: str, scope: Scope = SERVICE) -> str:
    """Calls within the window: the sample size a verdict needs."""
    return f"{scope.grouping()}(increase({CALLS.selector(scope)}[{window}]))"


def error_ratio(window: str, scope: Scope = SERVICE) -> str:
    """Share of calls that ended in a server fault; 0 (not "no data") while none has failed,
    NaN while there are no calls."""
    all_calls = _rate(CALLS, window, scope)
    return f"({_rate(FAULTS, window, scope)} or 0 * {all_calls}) / {all_calls}"


def success_ratio(window: str, scope: Scope = SERVICE) -> str:
    """Share of calls without a server fault: caller mistakes count as successes."""
    return f"1 - ({error_ratio(window, scope)})"


def latency_quantile(quantile: float, window: str, scope: Scope = SERVICE) -> str:
    """Execute latency in seconds as the automation service measures it."""
    return f"histogram_quantile({quantile}, {_rate(EXECUTE_DURATION, window, scope, 'le')})"


def budget_burn(window: str, scope: Scope = SERVICE) -> str:
    """How many times faster than "exactly spent in 30 days" the availability budget goes."""
    return f"({error_ratio(window, scope)}) / {ERROR_BUDGET}"


def traffic_share(window: str, scope: Scope = PER_POOL) -> str:
    """Each pool's share of the calls served: the canary weight as traffic shows it."""
    every_pool = _rate(CALLS, window, Scope(pool=scope.pool))
    return f"{_rate(CALLS, window, scope)} / ignoring ({', '.join(scope.by)}) group_left {every_pool}"


def healthy_hosts(scope: Scope = PER_POOL) -> str:
    """Hosts of each pool that Envoy sends calls to."""
    return _hosts(POOL_HOSTS_HEALTHY, scope)


def hosts(scope: Scope = PER_POOL) -> str:
    """Hosts of each pool, healthy or not (0 for a pool without any)."""
    return _hosts(POOL_HOSTS, scope)


def _hosts(series: Series, scope: Scope) -> str:
    # Envoy names the cluster, not the pool: "stable_pool" becomes pool="stable".
    pools = scope.pool or "|".join(POOLS)
    selector = series.where("envoy_cluster_name", "=~", f"({pools})_pool").selector(Scope())
    return f'{scope.grouping()}(label_replace({selector}, "pool", "$1", "envoy_cluster_name", "(.+)_pool"))'


# --- what the view and the dashboards show around them -------------------------------------------

def errors_by_reason(window: str, scope: Scope = PER_POOL) -> str:
    """Failed Execute calls per second by ErrorInfo reason (caller mistakes included)."""
    return f"{_rate(EXECUTE_ERRORS, window, scope, 'error_type')} > 0"


def cache_hit_ratio(window: str, scope: Scope = PER_POOL) -> str:
    """Selector cache hits over lookups; NaN while there were no lookups."""
    hits = _rate(CACHE_HITS, window, scope)
    return f"{hits} / ({hits} + {_rate(CACHE_MISSES, window, scope)})"


def top_tools(count: int, window: str, scope: Scope = SERVICE) -> str:
    """The tools the selector picked most, in selections per second."""
    return f"topk({count}, {_rate(SELECTIONS, window, scope, 'tool')} > 0)"


@dataclass(frozen=True)
class ViewQuery:
    """A query of the page's mesh view: its PromQL with "$window" for the rate window."""

    name: str
    expr: str
    unit: str
    labels: tuple[str, ...] = field(default=("pool",))


WINDOW = "$window"


def view_queries() -> list[ViewQuery]:
    """What the mesh view asks Prometheus (written into the page's bundle by `make generate`)."""
    return [
        ViewQuery("share", traffic_share(WINDOW), "ratio"),
        ViewQuery("healthyHosts", healthy_hosts(), "hosts"),
        ViewQuery("hosts", hosts(), "hosts"),
        ViewQuery("requestRate", request_rate(WINDOW, PER_POOL), "per_second"),
        ViewQuery("successRatio", success_ratio(WINDOW, PER_POOL), "ratio"),
        *(ViewQuery(f"p{round(q * 100)}", latency_quantile(q, WINDOW, PER_POOL), "seconds") for q in QUANTILES),
        ViewQuery("errorsByReason", errors_by_reason(WINDOW), "per_second", ("pool", "error_type")),
        ViewQuery("cacheHitRatio", cache_hit_ratio(WINDOW), "ratio"),
        ViewQuery("topTools", top_tools(5, WINDOW), "per_second", ("tool",)),
        ViewQuery("budgetBurn", budget_burn(WINDOW, PER_POOL), "times"),
    ]


def exemplar_selector() -> str:
    """The series whose exemplars carry the trace ids of failed calls."""
    return EXECUTE_ERRORS.selector(Scope())
