"""Admission: one caller holding slow calls open gets a bounded number of them (the lane of
tools that wait) and every call beyond is refused at once, while quick calls keep their
latency; each service refuses calls beyond its own limit at once; health Watch streams are
bounded in number and in time and need a token when JWT is on; an idle client cannot hold a
/metrics endpoint."""

from __future__ import annotations

import socket
import statistics
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from opsconductor.automation.v1 import automation_pb2
from opsconductor.gateway.settings import JwtSettings
from services.common.config import DEFAULT_MAX_OPEN_STREAMS, DEFAULT_TOOL_MAX_WAITING
from services.common.metrics_http import IDLE_TIMEOUT_S, MAX_CONNECTIONS
from services.common.names import AUTOMATION_SERVICE
from tests.support.calls import automation_stub, error_info
from tests.support.procs import wait_for
from tests.support.tokens import SigningKey, mint, write_jwks

pytestmark = pytest.mark.slow

PIN = ("x-canary", "never")
HELD_CALLS = 300
HOLD_MS = 3000
SLOW = automation_pb2.ExecuteRequest(input="x", tool="delay", arguments={"ms": str(HOLD_MS)})
PING = automation_pb2.ExecuteRequest(input="ping", tool="echo")


def test_one_caller_holds_a_bounded_number_of_slow_calls_and_the_next_is_refused_at_once(mesh, figure):
    finished: dict[int, tuple[str, float]] = {}
    lock = threading.Lock()
    channel, stub = automation_stub(mesh.gateway.target)  # one caller, one connection
    fast_channel, fast_stub = automation_stub(mesh.gateway.target)
    with channel, fast_channel:
        fast_stub.Execute(PING, timeout=5, metadata=(PIN,))
        started = time.monotonic()

        def done(index: int, future) -> None:
            error = future.exception()
            code = "OK" if error is None else error.code().name
            with lock:
                finished[index] = (code, time.monotonic() - started)
            if error is not None and code == "RESOURCE_EXHAUSTED":
                assert error_info(error).reason == "OVERLOADED"

        futures = []
        for index in range(HELD_CALLS):
            future = stub.Execute.future(SLOW, timeout=30, metadata=(PIN,))
            future.add_done_callback(lambda f, i=index: done(i, f))
            futures.append(future)
        # The ones admitted are held; every other one is answered, at once.
        wait_for(lambda: len(finished) >= HELD_CALLS - DEFAULT_TOOL_MAX_WAITING, 2, "the excess to be refused")
        begin = time.monotonic()
        with pytest.raises(grpc.RpcError) as next_one:
            stub.Execute(SLOW, timeout=30, metadata=(PIN,))
        next_ms = (time.monotonic() - begin) * 1000
        fast_ms = []
        while time.monotonic() - started < HOLD_MS / 1000 - 0.5:
            begin = time.monotonic()
            fast_stub.Execute(PING, timeout=5, metadata=(PIN,))
            fast_ms.append((time.monotonic() - begin) * 1000)
        for future in futures:
            future.exception()  # waits for it
    codes = [code for code, _ in finished.values()]
    held = codes.count("OK")
    refused = [seconds for code, seconds in finished.values() if code == "RESOURCE_EXHAUSTED"]
    assert held == DEFAULT_TOOL_MAX_WAITING and len(refused) == HELD_CALLS - held, sorted(set(codes))
    assert max(refused) < 1.5, max(refused)  # at once, not after the held calls ended
    assert next_one.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and next_ms < 200, next_ms
    p99 = statistics.quantiles(fast_ms, n=100)[98]
    assert len(fast_ms) > 50 and p99 < 50, (len(fast_ms), p99)
    figure("admission.slow_calls_one_caller_holds", held, f"of {HELD_CALLS} sent on one connection")
    figure("admission.refused_answered_within", max(refused), "s of sending 300 (RESOURCE_EXHAUSTED, OVERLOADED)")
    figure("admission.next_slow_call_refused_after", next_ms, "ms")
    figure("admission.fast_call_p99_while_held", p99, "ms")


