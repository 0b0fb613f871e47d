"""Traces on the whole mesh (`opsconductor up`, its embedded trace store): one call, one trace,
with spans from the gateway, both services and the tool, parented and timed correctly, over
native gRPC and gRPC-Web; a failing call's spans carry its status and reason; sampling decided
once at the edge; every call findable by its trace id; the CLI's waterfall; and calls that go
on untouched while the store is down, the drops counted.

Every test here shares the module's one stack (the `mesh_stack` fixture of tests/conftest.py).
"""

from __future__ import annotations

import json
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from opsconductor.automation.v1 import automation_pb2
from opsconductor.identity import operator
from opsconductor.load import grpcweb
from opsconductor.stack.traces import STORE
from services.common.names import AUTOMATION_EXECUTE
from tests.support.calls import automation_stub, error_info, trailing
from tests.support.metrics import metric
from tests.support.procs import wait_for

pytestmark = pytest.mark.slow

TRACE_ID = re.compile(r"[0-9a-f]{32}")
SERVICES = {"gateway", "automation", "pipeline"}
# Span times come from two clocks' readings (Envoy's and Python's) of the same system clock,
# rounded to the microsecond by Envoy: a child may appear to start or end by that much outside.
CLOCK_SLACK_MS = 0.002


def traceparent(sampled: bool = True) -> tuple[str, str, str]:
    """(trace id, parent span id, header value) of a call this test names itself."""
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, parent, f"00-{trace_id}-{parent}-{'01' if sampled else '00'}"


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def lookup(stack, trace_id: str) -> dict | None:
    status, body = get_json(f"{stack.traces_url}/v1/traces/{trace_id}")
    return body if status == 200 else None


def settled_trace(stack, trace_id: str, parent: str = "", services: set[str] = SERVICES) -> dict:
    """The trace once every hop has exported its spans (services batch them for up to 0.5 s,
    the gateway for up to 1 s)."""
    found: dict = {}

    def arrived() -> bool:
        trace = lookup(stack, trace_id)
        if trace is None or not trace["complete"] or not services <= set(trace["services"]):
            return False
        if parent and trace["root_parent_span_id"] != parent:
            return False
        found.update(trace)
        return True

    wait_for(arrived, 15, f"every hop's spans of trace {trace_id}")
    return found


def assert_well_formed(trace: dict, parent: str) -> None:
    """One root (the gateway's span, under the caller's span), every other span's parent in the
    trace, and every child inside its parent's time."""
    spans = {span["span_id"]: span for span in trace["spans"]}
    roots = [span for span in spans.values() if span["parent_span_id"] not in spans]
    assert len(roots) == 1, roots
    assert roots[0]["service"] == "gateway" and roots[0]["kind"] == "SERVER" and roots[0]["parent_span_id"] == parent
    for span in spans.values():
        parent_span = spans.get(span["parent_span_id"])
        if parent_span is None:
            continue
        assert span["depth"] == parent_span["depth"] + 1
        assert span["offset_ms"] >= parent_span["offset_ms"] - CLOCK_SLACK_MS, (span, parent_span)
        assert (span["offset_ms"] + span["duration_ms"]
                <= parent_span["offset_ms"] + parent_span["duration_ms"] + CLOCK_SLACK_MS), (span, parent_span)


def chain(trace: dict) -> list[tuple[str, str]]:
    """(service, kind) from the root down the first child of each span."""
    spans, links = trace["spans"], []
    by_parent: dict[str, list[dict]] = {}
    for span in spans:
        by_parent.setdefault(span["parent_span_id"], []).append(span)
    span = spans[0]
    while span is not None:
        links.append((span["service"], span["kind"]))
        span = (by_parent.get(span["span_id"]) or [None])[0]
    return links


@pytest.fixture(scope="module")
def stub(mesh_stack) -> Iterator:
    channel, automation = automation_stub(mesh_stack.gateway)
    with channel:
        yield automation


# --- one call, one trace ---------------------------------------------------------------------------


def test_a_native_grpc_call_is_one_trace_across_gateway_services_and_tool(mesh_stack, stub) -> None:
    trace_id, parent, header = traceparent()
    reply, call = stub.Execute.with_call(automation_pb2.ExecuteRequest(input="localhost", tool="dns_lookup"),
                                         timeout=10, metadata=(("traceparent", header),))
    # The reply, the trailer and the trace are one id: the caller's W3C trace id.
    assert reply.trace_id == trace_id and trailing(call, "x-trace-id") == trace_id
    trace = settled_trace(mesh_stack, reply.trace_id, parent)
    assert_well_formed(trace, parent)
    assert chain(trace)[:5] == [("gateway", "SERVER"), ("gateway", "CLIENT"), ("automation", "SERVER"),
                                ("automation", "CLIENT"), ("pipeline", "SERVER")]
    names = {(span["service"], span["name"]) for span in trace["spans"]}
    assert {("pipeline", "select tool"), ("pipeline", "run dns_lookup")} <= names
    gateway = trace["spans"][0]
    assert gateway["attributes"]["route"] == "automation" and gateway["outcome"] == "OK"
    assert gateway["attributes"]["opsconductor.pool"] == reply.pool
    tool = next(span for span in trace["spans"] if span["name"] == "run dns_lookup")
    assert tool["attributes"]["server.address"] == "localhost" and tool["attributes"]["opsconductor.outcome"] == "ok"
    # What the tool saw and said stays out of the trace.
    assert not any("127.0.0.1" in str(value) for span in trace["spans"] for value in span["attributes"].values()
                   if span["name"] == "run dns_lookup")
    assert sum(span["slowest"] for span in trace["spans"]) == 1


