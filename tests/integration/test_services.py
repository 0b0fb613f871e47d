"""The two services as real processes: grpcurl, every error row, deadlines, cancellation,
graceful shutdown, readiness and metrics."""

from __future__ import annotations

import json
import re
import uuid
import signal
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2

from tests.support.calls import automation_stub, error_info, execute, trailing
from tests.support.procs import BIN, free_port, health_status, wait_for
from services.common.names import AUTOMATION_SERVICE, PIPELINE_SERVICE

GRPCURL = str(BIN / "grpcurl")


def grpcurl(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=timeout)


def metric(address: str, name: str, **labels: str) -> float:
    """The value of one series on a /metrics page (0 when absent)."""
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- grpcurl, the tool users reach for first ---------------------------------------------------

def test_grpcurl_lists_and_describes_both_services_through_reflection(services):
    for target, service in ((services.automation_target, AUTOMATION_SERVICE),
                            (services.pipeline_target, PIPELINE_SERVICE)):
        listed = grpcurl(target, "list")
        assert listed.returncode == 0, listed.stderr
        assert service in listed.stdout.split()
        assert "grpc.health.v1.Health" in listed.stdout.split()
        described = grpcurl(target, "describe", service)
        assert described.returncode == 0, described.stderr
        assert "rpc Execute" in described.stdout
    request = grpcurl(services.automation_target, "describe", "opsconductor.automation.v1.ExecuteRequest")
    assert "map<string, string> arguments" in request.stdout


def test_grpcurl_execute_ping_returns_pong_with_the_trace_id_of_the_traceparent_sent(services):
    trace_id = uuid.uuid4().hex
    result = grpcurl("-v", "-H", f"traceparent: 00-{trace_id}-00f067aa0ba902b7-01",
                     "-d", '{"input": "ping", "tool": "echo", "trace_id": "abc-123-def"}',
                     services.automation_target, f"{AUTOMATION_SERVICE}/Execute")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout[result.stdout.index("{"):result.stdout.rindex("}") + 1])
    assert body["success"] is True and body["output"] == "pong" and body["tool"] == "echo"
    # The traceparent names the trace; the caller's own id does not rename it.
    assert body["trace_id"] == trace_id and body["pool"] == "stable"
    assert f"x-trace-id: {trace_id}" in result.stdout  # trailing metadata


def test_grpcurl_without_a_traceparent_gets_a_new_trace_and_health_check_and_watch(services):
    result = grpcurl("-H", "x-trace-id: from-header-1", "-d", '{"input": "ping"}',
                     services.automation_target, f"{AUTOMATION_SERVICE}/Execute")
    assert re.fullmatch(r"[0-9a-f]{32}", json.loads(result.stdout)["trace_id"])
    for service in ("", AUTOMATION_SERVICE):
        check = grpcurl("-d", json.dumps({"service": service}), services.automation_target,
                        "grpc.health.v1.Health/Check")
        assert json.loads(check.stdout)["status"] == "SERVING"
    # Watch streams until its deadline: the first message is the current status.
    watch = grpcurl("-max-time", "2", "-d", json.dumps({"service": AUTOMATION_SERVICE}),
                    services.automation_target, "grpc.health.v1.Health/Watch")
    assert '"status": "SERVING"' in watch.stdout


def test_traceparent_supplies_the_trace_id_and_a_new_one_is_w3c(services):
    channel, stub = automation_stub(services.automation_target)
    with channel:
        w3c = "4bf92f3577b34da6a3ce929d0e0e4736"
        reply = execute(stub, input="ping", metadata=(("traceparent", f"00-{w3c}-00f067aa0ba902b7-01"),))
        assert reply.trace_id == w3c
        made = execute(stub, input="ping", metadata=(("x-trace-id", "bad id with spaces"),))
        assert re.fullmatch(r"[0-9a-f]{32}", made.trace_id)


# --- every row of the error table ----------------------------------------------------------------