def test_a_service_refuses_calls_beyond_its_own_limit_at_once(start_services):
    pair = start_services(pipeline_env={"MAX_CONCURRENT_RPCS": "16"})
    channel, stub = automation_stub(pair.automation_target)
    with channel, ThreadPoolExecutor(24) as workers:
        def slow_call(_: int) -> tuple[str, float, str]:
            started = time.monotonic()
            try:
                stub.Execute(SLOW, timeout=30)
            except grpc.RpcError as error:
                reason = error_info(error).reason if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else ""
                return error.code().name, time.monotonic() - started, reason
            return "OK", time.monotonic() - started, ""

        answers = list(workers.map(slow_call, range(24)))
    held = [answer for answer in answers if answer[0] == "OK"]
    refused = [answer for answer in answers if answer[0] == "RESOURCE_EXHAUSTED"]
    assert len(held) + len(refused) == 24 and 8 <= len(refused) <= 9, answers  # the automation's Watch takes one
    assert all(seconds < 1 and reason == "OVERLOADED" for _, seconds, reason in refused), refused


def watch(target: str, metadata=(), timeout: float = 10):
    """The first reply of a Watch on AUTOMATION_SERVICE, or its error; the stream is left open."""
    channel = grpc.insecure_channel(target)
    stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=AUTOMATION_SERVICE),
                                                       timeout=timeout, metadata=metadata)
    try:
        return channel, stream, next(stream)
    except grpc.RpcError as error:
        return channel, stream, error


def test_watch_streams_are_bounded_in_number(mesh):
    target = mesh.stable[0].automation_target
    opened = []
    try:
        with ThreadPoolExecutor(8) as workers:
            opened = list(workers.map(lambda _: watch(target), range(DEFAULT_MAX_OPEN_STREAMS + 8)))
        firsts = [first for _, _, first in opened]
        serving = [first for first in firsts if not isinstance(first, grpc.RpcError)]
        refused = [first for first in firsts if isinstance(first, grpc.RpcError)]
        assert len(serving) == DEFAULT_MAX_OPEN_STREAMS and len(refused) == 8, (len(serving), len(refused))
        assert {error.code() for error in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    finally:
        for channel, stream, _ in opened:
            stream.cancel()
            channel.close()
    # The places are given back: a Watch opens again.
    channel, stream, first = watch(target)
    with channel:
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        stream.cancel()


def test_watch_through_the_gateway_ends_at_the_route_bound_and_needs_a_token_with_jwt(mesh, tmp_path):
    short = mesh.add_gateway("envoy-short", route_timeout_s=2, per_try_timeout_s=2)
    channel, stream, first = watch(short.target, timeout=30)
    started = time.monotonic()
    with channel:
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        for _ in stream:  # the service ends the stream with OK just before the bound it was given
            pass
        assert stream.code() == grpc.StatusCode.OK and 1 < time.monotonic() - started < 2.5

    key = SigningKey.make("k1", "ES256")
    jwks = write_jwks(tmp_path / "jwks.json", key)
    guarded = mesh.add_gateway("envoy-watch-jwt", jwt=JwtSettings("https://issuer.test", ("mesh",), str(jwks)))
    channel, _, first = watch(guarded.target)
    with channel:
        assert isinstance(first, grpc.RpcError) and first.code() == grpc.StatusCode.UNAUTHENTICATED
    token = mint(key, issuer="https://issuer.test", audience="mesh")
    channel, stream, first = watch(guarded.target, metadata=(("authorization", f"Bearer {token}"),))
    with channel:
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        stream.cancel()
    with grpc.insecure_channel(guarded.target) as channel:  # Check (probes) stays open
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=AUTOMATION_SERVICE),
                                                          timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def scrape(address: str) -> int:
    try:
        return urllib.request.urlopen(f"http://{address}/metrics", timeout=3).status
    except urllib.error.HTTPError as error:
        return error.code


def test_idle_clients_cannot_hold_a_metrics_endpoint(mesh, figure):
    address = mesh.stable[0].pipeline_metrics
    host, port = address.rsplit(":", 1)
    idle = [socket.create_connection((host, int(port)), timeout=IDLE_TIMEOUT_S + 5) for _ in range(MAX_CONNECTIONS + 4)]
    try:
        started = time.monotonic()
        assert scrape(address) == 503 and time.monotonic() - started < 1  # full: answered at once, not queued
        for connection in idle:
            connection.recv(1024)  # each is answered 503 at once or closed after its idle timeout
        closed_after = time.monotonic() - started
    finally:
        for connection in idle:
            connection.close()
    assert closed_after < IDLE_TIMEOUT_S + 2, closed_after
    assert scrape(address) == 200
    figure("admission.idle_metrics_connection_closed_after", closed_after, "s")
