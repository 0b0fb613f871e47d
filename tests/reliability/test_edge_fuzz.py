"""Hypothesis-made Execute requests and metadata through the gateway (native gRPC): every call
gets a clear status from the services, never UNKNOWN or INTERNAL, and never hangs.

Network tools only ever reach loopback: the services' default allowlist (127.0.0.0/8, ::1,
localhost) refuses any other destination before sending anything."""

from __future__ import annotations


import grpc
import pytest
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from opsconductor.automation.v1 import automation_pb2
from tests.support.calls import automation_stub, error_info
from tests.support.procs import health_status
from services.common.names import AUTOMATION_SERVICE

pytestmark = pytest.mark.slow

AUTOMATION = AUTOMATION_SERVICE
TOOLS = ["echo", "delay", "dns_lookup", "tcp_check", "http_check"]
CLEAR = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED,
         grpc.StatusCode.DEADLINE_EXCEEDED}
CLIENT_TIMEOUT_S = 5.0  # well above the slowest call made here (a 300 ms delay)

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=200)  # valid UTF-8 only
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
destinations = st.sampled_from(["ping", "localhost", "127.0.0.1:1", "http://127.0.0.1:1/", "[::1]:1",
                                "delay 20", "10.0.0.1:22", "https://example.com/", "example.com",
                                "192.168.1.1", "http://[::1]:1/x"])
# Two families: anything at all (mostly refused by validation), and requests close to real
# ones, so that the tools themselves run often against loopback and denied destinations.
plausible = st.builds(
    automation_pb2.ExecuteRequest,
    input=st.one_of(destinations, st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1,
                                          max_size=40)),
    tool=st.one_of(st.just(""), st.sampled_from(TOOLS)),
    platform=st.sampled_from(["", "linux"]),
    trace_id=st.one_of(st.just(""), st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)),
    arguments=st.dictionaries(st.sampled_from(["ms", "timeout_ms"]), st.integers(0, 300).map(str), max_size=2),
)
wild = st.builds(
    automation_pb2.ExecuteRequest,
    input=st.one_of(text, destinations, st.just(""), st.just("x" * (64 * 1024 + 1))),
    tool=st.one_of(st.just(""), st.sampled_from(TOOLS), text.filter(lambda t: len(t) < 80)),
    platform=st.one_of(st.just(""), st.sampled_from(["linux", "darwin", "windows"]),
                       text.filter(lambda t: len(t) < 40)),
    trace_id=st.one_of(st.just(""), st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True), text),
    arguments=st.dictionaries(st.one_of(st.sampled_from(["ms", "timeout_ms", "port", "colour"]), text),
                              st.one_of(st.integers(-5, 300).map(str), text), max_size=4),
)
requests = st.one_of(wild, plausible)
metadata = st.lists(st.tuples(st.sampled_from(["x-trace-id", "traceparent", "x-canary", "x-custom"]), header_text),
                    max_size=3, unique_by=lambda item: item[0])


@pytest.fixture(scope="module")
def stub(mesh):
    channel, stub = automation_stub(mesh.gateway.target)
    yield stub
    channel.close()


@pytest.mark.timeout(240)
@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=requests, headers=metadata)
def test_any_execute_request_through_the_gateway_gets_a_clear_status(stub, request, headers):
    try:
        reply = stub.Execute(request, timeout=CLIENT_TIMEOUT_S, metadata=headers)
    except grpc.RpcError as error:
        code = error.code()
        event(code.name)  # the spread shows with --hypothesis-show-statistics
        assert code in CLEAR, f"{code.name}: {error.details()} for {request!r} {headers!r}"
        # Every status here comes from a service, with its ErrorInfo; a DEADLINE_EXCEEDED
        # without one would be the client's own timeout, that is a hang.
        assert error_info(error).domain == "opsconductor", f"{code.name}: {error.details()}"
    else:
        event(f"OK {reply.tool}")
        assert reply.success and reply.tool in TOOLS and reply.pool in ("stable", "canary")


def test_the_services_still_serve_after_the_fuzzing(mesh):
    assert all(process.running() for process in [*mesh.services(), mesh.gateway.process])
    assert health_status(mesh.gateway.target, AUTOMATION) == health_pb2.HealthCheckResponse.SERVING
