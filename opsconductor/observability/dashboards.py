"""The Grafana dashboards (execution and selector), built with Grafana's own dashboards-as-code
library (grafana-foundation-sdk) from the mesh's query definitions: every panel's PromQL is a
function of queries.py, so the dashboards, the page's mesh view, `stat`, `gate` and `rollout`
show the same figures. `make generate` writes them to observability/grafana/dashboards."""

from __future__ import annotations

import json
from collections.abc import Callable

from grafana_foundation_sdk.builders import bargauge, dashboard, heatmap, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from opsconductor.observability import queries as q
from opsconductor.observability.queries import Scope

# Trace ids of exemplars open in Jaeger, which compose runs beside Grafana.
JAEGER_TRACE_URL = "http://127.0.0.1:16686/trace/"
RATE = "$__rate_interval"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
POOLS = Scope(pool="$pool")  # every pool the dashboard's pool variable selects, summed
BY_POOL = Scope(pool="$pool", by=("pool",))

Panel = Callable[[], object]


def _target(expr: str, legend: str = "__auto", ref: str = "A", instant: bool = False, exemplar: bool = False,
            fmt: PromQueryFormat | None = None) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    query = query.instant() if instant else query.range()
    if exemplar:
        query = query.exemplar(True)
    return query.format(fmt) if fmt else query


def _place(panel, panel_id: int, title: str, unit: str, width: int, height: int, targets, description: str = ""):
    panel = panel.id(panel_id).title(title).unit(unit).datasource(DATASOURCE).span(width).height(height)
    for target in targets:
        panel = panel.with_target(target)
    return panel.description(description) if description else panel