ERROR_ROWS = [
    ({"input": ""}, grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_ERROR"),
    ({"input": "x" * (64 * 1024 + 1)}, grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_ERROR"),
    ({"input": "ping", "tool": "Bad Tool!"}, grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_ERROR"),
    ({"input": "ping", "tool": "echo", "arguments": {"colour": "red"}}, grpc.StatusCode.INVALID_ARGUMENT,
     "VALIDATION_ERROR"),
    ({"input": "x", "tool": "delay", "arguments": {"ms": "soon"}}, grpc.StatusCode.INVALID_ARGUMENT,
     "VALIDATION_ERROR"),
    ({"input": "ping", "trace_id": "spaces are not allowed"}, grpc.StatusCode.INVALID_ARGUMENT, "VALIDATION_ERROR"),
    ({"input": "ping", "tool": "no_such_tool"}, grpc.StatusCode.NOT_FOUND, "UNKNOWN_TOOL"),
    ({"input": "qwxz zzq"}, grpc.StatusCode.NOT_FOUND, "UNKNOWN_TOOL"),
    ({"input": "10.20.30.40:80", "tool": "tcp_check"}, grpc.StatusCode.PERMISSION_DENIED, "DESTINATION_DENIED"),
    ({"input": "http://example.com/", "tool": "http_check"}, grpc.StatusCode.PERMISSION_DENIED,
     "DESTINATION_DENIED"),
]


@pytest.mark.parametrize(("fields", "code", "reason"), ERROR_ROWS)
def test_error_rows_carry_status_error_info_and_trace_id(services, fields, code, reason):
    channel, stub = automation_stub(services.automation_target)
    with channel, pytest.raises(grpc.RpcError) as caught:
        execute(stub, **fields)
    error = caught.value
    assert error.code() == code, error.details()
    info = error_info(error)
    assert (info.domain, info.reason) == ("opsconductor", reason)
    trace_id = trailing(error, "x-trace-id")
    assert trace_id and info.metadata["trace_id"] == trace_id
    if fields.get("trace_id") and "spaces" not in fields["trace_id"]:
        assert trace_id == fields["trace_id"]
    assert "Traceback" not in error.details()


def test_an_error_reports_the_traces_id_and_logs_the_callers_beside_it(services):
    trace_id = uuid.uuid4().hex
    channel, stub = automation_stub(services.automation_target)
    with channel, pytest.raises(grpc.RpcError) as caught:
        execute(stub, input="ping", tool="no_such_tool", trace_id="keep-me.1",
                metadata=(("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"),))
    assert trailing(caught.value, "x-trace-id") == trace_id
    assert error_info(caught.value).metadata["trace_id"] == trace_id

    def logged() -> list[dict]:
        return [json.loads(line) for line in services.automation.log_text().splitlines() if "keep-me.1" in line]

    wait_for(logged, 5, "the automation to log the failed call")
    assert logged()[0]["trace_id"] == trace_id and logged()[0]["caller_trace_id"] == "keep-me.1"


def test_pipeline_slower_than_the_service_deadline_is_timeout(start_services):
    pair = start_services(automation_env={"EXECUTE_TIMEOUT_S": "0.5"})
    channel, stub = automation_stub(pair.automation_target)
    with channel, pytest.raises(grpc.RpcError) as caught:
        execute(stub, input="x", tool="delay", arguments={"ms": "5000"}, timeout=10)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert error_info(caught.value).reason == "TIMEOUT"


def test_callers_short_deadline_ends_the_call_and_is_no_fault_of_the_service(services):
    handled = {code: metric(services.automation_metrics, "grpc_server_handled_total", grpc_method="Execute",
                            grpc_code=code) for code in ("DEADLINE_EXCEEDED", "CANCELLED")}
    channel, stub = automation_stub(services.automation_target)
    with channel, pytest.raises(grpc.RpcError) as caught:
        execute(stub, input="x", tool="delay", arguments={"ms": "5000"}, timeout=1.5)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The caller's deadline ended the call: the service records it as cancelled, not as the
    # DEADLINE_EXCEEDED it answers when its own EXECUTE_TIMEOUT_S runs out (a fault, above).
    wait_for(lambda: metric(services.automation_metrics, "grpc_server_handled_total", grpc_method="Execute",
                            grpc_code="CANCELLED") == handled["CANCELLED"] + 1, 5, "the cancelled call to be counted")
    assert metric(services.automation_metrics, "grpc_server_handled_total", grpc_method="Execute",
                  grpc_code="DEADLINE_EXCEEDED") == handled["DEADLINE_EXCEEDED"]


def test_injected_fault_is_internal_with_its_own_reason(start_services):
    pair = start_services(pipeline_env={"FAULT_INJECT_EVERY_N": "2"})
    channel, stub = automation_stub(pair.automation_target)
    with channel:
        assert execute(stub, input="ping").output == "pong"
        with pytest.raises(grpc.RpcError) as caught:
            execute(stub, input="ping")
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert error_info(caught.value).reason == "INJECTED_FAULT"


def test_pipeline_down_is_unavailable_within_a_second_and_recovers(start_services):
    pair = start_services()
    channel, stub = automation_stub(pair.automation_target)
    with channel:
        pair.pipeline.stop()
        wait_for(lambda: health_status(pair.automation_target, AUTOMATION_SERVICE)
                 == health_pb2.HealthCheckResponse.NOT_SERVING, 10, "automation readiness to drop")
        assert health_status(pair.automation_target, "") == health_pb2.HealthCheckResponse.SERVING  # still live
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            execute(stub, input="ping", timeout=10)
        elapsed = time.monotonic() - started
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(caught.value).reason == "BAD_GATEWAY"
        assert elapsed < 1.0, f"UNAVAILABLE took {elapsed:.2f} s"

        pair.start_pipeline()
        pair.automation.wait_healthy(pair.automation_target, AUTOMATION_SERVICE, timeout=10)
        assert execute(stub, input="ping").output == "pong"


def test_client_cancel_stops_the_tool(start_services):
    pair = start_services()
    channel, stub = automation_stub(pair.automation_target)
    with channel:
        future = stub.Execute.future(
            __import__("opsconductor.automation.v1.automation_pb2", fromlist=["x"]).ExecuteRequest(
                input="x", tool="delay", arguments={"ms": "20000"}), timeout=60,
            metadata=(("traceparent", f"00-{'c' * 32}-00f067aa0ba902b7-01"),))
        wait_for(lambda: metric(pair.pipeline_metrics, "grpc_server_started_total", grpc_method="Execute") >= 1,
                 10, "the pipeline to start the delay tool")
        future.cancel()
        wait_for(lambda: '"outcome": "cancelled"' in pair.pipeline.log_text(), 5, "the pipeline to cancel the tool")
    lines = [json.loads(line) for line in pair.pipeline.log_text().splitlines() if '"cancelled"' in line]
    assert lines[0]["trace_id"] == "c" * 32 and lines[0]["tool"] == "delay"
    assert metric(pair.pipeline_metrics, "pipeline_tool_runs_total", tool="delay", outcome="cancelled") == 1


def test_sigterm_lets_in_flight_calls_finish_and_exits_zero(start_services):
    pair = start_services()
    channel, stub = automation_stub(pair.automation_target)
    calls = 20
    with channel, ThreadPoolExecutor(calls) as pool:
        futures = [pool.submit(execute, stub, input="x", tool="delay", arguments={"ms": "1500"}, timeout=30)
                   for _ in range(calls)]
        wait_for(lambda: metric(pair.automation_metrics, "grpc_server_started_total", grpc_method="Execute") >= calls,
                 10, "every call to be in flight")
        pair.automation.popen.send_signal(signal.SIGTERM)
        replies = [future.result() for future in futures]
    assert [reply.output for reply in replies] == ["slept 1500 ms"] * calls
    assert pair.automation.popen.wait(15) == 0
    assert '"message": "shutting down"' in pair.automation.log_text()


def test_metrics_count_known_traffic(start_services):
    pair = start_services()
    channel, stub = automation_stub(pair.automation_target)
    with channel:
        for _ in range(3):
            execute(stub, input="ping", tool="echo")
        for fields in ({"input": "ping", "tool": "missing_tool"}, {"input": "ping", "tool": "missing_tool"},
                       {"input": ""}):
            with pytest.raises(grpc.RpcError):
                execute(stub, **fields)
        execute(stub, input="127.0.0.1:1")  # selected tcp_check, twice: one cache miss, one hit
        execute(stub, input="127.0.0.1:1")
    auto, pipe = pair.automation_metrics, pair.pipeline_metrics
    assert metric(auto, "ai_requests_total", tool="echo", status="OK") == 3
    assert metric(auto, "ai_requests_total", tool="tcp_check", status="OK") == 2
    assert metric(auto, "ai_requests_total", tool="none", status="NOT_FOUND") == 2
    assert metric(auto, "ai_requests_total", tool="none", status="INVALID_ARGUMENT") == 1
    assert metric(auto, "ai_request_errors_total", tool="none", error_type="UNKNOWN_TOOL") == 2
    assert metric(auto, "ai_request_errors_total", tool="none", error_type="VALIDATION_ERROR") == 1
    assert metric(auto, "ai_request_errors_total", tool="none", error_type="TIMEOUT") == 0  # pre-created
    assert metric(auto, "ai_request_duration_seconds_count", tool="echo") == 3
    assert metric(auto, "ai_request_duration_seconds_bucket", tool="echo", le="2.0") == 3
    assert metric(auto, "grpc_server_handled_total", grpc_type="UNARY", grpc_service=AUTOMATION_SERVICE,
                  grpc_method="Execute", grpc_code="OK") == 5
    assert metric(auto, "grpc_server_handled_total", grpc_method="Execute", grpc_code="NOT_FOUND") == 2
    assert metric(auto, "grpc_server_handling_seconds_count", grpc_method="Execute") == 8
    assert metric(auto, "opsconductor_build_info", pool="stable", service="automation") == 1
    assert metric(pipe, "selector_search_total", platform="linux") == 2
    assert metric(pipe, "selector_cache_misses_total") == 1 and metric(pipe, "selector_cache_hits_total") == 1
    assert metric(pipe, "selector_selections_total", tool="tcp_check") == 2
    assert metric(pipe, "selector_errors_total", reason="unknown_tool") == 2
    assert 0 < metric(pipe, "selector_accuracy_ratio") <= 1
    assert metric(pipe, "grpc_server_handled_total", grpc_service=PIPELINE_SERVICE, grpc_method="Execute",
                  grpc_code="OK") == 5
    # The automation service never forwarded the invalid request.
    assert metric(pipe, "grpc_server_handled_total", grpc_method="Execute", grpc_code="INVALID_ARGUMENT") == 0


def test_exemplars_carry_trace_ids_in_openmetrics(services):
    channel, stub = automation_stub(services.automation_target)
    with channel:
        execute(stub, input="ping", trace_id="exemplar-trace-1")
    request = urllib.request.Request(f"http://{services.automation_metrics}/metrics",
                                     headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    text = urllib.request.urlopen(request, timeout=5).read().decode()
    assert re.search(r'ai_request_duration_seconds_bucket\{.*\} \d+(\.\d+)? # \{trace_id="[A-Za-z0-9._-]+"\}', text)


def test_bad_config_exits_2_with_one_line(tmp_path):
    result = subprocess.run([str(BIN / "opsconductor"), "automation"], env={"EXECUTE_TIMEOUT_S": "soon",
                            "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "EXECUTE_TIMEOUT_S" in result.stderr


def test_taken_port_fails_clearly(services):
    port = services.automation_target
    result = subprocess.run([str(BIN / "opsconductor"), "automation"], env={
        "AUTOMATION_GRPC_ADDR": port, "AUTOMATION_METRICS_ADDR": f"127.0.0.1:{free_port()}", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert port in result.stderr and "taken" in result.stderr


def test_sigterm_of_a_pipeline_its_automation_watches_takes_no_grace_period(start_services):
    # The automation's health Watch (an aio client) must end at shutdown, not hold the grace.
    pair = start_services(env={"SHUTDOWN_GRACE_S": "10"})
    started = time.monotonic()
    pair.pipeline.popen.send_signal(signal.SIGTERM)
    assert pair.pipeline.popen.wait(15) == 0
    assert time.monotonic() - started < 3, "the pipeline waited out its grace period"
    wait_for(lambda: '"serving": false' in pair.automation.log_text(), 5, "the automation to see it go")
