"""What the page's mesh view asks Prometheus: queries from queries.py with "$window" where the
rate window goes, and the time ranges it offers. `make generate` writes them into the page's
sources as TypeScript, so the browser runs exactly these and the tests can run them too."""

from __future__ import annotations

import json
from dataclasses import dataclass

from opsconductor.observability import queries as q
from opsconductor.observability.queries import PER_POOL, SERVICE
from services.common.status import STATUS_BY_REASON

VIEW_QUERIES_PATH = "web_client/src/mesh/queries.gen.ts"
WINDOW = "$window"


@dataclass(frozen=True)
class ViewQuery:
    """One series set of the view; `labels` are those its results are told apart by."""

    name: str
    expr: str
    unit: str  # ratio, per_second, seconds, hosts, times
    labels: tuple[str, ...] = ("pool",)


@dataclass(frozen=True)
class TimeRange:
    """A span the view's charts cover, the step between points and the rate window of each."""

    label: str
    seconds: int
    step_s: int
    rate_window: str


RANGES = (TimeRange("5 m", 300, 5, "1m"), TimeRange("15 m", 900, 15, "1m"), TimeRange("1 h", 3600, 30, "2m"))
TOP_TOOLS = 5


def view_queries() -> list[ViewQuery]:
    return [
        ViewQuery("share", q.traffic_share(WINDOW, PER_POOL), "ratio"),
        ViewQuery("healthyHosts", q.healthy_hosts(PER_POOL), "hosts"),
        ViewQuery("hosts", q.hosts(PER_POOL), "hosts"),
        ViewQuery("requestRate", q.request_rate(WINDOW, PER_POOL), "per_second"),
        ViewQuery("successRatio", q.success_ratio(WINDOW, PER_POOL), "ratio"),
        *(ViewQuery(f"p{round(quantile * 100)}", q.latency_quantile(quantile, WINDOW, PER_POOL), "seconds")
          for quantile in q.QUANTILES),
        ViewQuery("budgetBurn", q.budget_burn(WINDOW, PER_POOL), "times"),
        ViewQuery("cacheHitRatio", q.cache_hit_ratio(WINDOW, PER_POOL), "ratio"),
        ViewQuery("errorsByReason", q.errors_by_reason(WINDOW, PER_POOL), "per_second", ("pool", "error_type")),
        ViewQuery("topTools", q.top_tools(TOP_TOOLS, WINDOW, SERVICE), "per_second", ("tool",)),
    ]


def exemplar_selector() -> str:
    """The series whose exemplars carry the trace ids of failed calls, by pool and reason."""
    return q.EXECUTE_ERRORS.selector(SERVICE)


def view_queries_ts() -> str:
    data = {"queries": {v.name: {"expr": v.expr, "unit": v.unit, "labels": list(v.labels)} for v in view_queries()},
            "exemplars": exemplar_selector(), "window": WINDOW, "objective": q.AVAILABILITY_OBJECTIVE,
            # ErrorInfo reasons that spend error budget; the others are the caller's mistakes.
            "faultReasons": sorted(r for r, code in STATUS_BY_REASON.items() if code.name in q.SERVER_FAULT_CODES),
            "ranges": [{"label": r.label, "seconds": r.seconds, "stepS": r.step_s, "rateWindow": r.rate_window}
                       for r in RANGES]}
    body = json.dumps(data, indent=2, ensure_ascii=False)
    return ("// Generated from opsconductor/observability/view.py and queries.py by `make generate`; do not edit.\n"
            f"export const VIEW = {body} as const;\n")
