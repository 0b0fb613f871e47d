"""Monitoring as code, read as data: every alert is labelled, documented and tested, the SLO rules
follow the workbook, rendered Prometheus configs label their targets, dashboard queries name only
real metrics, and the dashboards provision without manual steps. (promtool's own checks of the
same files are in tests/static/test_promtool.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from opsconductor.observability import dashboards as dashboards_module
from opsconductor.observability import prometheus_config as pc
from opsconductor.observability import queries as q
from opsconductor.observability import view as view_module
from tests.support import promql
from tests.support.promql import Query

ROOT = promql.REPO_ROOT
PROM = ROOT / "observability" / "prometheus"
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))
GRAFANA = ROOT / "observability" / "grafana"
RUNBOOK = ROOT / "docs" / "runbook.md"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
COMPOSE = ROOT / "deploy" / "compose.yaml"

SEVERITIES = {"critical", "page", "ticket", "warning"}
DASHBOARD_UIDS = {"execution.json": "opsconductor-execution", "selector.json": "opsconductor-selector"}
# Google SRE workbook, 30-day budget: (short window, long window) -> burn-rate factor.
BURN_WINDOWS = {"page": {("5m", "1h"): 14.4, ("30m", "6h"): 6.0},
                "ticket": {("2h", "1d"): 3.0, ("6h", "3d"): 1.0}}
SLI_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
POOL_SLI_WINDOWS = ("5m", "30m", "1h")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def rules() -> list[tuple[Path, dict]]:
    return [(path, rule) for path in promql.rule_files() for group in promql.load_rule_groups(path)
            for rule in group["rules"]]


def alerts() -> list[dict]:
    return [rule for _, rule in rules() if "alert" in rule]


def recorded_names() -> set[str]:
    return {rule["record"] for _, rule in rules() if "record" in rule}


def dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in promql.dashboard_files()}


def architecture_metrics() -> set[str]:
    """Metric names in docs/ARCHITECTURE.md's metrics table (first column, back-quoted)."""
    section = ARCHITECTURE.read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([a-z_:]+)`", line.split("|")[1]))
    return names


def github_anchors(markdown: str) -> set[str]:
    """Anchors GitHub gives the headings of a Markdown file."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


# --- Prometheus rules ------------------------------------------------------------------------


def test_every_alert_is_labelled_annotated_and_has_a_runbook_section() -> None:
    anchors = github_anchors(RUNBOOK.read_text())
    assert alerts(), "no alert found"
    for rule in alerts():
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert annotations.get(key, "").strip(), f"{name} has no {key}"
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "docs/runbook.md", f"{name}: runbook_url {annotations['runbook_url']}"
        assert anchor == name.lower(), f"{name} should link to its own section, not #{anchor}"
        assert anchor in anchors, f"docs/runbook.md has no section #{anchor} for {name}"


def _alert_rule_tests() -> list[dict]:
    cases = []
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            cases.extend(test.get("alert_rule_test", ()))
    return cases


def test_every_alert_has_a_firing_and_a_quiet_promtool_case() -> None:
    cases = _alert_rule_tests()
    for rule in alerts():
        labels = rule["labels"]
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(not case.get("exp_alerts") for case in mine), f"{rule['alert']}: no case where it stays quiet"
        # Alerts sharing a name differ by severity and SLO: each of them must be seen firing.
        assert any(all(alert["exp_labels"].get(key) == value for key, value in labels.items())
                   for case in mine for alert in case.get("exp_alerts") or ()), \
            f"{rule['alert']} {labels}: no case where it fires"


def _threshold_terms(expr: str) -> list[tuple[str, str, float, float]]:
    """(window, slo, factor, budget) of each "slo:sli_error:ratio_rate<w>{slo=...} > (f * b)"."""
    pattern = r'slo:sli_error:ratio_rate(\w+)\{slo="([^"]+)"\}\s*>\s*\(([\d.]+)\s*\*\s*([\d.]+)\)'
    return [(w, slo, float(f), float(b)) for w, slo, f, b in re.findall(pattern, expr)]


def test_burn_rate_alerts_follow_the_sre_workbook_windows_and_budgets() -> None:
    budgets = {}
    objectives = {}
    for _, rule in rules():
        if rule.get("record") in ("slo:error_budget:ratio", "slo:objective:ratio"):
            value = float(re.fullmatch(r"vector\(([\d.]+)\)", rule["expr"].strip()).group(1))
            target = budgets if rule["record"] == "slo:error_budget:ratio" else objectives
            target[rule["labels"]["slo"]] = value
    assert set(budgets) == set(objectives) == {"availability", "latency-1s", "latency-2s"}
    for slo, budget in budgets.items():
        assert budget == pytest.approx(1 - objectives[slo])

    seen = set()
    for rule in alerts():
        terms = _threshold_terms(rule["expr"])
        if not terms:
            continue
        severity, slo = rule["labels"]["severity"], rule["labels"]["slo"]
        assert {term[1] for term in terms} == {slo}, rule["alert"]
        windows = [term[0] for term in terms]
        pairs = {(windows[i], windows[i + 1]): terms[i][2] for i in range(0, len(terms), 2)}
        assert pairs == BURN_WINDOWS[severity], f"{rule['alert']} {severity} {slo}: {pairs}"
        for window, _, _factor, budget in terms:
            assert budget == budgets[slo], f"{rule['alert']} {slo} {window}: budget {budget}"
        seen.add((slo, severity))
    assert seen == {(slo, severity) for slo in budgets for severity in BURN_WINDOWS}


def test_every_slo_has_every_sli_window() -> None:
    by_slo: dict[str, set[str]] = {}
    for _, rule in rules():
        if str(rule.get("record", "")).startswith(("slo:sli_error:", "slo_pool:sli_error:")):
            by_slo.setdefault(rule["labels"]["slo"], set()).add(rule["record"])
    assert set(by_slo) == {"availability", "latency-1s", "latency-2s"}
    expected = {f"slo:sli_error:ratio_rate{w}" for w in SLI_WINDOWS}
    expected |= {f"slo_pool:sli_error:ratio_rate{w}" for w in POOL_SLI_WINDOWS}
    for slo, names in by_slo.items():
        assert names == expected, slo


def test_slis_exclude_health_checks_and_count_only_server_faults() -> None:
    faults = "UNKNOWN|DEADLINE_EXCEEDED|UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS"
    for _, rule in rules():
        expr = rule.get("expr", "")
        if "grpc_server_handled_total" in expr and rule.get("labels", {}).get("slo") == "availability":
            selectors = re.findall(r"grpc_server_handled_total\{([^}]*)\}", expr)
            for selector in selectors:
                assert 'grpc_service="opsconductor.automation.v1.AutomationService"' in selector, rule["record"]
                assert 'job="automation"' in selector, rule["record"]
            codes = {s for s in selectors if "grpc_code" in s}
            assert codes == {s for s in selectors if f'grpc_code=~"{faults}"' in s} and codes, rule["record"]


# --- Prometheus configuration ------------------------------------------------------------------

def _local_targets() -> list[pc.ScrapeTarget]:
    return [pc.ScrapeTarget("automation", "stable", "automation-stable-0", "127.0.0.1:9110"),
            pc.ScrapeTarget("pipeline", "stable", "pipeline-stable-0", "127.0.0.1:9210"),
            pc.ScrapeTarget("automation", "canary", "automation-canary-0", "127.0.0.1:9130"),
            pc.ScrapeTarget("pipeline", "canary", "pipeline-canary-0", "127.0.0.1:9230"),
            pc.ScrapeTarget("envoy", "", "envoy", "127.0.0.1:9902")]


def test_rendered_config_labels_targets_and_scrapes_envoy_stats() -> None:
    config = pc.build_config(_local_targets(), scrape_interval=1)
    assert config["global"] == {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert list(jobs) == ["automation", "pipeline", "envoy"]
    assert jobs["envoy"]["metrics_path"] == "/stats/prometheus"
    assert jobs["automation"]["metrics_path"] == "/metrics"
    assert "honor_labels" not in jobs["automation"]
    assert jobs["automation"]["static_configs"] == [
        {"targets": ["127.0.0.1:9110"], "labels": {"instance": "automation-stable-0", "pool": "stable"}},
        {"targets": ["127.0.0.1:9130"], "labels": {"instance": "automation-canary-0", "pool": "canary"}}]
    assert jobs["envoy"]["static_configs"] == [{"targets": ["127.0.0.1:9902"], "labels": {"instance": "envoy"}}]
    slow = pc.build_config(_local_targets(), scrape_interval=30, evaluation_interval=60, rule_files=["/r/a.yml"])
    # A scrape may not outlast Prometheus's 10 s default timeout, nor the interval itself.
    assert slow["global"] == {"scrape_interval": "30s", "scrape_timeout": "10s", "evaluation_interval": "60s"}
    assert slow["rule_files"] == ["/r/a.yml"]


@pytest.mark.parametrize(("seconds", "text"), [(15, "15s"), (1, "1s"), (0.5, "500ms"), (1.25, "1250ms"), (60, "60s")])
def test_duration(seconds: float, text: str) -> None:
    assert pc.duration(seconds) == text


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), 0.0001])
def test_duration_rejects_nonsense(seconds: float) -> None:
    with pytest.raises(ValueError):
        pc.duration(seconds)


@pytest.mark.parametrize("fields", [
    ("gateway", "", "g", "h:1"),  # unknown job
    ("automation", "", "a", "h:1"),  # a service needs a pool
    ("pipeline", "blue", "p", "h:1"),  # unknown pool
    ("envoy", "stable", "e", "h:1"),  # envoy fronts both pools
    ("automation", "stable", "a", "no-port"),
    ("automation", "stable", "bad name", "h:1"),
])
def test_scrape_target_rejects_bad_fields(fields: tuple[str, str, str, str]) -> None:
    with pytest.raises(ValueError):
        pc.ScrapeTarget(*fields)


def test_duplicate_instances_are_rejected() -> None:
    target = pc.ScrapeTarget("automation", "stable", "a", "h:1")
    with pytest.raises(ValueError, match="twice"):
        pc.build_config([target, pc.ScrapeTarget("automation", "canary", "a", "h:2")])


def test_compose_targets_are_the_compose_services_and_ports() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    prometheus = services["prometheus"]
    assert any(arg.endswith("/" + "prometheus.compose.yml") for arg in prometheus["command"]), prometheus["command"]
    for target in pc.compose_targets():
        host, port = target.address.rsplit(":", 1)
        assert host in services, f"{target.address}: no compose service {host!r}"
        if target.job == "envoy":
            assert any(str(p).endswith(f":{port}") for p in services[host].get("ports", ())), target
        else:
            env = services[host]["environment"]
            assert env[f"{target.job.upper()}_METRICS_ADDR"].endswith(f":{port}"), target
            assert env["POOL"] == target.pool, target
            assert env["INSTANCE_NAME"] == target.instance, target


# --- Dashboards ---------------------------------------------------------------------------------


def test_dashboards_have_stable_uids_and_their_variables() -> None:
    boards = dashboards()
    assert {name: board["uid"] for name, board in boards.items()} == DASHBOARD_UIDS
    for name, board in boards.items():
        text = (GRAFANA / "dashboards" / name).read_text()
        assert "${DS_" not in text and "__inputs" not in board, f"{name} is an export-for-sharing file"
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource", name
        assert variables["datasource"]["query"] == "prometheus", name
        pool = variables["pool"]
        assert pool["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, name
        assert pool["multi"] and pool["includeAll"], name
        assert "pool" in pool["query"], name
        ids = [panel["id"] for panel in promql.iter_panels(board)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"


def test_every_panel_uses_the_datasource_variable() -> None:
    for name, board in dashboards().items():
        for panel in promql.iter_panels(board):
            if panel["type"] == "row":
                continue
            where = f"{name}: {panel['title']}"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
            assert panel["targets"], f"{where} has no query"
            for target in panel["targets"]:
                assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
                assert target["expr"].strip(), where


def _queries_of(board: dict) -> list[str]:
    return [target["expr"] for panel in promql.iter_panels(board) for target in panel.get("targets", ())]


def test_execution_dashboard_answers_its_questions() -> None:
    board = dashboards()["execution.json"]
    panels = [p for p in promql.iter_panels(board) if p["type"] != "row"]
    queries = _queries_of(board)
    assert any(p["type"] == "heatmap" and p["targets"][0].get("format") == "heatmap" for p in panels)
    exemplar = [t for p in panels for t in p["targets"] if t.get("exemplar")]
    # Exemplars only come with the raw histogram, never with a recorded series.
    assert exemplar and all("ai_request_duration_seconds_bucket{" in t["expr"] for t in exemplar)
    # The golden signals are the shared definitions themselves, per pool of the $pool variable.
    by_pool = q.Scope(pool="$pool", by=("pool",))
    for expr in (q.request_rate(dashboards_module.RATE, by_pool), q.success_ratio(dashboards_module.RATE, by_pool),
                 q.traffic_share(dashboards_module.RATE, by_pool), q.healthy_hosts(by_pool),
                 *(q.latency_quantile(quantile, dashboards_module.RATE, by_pool) for quantile in q.QUANTILES)):
        assert expr in queries, expr
    assert any("by (error_type)" in expr and "ai_request_errors_total" in expr for expr in queries)
    assert any('pool="canary"' in expr and 'pool="stable"' in expr for expr in queries)
    assert any(q.BUDGET_CODES in expr and "/ 0.001" in expr for expr in queries)  # budget burn
    assert "slo:period_error_budget_remaining:ratio" in " ".join(queries)


def test_selector_dashboard_answers_its_questions() -> None:
    queries = " ".join(_queries_of(dashboards()["selector.json"]))
    for needle in ("selector_selections", "topk(", "selector_errors", "selector_accuracy_ratio",
                   "selector_cache_hits_total", "selector_search", "selector_search_duration_seconds"):
        assert needle in queries, needle


def test_exemplars_link_to_their_trace() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yaml").read_text())
    [destination] = datasources["datasources"][0]["jsonData"]["exemplarTraceIdDestinations"]
    assert destination["name"] == "trace_id"  # the exemplar label the automation service sets
    # Provisioning expands "$NAME": "$$" keeps Grafana's own ${__value.raw} placeholder.
    assert destination["url"] == dashboards_module.JAEGER_TRACE_URL + "$${__value.raw}"
    board = dashboards()["execution.json"]
    links = [link for p in promql.iter_panels(board) if any(t.get("exemplar") for t in p.get("targets", ()))
             for link in p["fieldConfig"]["defaults"].get("links", ())]
    assert links and all(link["url"].startswith(dashboards_module.JAEGER_TRACE_URL) for link in links)


def test_every_metric_used_is_documented_or_recorded() -> None:
    documented = architecture_metrics()
    assert {"ai_requests_total", "selector_accuracy_ratio", "grpc_server_handling_seconds"} <= documented
    recorded = recorded_names()
    queries = promql.dashboard_queries() + [Query(p.name, r.get("record") or r["alert"], r["expr"]) for p, r in rules()]
    for query in queries:
        for name in promql.metric_names(query.expr):
            if ":" in name:
                assert name in recorded, f"{query.source} {query.name}: {name} is not a recording rule"
                continue
            family = next((name[:-len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)
                           and name[:-len(s)] in documented), name)
            assert family in documented or name == "up" or name.startswith("envoy_"), \
                f"{query.source} {query.name}: {name} is not in docs/ARCHITECTURE.md"


def test_provisioning_points_grafana_at_the_dashboards_and_prometheus() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yaml").read_text())
    assert datasources["apiVersion"] == 1
    [source] = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/opsconductor.yaml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    # The provider reads the directory compose mounts the dashboards into.
    grafana = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]
    mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in grafana["volumes"]}
    assert mounts["../observability/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["../observability/grafana/provisioning"] == "/etc/grafana/provisioning"


# --- mesh.promql ------------------------------------------------------------------------------

@pytest.mark.parametrize(("expr", "expected"), [
    ("X > 0.01", ["X"]),
    ('up{job=~"automation|pipeline"} == 0', ['up{job=~"automation|pipeline"}']),
    ("(a{x=\"1\"} > 14.4 and b > 14.4) or (c > 6 and d > 6)", ['a{x="1"}', "b", "c", "d"]),
    ("(\n  a > (14.4 * 0.001)\n  and\n  b > (14.4 * 0.001)\n)\n", ["a", "b"]),
    ("sum(rate(x{a!=\"b\"}[5m])) / sum(rate(y[5m])) >= 0.5", ['sum(rate(x{a!="b"}[5m])) / sum(rate(y[5m]))']),
    ("(a) / (b) > bool 2", ["(a) / (b)"]),
    ("a > on(slo) group_left 2 * b", ["a"]),
    ("a unless on(x) b", ["a"]),
    ("brand_new > 1 and orchid_total < 2", ["brand_new", "orchid_total"]),
    ('x{op="a > b"} < 3', ['x{op="a > b"}']),
    ("histogram_quantile(0.9, sum by (le) (rate(h[5m])))", ["histogram_quantile(0.9, sum by (le) (rate(h[5m])))"]),
    ("((a > 1))", ["a"]),
])
def test_strip_comparisons(expr: str, expected: list[str]) -> None:
    assert promql.strip_comparisons(expr) == expected


def test_strip_comparisons_of_the_real_alerts_leave_no_threshold() -> None:
    for rule in alerts():
        for query in promql.strip_comparisons(rule["expr"]):
            # Label matchers may hold "!=" or "=~"; outside them no comparison may be left.
            assert not re.search(r"[<>]|==|!=", re.sub(r"\{[^}]*\}", "{}", query)), (rule["alert"], query)
            assert query.strip()


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (pool) (rate(ai_requests_total{job="automation",status=~"OK|INTERNAL"}[5m]))', {"ai_requests_total"}),
    ("slo:sli_error:ratio_rate1h / slo:error_budget:ratio", {"slo:sli_error:ratio_rate1h", "slo:error_budget:ratio"}),
    ("histogram_quantile(0.99, sum by (le, tool) (rate(h_bucket[$__rate_interval]))) > 1e-9", {"h_bucket"}),
    ("a - ignoring (pool) group_left b offset 5m", {"a", "b"}),
    ('topk(10, sum without (instance) (increase(x_total{y="up"}[1h])))', {"x_total"}),
    ("vector(0.999)", set()),
    (r'a{x="q\"} b{"} + c', {"a", "c"}),
])
def test_metric_names(expr: str, names: set[str]) -> None:
    assert promql.metric_names(expr) == names


def test_substitute_fills_grafana_variables() -> None:
    expr = 'rate(x{pool=~"$pool",p="${pool}",q="[[pool]]"}[$__rate_interval]) + y[${__range}]'
    assert promql.substitute(expr) == 'rate(x{pool=~".+",p=".+",q=".+"}[5m]) + y[1h]'
    with pytest.raises(KeyError, match="nope"):
        promql.substitute("x{a=\"$nope\"}")


def test_all_queries_names_every_rule_and_panel() -> None:
    queries = promql.all_queries()
    names = {q.name for q in queries}
    assert recorded_names() <= names
    assert any(name.startswith("OpsConductorErrorBudgetBurn (page, availability) #") for name in names)
    panel_titles = {p["title"] for b in dashboards().values() for p in promql.iter_panels(b) if p["type"] != "row"}
    assert {name.rsplit(" [", 1)[0] for name in names if name.endswith("]")} == panel_titles
    assert {q.name for q in queries if q.source == "mesh view"} == {v.name for v in view_module.view_queries()}
    # Every dashboard variable is filled in; only label_replace's own "$1" references remain.
    assert all("$" not in q.expr.replace('"$1"', "") for q in queries)
