"""A caller's deadline and a caller's cancel travel through the gateway and the automation
service to the pipeline, which stops the tool: its log says so under the call's trace id and
pipeline_tool_runs_total{outcome="cancelled"} counts it. Native gRPC and gRPC-Web."""

from __future__ import annotations

import json
import socket
import uuid

import grpc
import pytest

from opsconductor.load import grpcweb
from opsconductor.automation.v1 import automation_pb2
from tests.support.calls import automation_stub
from tests.support.metrics import in_flight, metric
from tests.support.procs import wait_for
from opsconductor.stack.replica import ServicePair
from services.common.names import AUTOMATION_EXECUTE

EXECUTE = AUTOMATION_EXECUTE
# Every call here is pinned to the stable pool, so we know which pipeline runs the tool.
PIN = ("x-canary", "never")


def slow(ms: int = 20_000) -> automation_pb2.ExecuteRequest:
    return automation_pb2.ExecuteRequest(input="x", tool="delay", arguments={"ms": str(ms)})


def traced() -> tuple[str, tuple[str, str]]:
    """A trace id of the test's making, and the W3C traceparent that names the call's trace."""
    trace_id = uuid.uuid4().hex
    return trace_id, ("traceparent", f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01")


def cancelled_runs(pair: ServicePair) -> float:
    return metric(pair.pipeline_metrics, "pipeline_tool_runs_total", tool="delay", outcome="cancelled")


def cancelled_lines(pair: ServicePair, trace_id: str) -> list[dict]:
    lines = []
    for line in pair.pipeline.log_text().splitlines():
        if trace_id in line:
            record = json.loads(line)
            if record.get("trace_id") == trace_id and record.get("outcome") == "cancelled":
                lines.append(record)
    return lines


def assert_tool_cancelled(pair: ServicePair, trace_id: str, runs_before: float) -> None:
    wait_for(lambda: cancelled_lines(pair, trace_id), 10, f"the pipeline to log the cancel of {trace_id}")
    (line,) = cancelled_lines(pair, trace_id)
    assert line["tool"] == "delay" and line["code"] == "CANCELLED"
    wait_for(lambda: cancelled_runs(pair) == runs_before + 1, 5, "the cancelled run to be counted")
    wait_for(lambda: in_flight(pair.pipeline_metrics) == 0, 5, "the pipeline to hold no call")


def web_request(port: int, request: automation_pb2.ExecuteRequest, headers: dict[str, str]) -> bytes:
    body = grpcweb.frame(request.SerializeToString())
    lines = [f"POST {EXECUTE} HTTP/1.1", f"host: 127.0.0.1:{port}", "content-type: application/grpc-web+proto",
             "x-grpc-web: 1", f"content-length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_native_deadline_reaches_the_tool(mesh):
    pair, (trace_id, parent) = mesh.stable[0], traced()
    before = cancelled_runs(pair)
    channel, stub = automation_stub(mesh.gateway.target)
    with channel, pytest.raises(grpc.RpcError) as caught:
        stub.Execute(slow(), timeout=1.0, metadata=(PIN, parent))
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert_tool_cancelled(pair, trace_id, before)


def test_grpc_web_deadline_reaches_the_tool(mesh):
    pair, (trace_id, parent) = mesh.stable[0], traced()
    before = cancelled_runs(pair)
    # A browser client sends its deadline as grpc-timeout.
    reply = grpcweb.call("127.0.0.1", mesh.gateway.settings.listen_port, EXECUTE, slow().SerializeToString(),
                         {"grpc-timeout": "1S", PIN[0]: PIN[1], parent[0]: parent[1]})
    assert reply.grpc_status == grpc.StatusCode.DEADLINE_EXCEEDED.value[0], (reply.http_status, reply.grpc_message)
    assert_tool_cancelled(pair, trace_id, before)


def test_native_client_cancel_reaches_the_tool(mesh):
    pair, (trace_id, parent) = mesh.stable[0], traced()
    before = cancelled_runs(pair)
    channel, stub = automation_stub(mesh.gateway.target)
    with channel:
        future = stub.Execute.future(slow(), timeout=60, metadata=(PIN, parent))
        wait_for(lambda: in_flight(pair.pipeline_metrics) >= 1, 10, "the tool to start")
        assert future.cancel()
        assert_tool_cancelled(pair, trace_id, before)


def test_grpc_web_caller_closing_the_connection_cancels_the_tool(mesh):
    pair, (trace_id, parent) = mesh.stable[0], traced()
    before = cancelled_runs(pair)
    port = mesh.gateway.settings.listen_port
    # A browser tab closing (or AbortController) ends the HTTP/1.1 connection mid-call.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(web_request(port, slow(), {PIN[0]: PIN[1], parent[0]: parent[1]}))
        wait_for(lambda: in_flight(pair.pipeline_metrics) >= 1, 10, "the tool to start")
    assert_tool_cancelled(pair, trace_id, before)