def test_a_grpc_web_call_is_one_trace_too(mesh_stack) -> None:
    trace_id, parent, header = traceparent()
    port = int(mesh_stack.gateway.rsplit(":", 1)[1])
    reply = grpcweb.call("127.0.0.1", port, AUTOMATION_EXECUTE,
                         automation_pb2.ExecuteRequest(input="ping", tool="echo").SerializeToString(),
                         {"traceparent": header, "x-trace-id": "web-caller-1"})
    assert reply.grpc_status == 0
    assert automation_pb2.ExecuteResponse.FromString(reply.messages[0]).trace_id == trace_id
    trace = settled_trace(mesh_stack, trace_id, parent)
    assert_well_formed(trace, parent)
    assert trace["spans"][0]["attributes"]["http.protocol"] == "HTTP/1.1"
    # The caller's own id does not rename the trace: it is kept beside it.
    automation = next(span for span in trace["spans"] if span["service"] == "automation" and span["kind"] == "SERVER")
    assert automation["attributes"]["opsconductor.caller_trace_id"] == "web-caller-1"


@pytest.mark.parametrize(("request_fields", "code", "reason"), [
    ({"input": "x", "tool": "no_such_tool"}, grpc.StatusCode.NOT_FOUND, "UNKNOWN_TOOL"),
    ({"input": "192.0.2.1:22", "tool": "tcp_check"}, grpc.StatusCode.PERMISSION_DENIED, "DESTINATION_DENIED"),
])
def test_a_failing_calls_spans_carry_its_status_and_reason(mesh_stack, stub, request_fields, code, reason) -> None:
    trace_id, parent, header = traceparent()
    with pytest.raises(grpc.RpcError) as failure:
        stub.Execute(automation_pb2.ExecuteRequest(**request_fields), timeout=10, metadata=(("traceparent", header),))
    assert failure.value.code() == code and error_info(failure.value).metadata["trace_id"] == trace_id
    trace = settled_trace(mesh_stack, trace_id, parent)
    assert_well_formed(trace, parent)
    by_hop = {(span["service"], span["kind"]): span for span in trace["spans"]}
    for hop in (("gateway", "SERVER"), ("automation", "SERVER"), ("pipeline", "SERVER")):
        assert by_hop[hop]["outcome"] == code.name, hop
    for hop in (("automation", "SERVER"), ("pipeline", "SERVER")):
        assert by_hop[hop]["reason"] == reason and by_hop[hop]["status"] == "ERROR", hop


# --- sampling, decided once at the edge ------------------------------------------------------------


def test_the_edge_samples_calls_the_caller_left_undecided_and_every_hop_follows(mesh_stack, stub) -> None:
    replies = [stub.Execute(automation_pb2.ExecuteRequest(input="ping", tool="echo"), timeout=10).trace_id
               for _ in range(1000)]
    _, _, unsampled = traceparent(sampled=False)
    declined = stub.Execute(automation_pb2.ExecuteRequest(input="ping", tool="echo"), timeout=10,
                            metadata=(("traceparent", unsampled),)).trace_id
    _, parent, forced = traceparent()
    forced_id = stub.Execute(automation_pb2.ExecuteRequest(input="ping", tool="echo"), timeout=10,
                             metadata=(("traceparent", forced),)).trace_id
    settled_trace(mesh_stack, forced_id, parent)  # everything exported before it is in the store now
    assert all(TRACE_ID.fullmatch(trace_id) for trace_id in replies) and len(set(replies)) == 1000
    stored = [trace for trace in (lookup(mesh_stack, trace_id) for trace_id in replies) if trace]
    # The default rate is 1 %: 10 of 1,000 expected; 0 or more than 35 only by a fault (p < 1e-4).
    assert 1 <= len(stored) <= 35, len(stored)
    # A sampled call is sampled at every hop, never only at some.
    assert all(SERVICES <= set(trace["services"]) for trace in stored)
    assert lookup(mesh_stack, declined) is None


# --- every call findable ---------------------------------------------------------------------------


