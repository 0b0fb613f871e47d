"""Both servicers with a fake context: proto ↔ domain, error mapping, trace ids, deadlines."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from prometheus_client import CollectorRegistry

from opsconductor.automation.v1 import automation_pb2
from opsconductor.pipeline.v1 import pipeline_pb2
from services.automation.metrics import ExecuteMetrics
from services.automation.pipeline_client import UpstreamError, _translate
from services.automation.servicer import AutomationServicer
from services.common.config import FaultConfig, automation_config
from services.pipeline.allowlist import Allowlist
from services.pipeline.egress import Egress
from services.pipeline.faults import FaultInjector
from services.pipeline.metrics import PipelineMetrics
from services.pipeline.runner import ToolRunner
from services.pipeline.selector import KeywordSelector
from services.pipeline.servicer import PipelineServicer
from services.pipeline.tools import CATALOGUE, Tool, ToolContext
from tests.unit.fakes import Aborted, FakeContext, FakeResolver


class FakePipeline:
    """Answers like the pipeline client: a reply, or an exception to raise."""

    def __init__(self, outcome) -> None:
        self.outcome = outcome
        self.calls: list[tuple[pipeline_pb2.ExecuteRequest, str, float]] = []
        self.mirrored: list[bool] = []

    async def execute(self, request, trace_id, timeout_s, mirrored=False):
        self.calls.append((request, trace_id, timeout_s))
        self.mirrored.append(mirrored)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


PONG = pipeline_pb2.ExecuteResponse(output="pong", tool="echo", instance="pipe-1", pool="stable")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = (("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01"),)


def automation(outcome=PONG, env=None) -> tuple[AutomationServicer, FakePipeline]:
    pipeline = FakePipeline(outcome)
    metrics = ExecuteMetrics(CollectorRegistry())
    metrics.learn_tools(["echo", "delay"])
    return AutomationServicer(automation_config(env or {"INSTANCE_NAME": "auto-1"}), pipeline, metrics), pipeline


def call(servicer, context=None, **fields):
    context = context or FakeContext()
    try:
        reply = asyncio.run(servicer.Execute(automation_pb2.ExecuteRequest(**fields), context))
    except Aborted:
        reply = None
    return reply, context


def test_ok_reply_is_success_with_the_traces_id_pool_and_instances():
    servicer, pipeline = automation()
    reply, context = call(servicer, FakeContext(metadata=PARENT), input="ping", trace_id="t-1")
    assert reply.success and reply.output == "pong" and reply.tool == "echo" and reply.trace_id == TRACE
    assert (reply.pool, reply.instance, reply.pipeline_instance) == ("stable", "auto-1", "pipe-1")
    assert context.code is None and context.trailing_value("x-trace-id") == TRACE
    request, trace_id, timeout = pipeline.calls[0]
    assert request.trace_id == trace_id == TRACE and timeout == 30


@pytest.mark.parametrize(("reason", "code"), [
    ("TIMEOUT", grpc.StatusCode.DEADLINE_EXCEEDED), ("BAD_GATEWAY", grpc.StatusCode.UNAVAILABLE),
    ("UNKNOWN_TOOL", grpc.StatusCode.NOT_FOUND), ("DESTINATION_DENIED", grpc.StatusCode.PERMISSION_DENIED),
    ("VALIDATION_ERROR", grpc.StatusCode.INVALID_ARGUMENT), ("INJECTED_FAULT", grpc.StatusCode.INTERNAL),
])
def test_pipeline_errors_become_their_statuses(reason, code):
    servicer, _ = automation(UpstreamError(reason, "went wrong"))
    reply, context = call(servicer, FakeContext(metadata=PARENT), input="ping", trace_id="t-2")
    assert reply is None and context.code == code and context.details == "went wrong"
    assert context.trailing_value("x-trace-id") == TRACE


def test_unexpected_exception_is_internal_without_a_traceback():
    servicer, _ = automation(RuntimeError("secret internals at line 42"))
    _, context = call(servicer, FakeContext(metadata=PARENT), input="ping", trace_id="t-3")
    assert context.code == grpc.StatusCode.INTERNAL
    assert "secret" not in context.details and TRACE in context.details


def test_invalid_trace_id_field_is_rejected_but_the_error_has_a_usable_id():
    servicer, pipeline = automation()
    _, context = call(servicer, FakeContext(metadata=(("x-trace-id", "from-meta"), *PARENT)), input="ping",
                      trace_id="bad id")
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT and context.trailing_value("x-trace-id") == TRACE
    assert not pipeline.calls


def test_a_shorter_caller_deadline_is_left_to_end_the_call_itself():
    # The pipeline call outlives the caller's deadline a little, so that deadline (the caller's
    # choice) ends the call, never a DEADLINE_EXCEEDED this service would answer as its fault.
    servicer, pipeline = automation()
    for remaining in (2.0, 0.09, 0.0005, -0.01):
        _, context = call(servicer, FakeContext(time_remaining=remaining), input="ping")
        assert context.code is None, (remaining, context.code, context.details)
    assert [round(timeout, 4) for _, _, timeout in pipeline.calls] == [2.05, 0.14, 0.0505, 0.05]
    call(servicer, FakeContext(time_remaining=600.0), input="ping")  # EXECUTE_TIMEOUT_S is the bound
    call(servicer, FakeContext(), input="ping")
    assert [timeout for _, _, timeout in pipeline.calls[-2:]] == [30.0, 30.0]


def _aio_error(code: grpc.StatusCode, details: str, reason: str | None = None) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata()
    if reason:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="opsconductor", metadata={"trace_id": "x"}))
        trailing.add("grpc-status-details-bin",
                     status_pb2.Status(code=code.value[0], message=details, details=[detail]).SerializeToString())
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details)


@pytest.mark.parametrize(("code", "reason", "expected"), [
    (grpc.StatusCode.DEADLINE_EXCEEDED, None, "TIMEOUT"),
    (grpc.StatusCode.UNAVAILABLE, None, "BAD_GATEWAY"),
    (grpc.StatusCode.NOT_FOUND, "UNKNOWN_TOOL", "UNKNOWN_TOOL"),
    (grpc.StatusCode.INTERNAL, "INJECTED_FAULT", "INJECTED_FAULT"),
    (grpc.StatusCode.INTERNAL, None, "INTERNAL_ERROR"),  # no ErrorInfo: never passed through as is
    (grpc.StatusCode.UNIMPLEMENTED, None, "INTERNAL_ERROR"),
    (grpc.StatusCode.NOT_FOUND, "TIMEOUT", "INTERNAL_ERROR"),  # reason and code disagree
])
def test_pipeline_rpc_errors_are_translated_deliberately(code, reason, expected):
    assert _translate(_aio_error(code, "details", reason), 30).reason == expected


# --- pipeline servicer -------------------------------------------------------------------------

NO_FAULTS = FaultConfig(0, 0, 0)


def pipeline_servicer(faults=NO_FAULTS, bypass=False, catalogue=CATALOGUE) -> PipelineServicer:
    egress = Egress(Allowlist(["127.0.0.0/8", "localhost"]), FakeResolver())
    runner = ToolRunner(catalogue, KeywordSelector(catalogue), ToolContext(egress),
                        bypass_llm=bypass, host_platform="linux")
    metrics = PipelineMetrics(CollectorRegistry(), [tool.name for tool in catalogue], ["linux"])
    return PipelineServicer(runner, FaultInjector(faults), pool="canary", instance="pipe-9", metrics=metrics)


def pipeline_call(servicer, metadata=(), **fields):
    context = FakeContext(metadata=metadata)
    try:
        return asyncio.run(servicer.Execute(pipeline_pb2.ExecuteRequest(**fields), context)), context
    except Aborted:
        return None, context


def test_pipeline_runs_and_reports_how_the_tool_was_chosen():
    reply, context = pipeline_call(pipeline_servicer(bypass=True), PARENT, input="ping", trace_id="p-1")
    assert (reply.output, reply.tool, reply.selection, reply.pool, reply.instance) == \
        ("pong", "echo", "bypass", "canary", "pipe-9")
    assert context.trailing_value("x-trace-id") == TRACE
    reply, _ = pipeline_call(pipeline_servicer(), input="sleep 1")
    assert (reply.tool, reply.selection, reply.output) == ("delay", "selected", "slept 1 ms")


@pytest.mark.parametrize(("fields", "code"), [
    ({"input": ""}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"input": "x", "tool": "nope"}, grpc.StatusCode.NOT_FOUND),
    ({"input": "192.0.2.7:22", "tool": "tcp_check"}, grpc.StatusCode.PERMISSION_DENIED),
    ({"input": "x", "tool": "delay", "arguments": {"ms": "-1"}}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"input": "ping", "trace_id": "no spaces allowed"}, grpc.StatusCode.INVALID_ARGUMENT),
])
def test_pipeline_errors_are_statuses(fields, code):
    reply, context = pipeline_call(pipeline_servicer(), **fields)
    assert reply is None and context.code == code


def test_pipeline_injected_fault_is_internal():
    servicer = pipeline_servicer(FaultConfig(every_n=1, rate=0, latency_ms=0))
    _, context = pipeline_call(servicer, input="ping")
    assert context.code == grpc.StatusCode.INTERNAL and "injected" in context.details


def test_pipeline_list_tools_filters_by_platform():
    servicer = pipeline_servicer()
    every = asyncio.run(servicer.ListTools(pipeline_pb2.ListToolsRequest(), FakeContext()))
    assert [tool.name for tool in every.tools] == [tool.name for tool in CATALOGUE]
    delay = next(tool for tool in every.tools if tool.name == "delay")
    assert delay.arguments[0].name == "ms" and delay.arguments[0].type == "int"
    none = asyncio.run(servicer.ListTools(pipeline_pb2.ListToolsRequest(platform="windows"), FakeContext()))
    assert list(none.tools) == []


MIRRORED = (("x-opsconductor-mirrored", "1"),)


def writing_tool(ran: list[str]) -> Tool:
    """A tool that changes something (none of the catalogue's does): what a mirrored call must never run."""
    async def restart(text, arguments, context):
        ran.append(text)
        return f"restarted {text}"

    return Tool(name="restart_unit", description="restarts a unit", run=restart, input_hint="a unit",
                keywords=("restart", "unit"), read_only=False)


def test_every_catalogue_tool_says_it_is_read_only_and_list_tools_shows_it():
    assert CATALOGUE and all(tool.read_only for tool in CATALOGUE)
    ran: list[str] = []
    listed = asyncio.run(pipeline_servicer(catalogue=(*CATALOGUE, writing_tool(ran))).ListTools(
        pipeline_pb2.ListToolsRequest(), FakeContext()))
    assert {tool.name: tool.read_only for tool in listed.tools} == {
        **{tool.name: True for tool in CATALOGUE}, "restart_unit": False}


@pytest.mark.parametrize("fields", [{"input": "nginx", "tool": "restart_unit"},  # named
                                    {"input": "restart unit nginx"}])  # chosen by the selector
def test_a_mirrored_call_never_runs_a_tool_that_is_not_read_only(fields):
    ran: list[str] = []
    servicer = pipeline_servicer(catalogue=(*CATALOGUE, writing_tool(ran)))
    reply, context = pipeline_call(servicer, MIRRORED, **fields)
    assert reply is None and context.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "restart_unit" in context.details and ran == []
    reply, _ = pipeline_call(servicer, (), **fields)  # the caller's own call runs it
    assert reply.tool == "restart_unit" and len(ran) == 1


def test_a_mirrored_call_runs_read_only_tools_as_any_call():
    reply, _ = pipeline_call(pipeline_servicer(), MIRRORED, input="sleep 1")
    assert (reply.tool, reply.output) == ("delay", "slept 1 ms")


def test_the_automation_passes_the_mirror_mark_on_and_counts_mirrored_calls():
    registry = CollectorRegistry()
    metrics = ExecuteMetrics(registry)
    metrics.learn_tools(["echo"])
    pipeline = FakePipeline(PONG)
    servicer = AutomationServicer(automation_config({"INSTANCE_NAME": "auto-1"}), pipeline, metrics)
    call(servicer, FakeContext(metadata=MIRRORED), input="ping")
    call(servicer, FakeContext(), input="ping")
    assert pipeline.mirrored == [True, False]
    # Both count as the pool's calls (what a mirror step judges); one of them as a mirrored copy.
    assert registry.get_sample_value("ai_requests_total", {"tool": "echo", "status": "OK"}) == 2
    assert registry.get_sample_value("ai_mirrored_requests_total", {"status": "OK"}) == 1
