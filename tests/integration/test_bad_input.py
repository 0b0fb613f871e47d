"""Hypothesis over every Execute field against the real services: the answer is always a
clear status, never INTERNAL/UNKNOWN, never a crash or a hang."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsconductor.automation.v1 import automation_pb2
from tests.support.calls import automation_stub, error_info
from services.common.names import AUTOMATION_SERVICE
from tests.support.procs import health_status

CLEAR = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED,
         grpc.StatusCode.DEADLINE_EXCEEDED}
TOOLS = ["echo", "delay", "dns_lookup", "tcp_check", "http_check"]
# Text without surrogates (protobuf strings must be valid UTF-8), control characters included.
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)
loopback_inputs = st.sampled_from(["ping", "localhost", "127.0.0.1:1", "http://127.0.0.1:1/", "[::1]:1",
                                   "sleep 5", "10.0.0.1:22", "https://example.com/", "example.com"])
requests = st.builds(
    dict,
    input=st.one_of(text, loopback_inputs, st.just("x" * (64 * 1024 + 1)), st.just("")),
    tool=st.one_of(st.just(""), st.sampled_from(TOOLS), text.filter(lambda t: len(t) < 80)),
    platform=st.one_of(st.just(""), st.sampled_from(["linux", "darwin", "windows"]),
                       text.filter(lambda t: len(t) < 40)),
    trace_id=st.one_of(st.just(""), st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True), text),
    arguments=st.dictionaries(st.one_of(st.sampled_from(["ms", "timeout_ms", "colour"]), text),
                              st.one_of(st.integers(-5, 3000).map(str), text), max_size=4),
)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                                    HealthCheck.too_slow])
@given(fields=requests)
def test_any_execute_request_gets_a_clear_status(services, fields):
    channel, stub = automation_stub(services.automation_target)
    with channel:
        try:
            reply = stub.Execute(automation_pb2.ExecuteRequest(**fields), timeout=3)
        except grpc.RpcError as error:
            assert error.code() in CLEAR, f"{error.code()}: {error.details()} for {fields!r}"
            assert error_info(error).domain == "opsconductor"
        else:
            assert reply.success and reply.tool in TOOLS


def test_services_still_serve_after_the_fuzzing(services):
    assert health_status(services.automation_target, AUTOMATION_SERVICE) == health_pb2.HealthCheckResponse.SERVING