def test_every_call_is_in_the_access_log_and_the_service_logs_under_its_trace_id(mesh_stack, stub) -> None:
    ok = stub.Execute(automation_pb2.ExecuteRequest(input="ping", tool="echo"), timeout=10).trace_id
    with pytest.raises(grpc.RpcError) as failure:
        stub.Execute(automation_pb2.ExecuteRequest(input="x", tool="no_such_tool"), timeout=10)
    failed = error_info(failure.value).metadata["trace_id"]
    state = mesh_stack.state

    def logged() -> bool:
        access = mesh_stack.state_dir / "logs" / "envoy-access.log"
        lines = [json.loads(line) for line in access.read_text().splitlines() if line.startswith("{")]
        ids = {line.get("trace_id") for line in lines}
        return ok in ids and failed in ids

    wait_for(logged, 10, "both calls in Envoy's access log")
    # The failure is logged by both services, under the trace's id (the caller sent none).
    lines = []
    for name, component in state.components.items():
        if name.endswith(("-automation", "-pipeline")):
            with open(component.log) as log:
                lines += [json.loads(line) for line in log if line.startswith("{") and failed in line]
    assert {line["service"] for line in lines} == {"automation", "pipeline"}
    assert all(line["trace_id"] == failed for line in lines)


def test_exemplars_on_the_latency_histogram_name_sampled_traces(mesh_stack, stub) -> None:
    trace_id, parent, header = traceparent()
    reply = stub.Execute(automation_pb2.ExecuteRequest(input="ping", tool="echo"), timeout=10,
                         metadata=(("traceparent", header), ("x-canary", "never")))
    replica = next(r for r in mesh_stack.state.replicas if r.pool == "stable")
    # Read as the operator: /metrics is mTLS under `up`.
    request = urllib.request.Request(operator.metrics_url(mesh_stack.state_dir, replica.automation_metrics),
                                     headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    context = operator.ssl_context(mesh_stack.state_dir)
    text = urllib.request.urlopen(request, timeout=5, context=context).read().decode()
    exemplars = re.findall(r'ai_request_duration_seconds_bucket\{[^}]*\} \S+ # \{trace_id="([0-9a-f]{32})"\}', text)
    assert reply.trace_id in exemplars
    assert settled_trace(mesh_stack, reply.trace_id, parent)


# --- the CLI ---------------------------------------------------------------------------------------


def test_opsconductor_trace_prints_the_waterfall_and_the_slowest(mesh_stack, stub) -> None:
    trace_id, parent, header = traceparent()
    stub.Execute(automation_pb2.ExecuteRequest(input="x", tool="delay", arguments={"ms": "30"}), timeout=10,
                 metadata=(("traceparent", header),))
    trace = settled_trace(mesh_stack, trace_id, parent)
    shown = mesh_stack.cli("trace", trace_id)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"trace {trace_id}") and len(lines) == 2 + trace["span_count"]
    tool_line = next(line for line in lines if "run delay" in line)
    assert "        pipeline: run delay" in tool_line  # indented five levels below the gateway's span
    assert float(tool_line.split("ms")[1]) >= 30  # its duration
    as_json = mesh_stack.cli("trace", trace_id, "-o", "json")
    assert json.loads(as_json.stdout)["trace_id"] == trace_id
    slowest = mesh_stack.cli("trace", "--slowest", "10", "-o", "json")
    assert slowest.returncode == 0 and trace_id in [t["trace_id"] for t in json.loads(slowest.stdout)]
    missing = mesh_stack.cli("trace", "0" * 31 + "1")
    assert missing.returncode == 1 and "no spans" in missing.stderr
    assert mesh_stack.cli("trace", "not-an-id").returncode == 2


# --- a store that is down --------------------------------------------------------------------------


def test_with_the_store_down_calls_succeed_and_the_lost_spans_are_counted(mesh_stack, stub) -> None:
    replica = next(r for r in mesh_stack.state.replicas if r.pool == "stable")

    def dropped() -> float:
        return metric(replica.automation_metrics, "opsconductor_trace_spans_dropped_total", mesh_stack.state_dir)

    before = dropped()
    mesh_stack.stop_components(STORE)
    try:
        for _ in range(20):
            _, _, header = traceparent()
            reply = stub.Execute(automation_pb2.ExecuteRequest(input="ping", tool="echo"), timeout=5,
                                 metadata=(("traceparent", header), ("x-canary", "never")))
            assert reply.output == "pong"
        wait_for(lambda: dropped() > before, 15,
                 "the automation to count the spans it could not export")
    finally:
        mesh_stack.start_components(STORE)
    # Back up: new traces arrive again.
    trace_id, parent, header = traceparent()
    stub.Execute(automation_pb2.ExecuteRequest(input="ping", tool="echo"), timeout=5,
                 metadata=(("traceparent", header),))
    assert settled_trace(mesh_stack, trace_id, parent)