class _Board:
    """A dashboard under construction: panels get ids in order and fill rows left to right."""

    def __init__(self, uid: str, title: str, pool_job: str) -> None:
        self.next_id = 0
        self.builder = (
            dashboard.Dashboard(title).uid(uid).tags(["opsconductor"]).refresh("30s").time("now-1h", "now")
            .timezone("browser").editable()
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
            .with_variable(dashboard.QueryVariable("pool").label("Pool").datasource(DATASOURCE)
                           .query(f'label_values(up{{job="{pool_job}"}}, pool)')
                           .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(model.VariableSort.ALPHABETICAL_ASC)
                           .multi(True).include_all(True))
            .link(dashboard.DashboardLink("Traces (Jaeger)").type(model.DashboardLinkType.LINK)
                  .url(JAEGER_TRACE_URL.removesuffix("trace/") + "search").target_blank(True)))

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def row(self, title: str) -> _Board:
        self.builder = self.builder.with_row(dashboard.Row(title).id(self._id()))
        return self

    def add(self, kind, title: str, unit: str, width: int, height: int, *targets, description: str = "",
            configure: Callable = lambda panel: panel) -> _Board:
        panel = _place(kind(), self._id(), title, unit, width, height, targets, description)
        self.builder = self.builder.with_panel(configure(panel))
        return self

    def json(self) -> str:
        return json.dumps(self.builder.build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def _trace_link(panel):
    # Grafana links exemplars through the data source (provisioning/datasources); this link
    # makes the trace id of a point open in Jaeger from the panel too.
    return panel.data_links([dashboard.DashboardLink("Trace in Jaeger").url(
        JAEGER_TRACE_URL + "${__data.fields.trace_id}").target_blank(True)])


def execution() -> str:
    """Calls, errors, latency and the SLOs of the public service, canary beside stable."""
    board = _Board("opsconductor-execution", "OpsConductor / Execution", "automation")
    board.row("Overview")
    board.add(stat.Panel, "Calls per second", "reqps", 5, 5, _target(q.request_rate(RATE, POOLS), "calls/s"))
    board.add(stat.Panel, "Success rate (server faults only)", "percentunit", 5, 5,
              _target(q.success_ratio(RATE, BY_POOL), "{{pool}}"))
    board.add(stat.Panel, "p95 latency", "s", 5, 5, _target(q.latency_quantile(0.95, RATE, BY_POOL), "{{pool}}"))
    board.add(stat.Panel, "Availability budget left (30 days)", "percentunit", 4, 5,
              _target(q.budget_remaining("availability"), "budget left"))
    board.add(table.Panel, "Running versions", "short", 5, 5,
              _target(q.running_versions(POOLS), instant=True, fmt=PromQueryFormat.TABLE))

    board.row("Golden signals by pool")
    board.add(timeseries.Panel, "Traffic share by pool (canary weight)", "percentunit", 8, 8,
              _target(q.traffic_share(RATE, BY_POOL), "{{pool}}"))
    board.add(timeseries.Panel, "Calls per second by pool", "reqps", 8, 8,
              _target(q.request_rate(RATE, BY_POOL), "{{pool}}"))
    board.add(timeseries.Panel, "Success rate by pool", "percentunit", 8, 8,
              _target(q.success_ratio(RATE, BY_POOL), "{{pool}}"),
              description="Calls without a server fault; caller mistakes (INVALID_ARGUMENT, NOT_FOUND…) succeed.")
    board.add(timeseries.Panel, "Execute latency p50 / p95 / p99", "s", 12, 8,
              *(_target(q.latency_quantile(quantile, RATE, BY_POOL), f"{{{{pool}}}} p{round(quantile * 100)}",
                        ref) for quantile, ref in zip(q.QUANTILES, "ABC", strict=True)))
    board.add(timeseries.Panel, "Healthy hosts by pool", "short", 12, 8,
              _target(q.healthy_hosts(BY_POOL), "{{pool}} healthy"), _target(q.hosts(BY_POOL), "{{pool}} total", "B"))

    board.row("Service level objectives")
    board.add(timeseries.Panel, "Error budget burn rate (5 m, 1 h and 6 h windows)", "x", 12, 8,
              *(_target(q.budget_burn(window, POOLS), window, ref) for window, ref in (("5m", "A"), ("1h", "B"),
                                                                                     ("6h", "C"))),
              description="1 spends the 30-day budget exactly; the page alert needs 14.4 over 5 m and 1 h.")
    board.add(timeseries.Panel, "Error budget left (30 days)", "percentunit", 12, 8,
              _target(q.budget_remaining(), "{{slo}}"))

    board.row("Errors")
    board.add(timeseries.Panel, "Failed Execute calls by reason", "reqps", 12, 8,
              _target(q.errors_by_reason(RATE, Scope(pool="$pool")), "{{error_type}}"))
    board.add(timeseries.Panel, "Execute calls by status", "reqps", 12, 8,
              _target(q.execute_calls_by_status(RATE, BY_POOL), "{{pool}} {{status}}"))
    board.add(timeseries.Panel, "gRPC calls by method and code", "reqps", 12, 8,
              _target(q.grpc_calls_by_code(RATE, POOLS), "{{job}} {{grpc_method}} {{grpc_code}}"))
    canary, stable = (q.success_ratio(RATE, Scope(pool=pool)) for pool in ("canary", "stable"))
    board.add(timeseries.Panel, "Success rate: canary minus stable", "percentunit", 12, 8,
              _target(f"({canary}) - ({stable})", "canary - stable"))

    board.row("Latency")
    board.add(heatmap.Panel, "Execute duration heatmap", "s", 12, 8,
              _target(q.latency_buckets(RATE, POOLS), "{{le}}", fmt=PromQueryFormat.HEATMAP))
    board.add(timeseries.Panel, "Trace lookup: p99 by tool with exemplars", "s", 12, 8,
              _target(q.latency_quantile(0.99, RATE, Scope(pool="$pool", by=("tool",))), "{{tool}} p99",
                      exemplar=True), configure=_trace_link,
              description="Each exemplar is one call; its trace_id opens the trace.")
    board.add(timeseries.Panel, "Server handling time p95 by service", "s", 12, 8,
              _target(q.handling_quantile(0.95, RATE, POOLS), "{{job}}"))
    board.add(timeseries.Panel, "Tool runs by outcome", "reqps", 12, 8,
              _target(q.tool_runs_by_outcome(RATE, POOLS), "{{tool}} {{outcome}}"))
    return board.json()


def selector() -> str:
    """The pipeline's tool selector: accuracy, searches, cache and selections."""
    board = _Board("opsconductor-selector", "OpsConductor / Selector", "pipeline")
    board.row("Overview")
    board.add(stat.Panel, "Selection accuracy", "percentunit", 6, 5, _target(q.selector_accuracy(BY_POOL), "{{pool}}"))
    board.add(stat.Panel, "Labelled evaluation cases", "short", 6, 5, _target(q.selector_cases(BY_POOL), "{{pool}}"))
    board.add(stat.Panel, "Searches per second", "reqps", 6, 5, _target(q.searches(RATE, POOLS), "searches/s"))
    board.add(stat.Panel, "Cache hit ratio", "percentunit", 6, 5, _target(q.cache_hit_ratio(RATE, BY_POOL), "{{pool}}"))

    board.row("Searches")
    board.add(timeseries.Panel, "Searches by platform", "reqps", 8, 8,
              _target(q.searches(RATE, BY_POOL, "platform"), "{{pool}} {{platform}}"))
    board.add(timeseries.Panel, "Search latency p50 / p95 / p99", "s", 8, 8,
              *(_target(q.search_quantile(quantile, RATE, BY_POOL), f"{{{{pool}}}} p{round(quantile * 100)}", ref)
                for quantile, ref in zip(q.QUANTILES, "ABC", strict=True)))
    board.add(timeseries.Panel, "Cache hit ratio by pool", "percentunit", 8, 8,
              _target(q.cache_hit_ratio(RATE, BY_POOL), "{{pool}}"))

    board.row("Selections")
    board.add(bargauge.Panel, "Top selected tools", "reqps", 8, 8,
              _target(q.top_tools(10, RATE, POOLS), "{{tool}}", instant=True))
    board.add(timeseries.Panel, "Selections by tool", "reqps", 8, 8, _target(q.selections(RATE, POOLS), "{{tool}}"))
    board.add(timeseries.Panel, "Selection errors by reason", "reqps", 8, 8,
              _target(q.selector_errors_by_reason(RATE, POOLS), "{{reason}}"))
    board.add(timeseries.Panel, "Selection accuracy by replica", "percentunit", 24, 7,
              _target(q.selector_accuracy(Scope(pool="$pool")), "{{pool}} {{instance}}"))
    return board.json()


# Repository path -> the dashboard's JSON (registered in opsconductor/renders.py).
DASHBOARDS = {
    "observability/grafana/dashboards/execution.json": execution,
    "observability/grafana/dashboards/selector.json": selector,
}
