"""The one set of query definitions: what each selects and keeps, the same selections evaluated
on raw /metrics scrapes (rates, resets, server-fault ratio, Prometheus's histogram_quantile),
and the golden-metrics report `stat` and `canary status` print, including its empty, down and
slow cases."""

from __future__ import annotations

import math

import pytest

from opsconductor.gateway.admin import AdminError, PoolHealth, Weights
from opsconductor.observability import golden, queries, scraped, view
from opsconductor.observability.prometheus import Sample
from opsconductor.observability.queries import PER_POOL, PER_REPLICA, SERVICE, Scope
from opsconductor.release import analysis
from services.common.names import AUTOMATION_SERVICE


# --- the PromQL ---------------------------------------------------------------------------------

def test_a_scope_names_its_pools_and_keeps_its_labels() -> None:
    assert 'pool="canary"' in queries.request_rate("1m", Scope(pool="canary"))
    assert 'pool=~"$pool"' in queries.request_rate("1m", Scope(pool="$pool"))
    assert "pool" not in queries.request_rate("1m", SERVICE).replace("$pool", "")
    assert queries.request_rate("1m", PER_POOL).startswith("sum by (pool) (")
    assert queries.request_rate("1m", PER_REPLICA).startswith("sum by (pool, instance) (")
    assert queries.latency_quantile(0.99, "30s", PER_POOL).startswith("histogram_quantile(0.99, sum by (pool, le) (")


