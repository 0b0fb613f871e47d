"""The mesh's queries, defined once: request rate, success and error ratio (server-fault codes
only, the SLO's definition), latency quantiles, cache hit ratio, errors by reason, top tools,
traffic share, healthy hosts and budget burn. The Grafana dashboards, the page's mesh view,
`opsconductor stat`, `canary status`, `gate` and `rollout` all read these functions; the
series they select (`Series`) are also what `stat` evaluates itself on raw /metrics pages."""

from __future__ import annotations

import re
from dataclasses import dataclass

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


# --- what only the dashboards show ------------------------------------------------------------

EXECUTE_CALLS = Series("ai_requests_total", (("job", "=", "automation"),))
GRPC_CALLS = Series("grpc_server_handled_total", (("grpc_service", "!=", "grpc.health.v1.Health"),))
GRPC_DURATION = Series("grpc_server_handling_seconds_bucket", GRPC_CALLS.matchers)
TOOL_RUNS = Series("pipeline_tool_runs_total", (("job", "=", "pipeline"),))
SEARCHES = Series("selector_search_total", (("job", "=", "pipeline"),))
SEARCH_DURATION = Series("selector_search_duration_seconds_bucket", SEARCHES.matchers)
SELECTOR_ERRORS = Series("selector_errors_total", (("job", "=", "pipeline"),))
SELECTOR_ACCURACY = Series("selector_accuracy_ratio", (("job", "=", "pipeline"),))
SELECTOR_CASES = Series("selector_eval_cases", (("job", "=", "pipeline"),))
BUILD_INFO = Series("opsconductor_build_info")
# Recorded by the SLO rules: the 30-day figures are too heavy to compute on every refresh.
BUDGET_REMAINING = Series("slo:period_error_budget_remaining:ratio")


def execute_calls_by_status(window: str, scope: Scope) -> str:
    """Execute calls per second by gRPC status name."""
    return _rate(EXECUTE_CALLS, window, scope, "status")


def latency_buckets(window: str, scope: Scope) -> str:
    """Execute calls per second by latency bucket (a heatmap's input)."""
    return _rate(EXECUTE_DURATION, window, scope, "le")


def grpc_calls_by_code(window: str, scope: Scope) -> str:
    """Calls per second of both services by method and gRPC code (health checks left out)."""
    return f"{_rate(GRPC_CALLS, window, scope, 'job', 'grpc_method', 'grpc_code')} > 0"


def handling_quantile(quantile: float, window: str, scope: Scope) -> str:
    """Server handling time of both services by job, from py-grpc-prometheus's histogram."""
    return f"histogram_quantile({quantile}, {_rate(GRPC_DURATION, window, scope, 'job', 'le')})"


def tool_runs_by_outcome(window: str, scope: Scope) -> str:
    return _rate(TOOL_RUNS, window, scope, "tool", "outcome")


def searches(window: str, scope: Scope, *by: str) -> str:
    """Selector searches per second."""
    return _rate(SEARCHES, window, scope, *by)


def search_quantile(quantile: float, window: str, scope: Scope) -> str:
    return f"histogram_quantile({quantile}, {_rate(SEARCH_DURATION, window, scope, 'le')})"


def selections(window: str, scope: Scope) -> str:
    """Selections per second by the tool chosen."""
    return _rate(SELECTIONS, window, scope, "tool")


def selector_errors_by_reason(window: str, scope: Scope) -> str:
    return _rate(SELECTOR_ERRORS, window, scope, "reason")


def selector_accuracy(scope: Scope, reduce: str = "min") -> str:
    """Share of the shipped labelled cases the selector gets right (per process, or the worst)."""
    return f"{reduce} by ({', '.join(scope.by)}) ({SELECTOR_ACCURACY.selector(scope)})" if scope.by \
        else SELECTOR_ACCURACY.selector(scope)


def selector_cases(scope: Scope) -> str:
    return f"max by ({', '.join(scope.by)}) ({SELECTOR_CASES.selector(scope)})"


def running_versions(scope: Scope) -> str:
    return BUILD_INFO.selector(scope)


def budget_remaining(slo: str = "") -> str:
    """Share of the 30-day error budget left, per SLO (1 untouched, 0 spent, below 0 overspent)."""
    return BUDGET_REMAINING.where("slo", "=", slo).selector(Scope()) if slo else BUDGET_REMAINING.metric
