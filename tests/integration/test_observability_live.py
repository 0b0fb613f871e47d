"""Monitoring against the running mesh: Prometheus scrapes every process, every rule evaluates
cleanly, every dashboard query, recording rule and alert query has data once calls flow, caller
mistakes raise no alert, and a call's trace id can be found through exemplars."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest

from tests.support import promql
from opsconductor.stack.processes import wait_for
from opsconductor.observability.prometheus import query
from tests.support.calls import automation_stub, execute

pytestmark = pytest.mark.slow

TARGETS = {("automation", "stable"), ("automation", "canary"), ("pipeline", "stable"),
           ("pipeline", "canary"), ("envoy", None)}
# Calls keep flowing for this long so that counters rise between several 1 s scrapes: a
# counter read for the first time already at its final value has a rate of 0, not data.
TRAFFIC_S = 5.0
MAX_CALLS = 2000


@dataclass
class Traffic:
    trace_ids: set[str] = field(default_factory=set)
    calls: int = 0
    codes: dict[str, int] = field(default_factory=dict)


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _targets_up(prometheus: str) -> bool:
    seen = {(s.labels["job"], s.labels.get("pool")) for s in query(prometheus, "up == 1")}
    return seen >= TARGETS


# Each round: a named tool, the selector (no tool named), and three caller mistakes
# (empty input, unknown tool, input no tool fits), pinned in turn to each pool.
_CALLS = ({"input": "ping", "tool": "echo"}, {"input": "localhost"}, {"input": ""},
          {"input": "ping", "tool": "no_such_tool"}, {"input": "xyzzy plugh"})


@pytest.fixture(scope="module")
def traffic(mesh_stack) -> Iterator[Traffic]:
    prometheus = mesh_stack.prometheus_url
    # Prometheus applies new scrape targets every few seconds after it starts.
    wait_for(lambda: _targets_up(prometheus), 60, "Prometheus to scrape every process")
    channel, stub = automation_stub(mesh_stack.gateway)
    seen = Traffic()
    started = time.monotonic()
    try:
        while time.monotonic() - started < TRAFFIC_S and seen.calls < MAX_CALLS:
            pin = (("x-canary", "always" if seen.calls % 2 else "never"),)
            for fields in _CALLS:
                seen.calls += 1
                # Sampled, so each call's trace id may become an exemplar (unsampled calls add
                # none: an exemplar names a trace a backend has).
                traced = (("traceparent", f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"),)
                try:
                    seen.trace_ids.add(execute(stub, metadata=pin + traced, **fields).trace_id)
                    code = "OK"
                except grpc.RpcError as error:
                    code = error.code().name
                seen.codes[code] = seen.codes.get(code, 0) + 1
    finally:
        channel.close()
    assert seen.codes.get("OK") and seen.codes.get("INVALID_ARGUMENT") and seen.codes.get("NOT_FOUND"), seen.codes
    yield seen


def _missing(prometheus: str) -> list[promql.Query]:
    return [q for q in promql.all_queries() if not query(prometheus, q.expr)]


@pytest.fixture(scope="module")
def data_ready(mesh_stack, traffic) -> None:
    """Waits until every query has data; on timeout, fails naming each query that has none."""
    prometheus = mesh_stack.prometheus_url
    try:
        wait_for(lambda: not _missing(prometheus), 60, "every monitoring query to have data", interval=0.5)
    except TimeoutError:
        report = "\n".join(f"{q.source}: {q.name}: {q.expr}" for q in _missing(prometheus))
        pytest.fail(f"queries without data after {traffic.calls} calls:\n{report}")


def test_prometheus_scrapes_every_process_with_its_target_labels(mesh_stack, traffic) -> None:
    samples = query(mesh_stack.prometheus_url, "up")
    assert {(s.labels["job"], s.labels.get("pool")) for s in samples} == TARGETS
    assert all(s.value == 1 for s in samples), samples
    assert all(s.labels.get("instance") and ":" not in s.labels["instance"] for s in samples), \
        "instance should be the process name, not its address"


def test_every_rule_group_loads_and_evaluates_cleanly(mesh_stack, traffic) -> None:
    expected = {group["name"] for path in promql.rule_files() for group in promql.load_rule_groups(path)}

    def rules() -> list[dict]:
        groups = _get(mesh_stack.prometheus_url + "/api/v1/rules")["data"]["groups"]
        assert {group["name"] for group in groups} == expected
        return [rule for group in groups for rule in group["rules"]]

    wait_for(lambda: all(rule["health"] != "unknown" for rule in rules()), 30, "every rule to be evaluated")
    broken = [(rule["name"], rule.get("lastError")) for rule in rules() if rule["health"] != "ok"]
    assert not broken, broken


def test_every_monitoring_query_has_data(data_ready) -> None:
    # The fixture fails naming each query without data; getting here means none.
    assert promql.all_queries()


def test_caller_mistakes_raise_no_alert(mesh_stack, traffic, data_ready) -> None:
    # Over a third of the calls were caller mistakes (INVALID_ARGUMENT, NOT_FOUND): an SLI that
    # counted them would already hold the burn-rate alerts pending.
    alerts = _get(mesh_stack.prometheus_url + "/api/v1/alerts")["data"]["alerts"]
    assert alerts == [], [(a["labels"], a["state"]) for a in alerts]
    errors = query(mesh_stack.prometheus_url, 'slo:sli_error:ratio_rate5m{slo="availability"}')
    assert [s.value for s in errors] == [0.0]


def test_a_calls_trace_id_can_be_found_through_exemplars(mesh_stack, traffic, data_ready) -> None:
    def exemplar_trace_ids() -> set[str]:
        now = time.time()
        params = urllib.parse.urlencode({"query": 'ai_request_duration_seconds_bucket{job="automation"}',
                                         "start": now - 600, "end": now})
        series = _get(f"{mesh_stack.prometheus_url}/api/v1/query_exemplars?{params}")["data"]
        return {e["labels"].get("trace_id") for s in series for e in s["exemplars"]}

    wait_for(lambda: bool(exemplar_trace_ids() & traffic.trace_ids), 30,
             "a trace id returned to a caller to show up as an exemplar")