@pytest.mark.parametrize("code", ["OK", "INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED", "CANCELLED",
                                  "ALREADY_EXISTS", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED"])
def test_caller_mistakes_are_never_server_faults(code: str) -> None:
    labels = {"job": "automation", "grpc_service": AUTOMATION_SERVICE, "grpc_code": code}
    assert queries.CALLS.matches(labels) and not queries.FAULTS.matches(labels)


@pytest.mark.parametrize("code", queries.SERVER_FAULT_CODES)
def test_server_faults_spend_budget(code: str) -> None:
    labels = {"job": "automation", "grpc_service": AUTOMATION_SERVICE, "grpc_code": code}
    assert queries.FAULTS.matches(labels)
    # Envoy's health checks are another service and never count.
    assert not queries.CALLS.matches({**labels, "grpc_service": "grpc.health.v1.Health"})


def test_gate_and_rollout_read_the_shared_definitions() -> None:
    for pool in (None, "canary", "stable"):
        scope = queries.pool_scope(pool)
        assert analysis.queries("30s", pool) == {
            "calls": queries.calls("30s", scope), "rps": queries.request_rate("30s", scope),
            "error_ratio": queries.error_ratio("30s", scope), "p95_s": queries.latency_quantile(0.95, "30s", scope),
            "p99_s": queries.latency_quantile(0.99, "30s", scope)}


def test_the_error_ratio_reads_zero_without_faults_and_success_is_its_complement() -> None:
    ratio = queries.error_ratio("1m", PER_POOL)
    assert " or 0 * " in ratio  # no failing series yet is 0, not "no data"
    assert queries.success_ratio("1m", PER_POOL) == f"1 - ({ratio})"
    assert queries.budget_burn("1m", PER_POOL).endswith(f"/ {queries.ERROR_BUDGET}")


def test_hosts_come_from_envoy_renamed_to_pools() -> None:
    expr = queries.healthy_hosts(Scope(pool="$pool", by=("pool",)))
    assert 'envoy_cluster_name=~"($pool)_pool"' in expr and '"pool", "$1", "envoy_cluster_name"' in expr


def test_the_views_queries_are_rendered_into_the_page_with_a_window_placeholder() -> None:
    text = view.view_queries_ts()
    assert text.startswith("// Generated") and "export const VIEW = " in text
    for query in view.view_queries():
        assert query.expr.replace('"', '\\"') in text
        rate_based = "rate(" in query.expr
        assert (view.WINDOW in query.expr) == rate_based, query.name
    assert [r.rate_window for r in view.RANGES] and all(r.seconds % r.step_s == 0 for r in view.RANGES)
    assert '"INJECTED_FAULT"' in text and '"UNKNOWN_TOOL"' not in text.split('"faultReasons"')[1].split("]")[0]


# --- the same definitions on /metrics scrapes ---------------------------------------------------

def _calls(code: str, count: float, pool: str = "stable", instance: str = "stable-1-automation") -> Sample:
    return Sample({"__name__": "grpc_server_handled_total", "job": "automation", "pool": pool, "instance": instance,
                   "grpc_service": AUTOMATION_SERVICE, "grpc_method": "Execute", "grpc_code": code}, count)


def _buckets(counts: dict[float, float], pool: str = "stable") -> list[Sample]:
    return [Sample({"__name__": "ai_request_duration_seconds_bucket", "job": "automation", "pool": pool,
                    "instance": f"{pool}-1-automation", "tool": "echo", "le": "+Inf" if le == math.inf else str(le)},
                   count) for le, count in counts.items()]


def _window(before: list[Sample], after: list[Sample], seconds: float = 10.0) -> scraped.Window:
    return scraped.Window(scraped.Snapshot(100.0, tuple(before)), scraped.Snapshot(100.0 + seconds, tuple(after)))


def test_rates_and_the_fault_ratio_from_two_scrapes() -> None:
    window = _window([_calls("OK", 100), _calls("INVALID_ARGUMENT", 10), _calls("INTERNAL", 0),
                      _calls("OK", 50, "canary", "canary-1-automation")],
                     [_calls("OK", 180), _calls("INVALID_ARGUMENT", 30), _calls("INTERNAL", 0),
                      _calls("OK", 80, "canary", "canary-1-automation"),
                      _calls("UNAVAILABLE", 10, "canary", "canary-1-automation")])  # first seen: no rate yet
    assert window.request_rate(PER_POOL) == {("stable",): 10.0, ("canary",): 3.0}
    # Caller mistakes are calls, not faults: 100 calls, none failed.
    assert window.error_ratio(PER_POOL) == {("stable",): 0.0, ("canary",): 0.0}
    assert window.request_rate(SERVICE) == {(): 13.0}


def test_a_counter_reset_counts_from_zero_as_rate_does() -> None:
    window = _window([_calls("OK", 500), _calls("INTERNAL", 40)], [_calls("OK", 30), _calls("INTERNAL", 10)])
    assert window.calls(PER_POOL) == {("stable",): 40.0}
    assert window.error_ratio(PER_POOL) == {("stable",): 0.25}


def test_no_calls_in_the_window_is_no_ratio_rather_than_zero() -> None:
    window = _window([_calls("OK", 5)], [_calls("OK", 5)])
    assert window.error_ratio(PER_POOL) == {("stable",): None}
    assert window.request_rate(PER_POOL) == {("stable",): 0.0}


@pytest.mark.parametrize(("quantile", "buckets", "expected"), [
    (0.5, {0.1: 50, 0.5: 90, 1.0: 100, math.inf: 100}, 0.1),
    (0.95, {0.1: 50, 0.5: 90, 1.0: 100, math.inf: 100}, 0.75),
    (0.25, {0.1: 50, 0.5: 90, 1.0: 100, math.inf: 100}, 0.05),
    (0.99, {0.1: 50, 0.5: 90, 1.0: 95, math.inf: 100}, 1.0),  # rank in +Inf: the highest finite bound
    (0.5, {0.1: 0, 1.0: 0, math.inf: 0}, None),  # no observations: NaN in Prometheus
    (0.5, {0.1: 10}, None),  # no +Inf bucket
])
def test_histogram_quantile_follows_prometheus(quantile, buckets, expected) -> None:
    result = scraped.histogram_quantile(quantile, buckets)
    assert result == (None if expected is None else pytest.approx(expected))


def test_latency_quantiles_from_bucket_deltas() -> None:
    before = _buckets({0.005: 10, 0.01: 10, 0.1: 10, math.inf: 10})
    after = _buckets({0.005: 60, 0.01: 100, 0.1: 110, math.inf: 110})
    window = _window(before, after)
    assert window.latency_quantile(0.5, PER_POOL) == {("stable",): pytest.approx(0.005)}
    assert window.latency_quantile(0.95, PER_POOL)[("stable",)] == pytest.approx(0.055)


def test_a_target_that_does_not_answer_is_listed_not_read_as_zero() -> None:
    def read(url: str):
        if "down" in url:
            raise ConnectionRefusedError(url)
        return {"grpc_server_handled_total": [Sample({"grpc_code": "OK", "grpc_service": AUTOMATION_SERVICE}, 3)]}

    snapshot = scraped.take([scraped.Target("http://up/metrics", "automation", "stable", "a"),
                             scraped.Target("http://down/metrics", "automation", "canary", "b")], read, lambda: 5.0)
    assert snapshot.unreachable == ("b",)
    assert [s.labels["pool"] for s in snapshot.samples] == ["stable"]


# --- the report of stat and canary status ------------------------------------------------------

class FakeAdmin:
    def __init__(self, health: dict[str, PoolHealth], fail: bool = False) -> None:
        self.health, self.fail = health, fail

    def _check(self) -> None:
        if self.fail:
            raise AdminError("Envoy admin unreachable")

    def weights(self) -> Weights:
        self._check()
        return Weights(90, 10)

    def pool_health(self) -> dict[str, PoolHealth]:
        self._check()
        return self.health

    def host_health(self) -> dict[str, bool]:
        self._check()
        return {"127.0.0.1:1": True, "127.0.0.1:2": False}


class FakeSource:
    name = "fake"

    def __init__(self, found=None, error: str = "") -> None:
        self.found, self.error, self.problems = found or {}, error, []

    def figures(self, window, scope):
        if self.error:
            raise golden.SourceError(self.error)
        return window, self.found


REPLICAS = [golden.Replica("stable-1", "stable", "127.0.0.1:1", "", "stable-1-automation"),
            golden.Replica("canary-1", "canary", "127.0.0.1:2", "", "canary-1-automation")]
HEALTHY = {"stable": PoolHealth(1, 1), "canary": PoolHealth(1, 1)}
FIGURES = {"rps": 10.0, "calls": 600.0, "success_ratio": 0.75, "p50_s": 0.002, "p95_s": 0.01, "p99_s": 0.02}


def test_each_pool_reports_its_weight_hosts_and_golden_signals() -> None:
    source = FakeSource({("stable",): FIGURES, ("canary",): {**FIGURES, "rps": 0.0, "success_ratio": None}})
    report = golden.report(source, FakeAdmin(HEALTHY), ("stable", "canary"), REPLICAS, "1m")
    stable, canary = report.rows
    assert (stable.weight, stable.healthy_hosts, stable.hosts, stable.rps, stable.success_ratio, stable.state) == \
        (90, 1, 1, 10.0, 0.75, "below SLO")
    assert (canary.weight, canary.rps, canary.success_ratio, canary.state) == (10, 0.0, None, "no traffic")
    text = golden.table(report)
    assert "75.00%" in text and "no traffic" in text
    canary_line = next(line for line in text.splitlines() if line.startswith("canary"))
    assert "—" in canary_line, "an unknown success rate is a dash, never 0"
    assert report.to_json()["rows"][1]["success_ratio"] is None


def test_a_pool_without_hosts_says_so() -> None:
    report = golden.report(FakeSource({}), FakeAdmin({"stable": PoolHealth(1, 1), "canary": PoolHealth(0, 0)}),
                           ("stable", "canary"), REPLICAS, "1m")
    assert [row.state for row in report.rows] == ["no data", "no hosts"]


def test_a_failing_source_makes_every_figure_unknown_and_says_why() -> None:
    report = golden.report(FakeSource(error="query timed out"), FakeAdmin(HEALTHY), ("stable", "canary"), REPLICAS,
                           "1m")
    assert {row.state for row in report.rows} == {"unknown"} and all(row.rps is None for row in report.rows)
    assert report.problems == ["fake: query timed out"]
    assert "! fake: query timed out" in golden.table(report)


def test_a_gateway_that_does_not_answer_leaves_weights_unknown() -> None:
    report = golden.report(FakeSource({("stable",): FIGURES}), FakeAdmin(HEALTHY, fail=True), ("stable", "canary"),
                           REPLICAS, "1m")
    assert report.rows[0].weight is None and report.rows[0].rps == 10.0
    assert report.problems == ["gateway: Envoy admin unreachable"]


def test_per_replica_rows_take_each_hosts_health() -> None:
    source = FakeSource({("stable", "stable-1-automation"): FIGURES})
    report = golden.report(source, FakeAdmin(HEALTHY), ("stable", "canary"), REPLICAS, "1m", per_replica=True)
    assert [(r.name, r.healthy_hosts, r.hosts, r.state) for r in report.rows] == \
        [("stable-1", 1, 1, "below SLO"), ("canary-1", 0, 1, "no data")]


def test_the_metrics_source_widens_its_window_up_to_the_one_asked() -> None:
    clock = iter(float(t) for t in range(0, 1000, 1))
    counts = iter(range(0, 10_000, 10))

    def take(targets):
        return scraped.Snapshot(next(clock) * 10, (_calls("OK", next(counts)),))

    slept: list[float] = []
    source = golden.MetricsSource(REPLICAS[:1], sample_s=2.0, sleep=slept.append, take=take)
    window, found = source.figures("1m", PER_POOL)
    assert slept == [2.0] and window == "10s" and found[("stable",)]["rps"] == 1.0
    for _ in range(10):
        window, found = source.figures("1m", PER_POOL)
    assert window == "60s" and found[("stable",)]["rps"] == 1.0


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("1m", 60), ("1h30m", 5400), ("500ms", 0.5)])
def test_windows_parse(text: str, seconds: float) -> None:
    assert golden.parse_window(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "m", "-1m", "0s", "1 m", "1x", "1m junk"])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="window"):
        golden.parse_window(text)
