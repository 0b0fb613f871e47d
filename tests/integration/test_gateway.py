"""The Envoy gateway in front of real stable and canary pools: grpcurl and gRPC-Web through one
port, CORS, weighted routing and pins, failover when a pool dies, the admin helpers, the
access log, the stats listener, JWT and the rate limit."""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import http.client
import json
import signal
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from opsconductor.gateway.settings import JwtSettings
from opsconductor.automation.v1 import automation_pb2, automation_pb2_grpc
from tests.support.gateway import Gateway, start_gateway
from tests.support.metrics import metric
from tests.support.procs import BIN, wait_for
from opsconductor.stack.replica import ServicePair, service_pair
from services.common.names import AUTOMATION_SERVICE

SERVICE = AUTOMATION_SERVICE
EXECUTE = f"/{SERVICE}/Execute"
ALLOWED_ORIGIN = "http://127.0.0.1:3100"
PING = automation_pb2.ExecuteRequest(input="ping", tool="echo")


class Pools:
    """The stable and canary pools: one automation + pipeline pair each."""

    def __init__(self, stable: ServicePair, canary: ServicePair) -> None:
        self.stable, self.canary = stable, canary

    def targets(self) -> dict[str, tuple[str, ...]]:
        return {"stable": (self.stable.automation_target,),
                "canary": (self.canary.automation_target,)}


@pytest.fixture(scope="module")
def pools(tmp_path_factory) -> Iterator[Pools]:
    log_dir = tmp_path_factory.mktemp("pools")
    stable = service_pair(log_dir, pool="stable", name="stable")
    canary = service_pair(log_dir, pool="canary", name="canary",
                          pipeline_env={"FEATURE_BYPASS_LLM": "true"})
    try:
        stable.start()
        canary.start()
        yield Pools(stable, canary)
    finally:
        canary.stop()
        stable.stop()


@pytest.fixture(scope="module")
def gateway(pools, tmp_path_factory) -> Iterator[Gateway]:
    targets = pools.targets()
    gw = start_gateway(tmp_path_factory.mktemp("gateway"), targets["stable"], targets["canary"])
    yield gw
    gw.stop()


@pytest.fixture
def channel(gateway) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(gateway.target) as ch:
        yield ch


@pytest.fixture
def stub(channel) -> automation_pb2_grpc.AutomationServiceStub:
    return automation_pb2_grpc.AutomationServiceStub(channel)


@pytest.fixture
def weights(gateway) -> Iterator:
    """Sets weights for a test and puts the configured 90/10 back afterwards."""
    yield gateway.set_weights
    gateway.set_weights(90, 10)


def call_many(stub, count: int, metadata=(), window: int = 32) -> collections.Counter:
    """`count` Execute calls, `window` in flight at once; counts replies by pool and errors by code."""
    counts: collections.Counter = collections.Counter()
    done = 0
    while done < count:
        batch = [stub.Execute.future(PING, timeout=10, metadata=metadata)
                 for _ in range(min(window, count - done))]
        for future in batch:
            try:
                counts[future.result().pool] += 1
            except grpc.RpcError as error:
                counts[error.code().name] += 1
        done += len(batch)
    return counts


def test_mirrored_calls_reach_the_canary_but_the_caller_only_sees_stables_reply(pools, stub, weights):
    def mirrored() -> float:
        return metric(pools.canary.automation_metrics, "ai_mirrored_requests_total", status="OK")

    def served(pool: ServicePair) -> float:
        return metric(pool.automation_metrics, "ai_requests_total", tool="echo", status="OK")

    tools = stub.ListTools(automation_pb2.ListToolsRequest(), timeout=10).tools
    assert tools and all(tool.read_only for tool in tools), "every catalogue tool may run from a copy"
    weights(100, 0, mirror=100)
    before, canary_before, stable_before = mirrored(), served(pools.canary), served(pools.stable)
    assert call_many(stub, 40) == {"stable": 40}, "the caller never gets the canary's answer"
    # The copies go on after the callers' replies: wait until the canary has served every one.
    wait_for(lambda: mirrored() - before >= 40, 10, "the canary to serve the 40 mirrored copies")
    assert served(pools.canary) - canary_before == 40 and served(pools.stable) - stable_before == 40
    # Pinned to stable: stable's reply, and a copy on the canary too.
    assert call_many(stub, 5, (("x-canary", "never"),)) == {"stable": 5}
    wait_for(lambda: mirrored() - before >= 45, 10, "the canary to serve the 5 copies of pinned calls")
    # Pinned to the canary: run there once, never copied; and a caller cannot mark its own call
    # as a mirrored copy (the gateway removes the mark).
    assert call_many(stub, 5, (("x-canary", "always"), ("x-opsconductor-mirrored", "1"))) == {"canary": 5}
    wait_for(lambda: served(pools.canary) - canary_before >= 50, 10, "the canary to serve the pinned calls")
    assert mirrored() - before == 45 and served(pools.canary) - canary_before == 50
    weights(100, 0)  # mirroring off again: the canary gets nothing
    settled = served(pools.canary)
    assert call_many(stub, 20) == {"stable": 20}
    # A pinned call after them, as a barrier: copies of those 20 would have arrived by its end.
    assert call_many(stub, 1, (("x-canary", "always"),)) == {"canary": 1}
    wait_for(lambda: served(pools.canary) > settled, 10, "the canary to serve the pinned call")
    assert served(pools.stable) - stable_before == 65 and served(pools.canary) == settled + 1


def grpcurl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "grpcurl"), "-plaintext", *args], capture_output=True,
                          text=True, timeout=30)


def grpc_web(gateway: Gateway, request: automation_pb2.ExecuteRequest,
             headers: dict[str, str] | None = None):
    """One hand-framed gRPC-Web call over HTTP/1.1: (response, messages, trailers)."""
    payload = request.SerializeToString()
    body = b"\x00" + struct.pack(">I", len(payload)) + payload
    connection = http.client.HTTPConnection("127.0.0.1", gateway.settings.listen_port, timeout=10)
    try:
        connection.request("POST", EXECUTE, body, {
            "content-type": "application/grpc-web+proto", "x-grpc-web": "1",
            "x-user-agent": "grpc-web-javascript/0.1", **(headers or {})})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    messages, trailers = [], {}
    offset = 0
    while offset < len(data):
        flags, length = data[offset], struct.unpack(">I", data[offset + 1:offset + 5])[0]
        frame = data[offset + 5:offset + 5 + length]
        offset += 5 + length
        if flags & 0x80:  # trailer frame: HTTP/1-style header lines
            for line in frame.decode().split("\r\n"):
                if line:
                    key, _, value = line.partition(":")
                    trailers[key.strip().lower()] = value.strip()
        else:
            messages.append(automation_pb2.ExecuteResponse.FromString(frame))
    return response, messages, trailers


def preflight(gateway: Gateway, origin: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.settings.listen_port, timeout=10)
    connection.request("OPTIONS", EXECUTE, headers={
        "origin": origin, "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-grpc-web,x-trace-id"})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def upstream_requests(gateway: Gateway) -> int:
    """Requests Envoy sent to either pool (its own health checks not included)."""
    text = urllib.request.urlopen(
        f"{gateway.admin.base_url}/stats?filter=" + r"^cluster\.\w+_pool\.upstream_rq_total$",
        timeout=5).read().decode()
    return sum(int(line.rsplit(":", 1)[1]) for line in text.splitlines() if line.strip())


def log_lines(gateway: Gateway, trace_id: str) -> list[dict]:
    if not gateway.access_log.exists():
        return []
    return [json.loads(line) for line in gateway.access_log.read_text().splitlines()
            if trace_id in line]


# --- one port, two protocols -----------------------------------------------------------------

def test_grpcurl_lists_describes_and_calls_through_the_gateway(gateway):
    listed = grpcurl(gateway.target, "list")
    assert listed.returncode == 0, listed.stderr
    assert {SERVICE, "grpc.health.v1.Health"} <= set(listed.stdout.split())
    described = grpcurl(gateway.target, "describe", SERVICE)
    assert described.returncode == 0, described.stderr
    assert "rpc Execute" in described.stdout and "rpc ListTools" in described.stdout
    called = grpcurl("-d", '{"input": "ping", "tool": "echo"}', gateway.target,
                     f"{SERVICE}/Execute")
    assert called.returncode == 0, called.stderr
    reply = json.loads(called.stdout)
    assert reply["output"] == "pong" and reply["pool"] in ("stable", "canary")
    health = grpcurl("-d", json.dumps({"service": SERVICE}), gateway.target,
                     "grpc.health.v1.Health/Check")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout) == {"status": "SERVING"}


def test_grpc_web_call_over_http1_returns_the_reply_and_an_ok_trailer(gateway):
    # The trace is named by a W3C traceparent; the reply and the trailer carry its id.
    trace_id = uuid.uuid4().hex
    response, messages, trailers = grpc_web(gateway, PING, {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
                                                            "origin": ALLOWED_ORIGIN})
    assert response.status == 200
    assert response.getheader("content-type") == "application/grpc-web+proto"
    assert response.getheader("access-control-allow-origin") == ALLOWED_ORIGIN
    assert "grpc-status" in response.getheader("access-control-expose-headers")
    (reply,) = messages
    assert reply.output == "pong" and reply.pool in ("stable", "canary")
    assert reply.trace_id == trace_id
    assert trailers["grpc-status"] == "0"
    assert trailers["x-trace-id"] == trace_id


def test_grpc_web_error_carries_its_grpc_status(gateway):
    response, messages, trailers = grpc_web(
        gateway, automation_pb2.ExecuteRequest(input="ping", tool="no_such_tool"))
    assert response.status == 200 and messages == []
    # A trailers-only reply puts the status in the headers; otherwise it is in the trailer frame.
    status = response.getheader("grpc-status") or trailers.get("grpc-status")
    assert status == str(grpc.StatusCode.NOT_FOUND.value[0])


def test_unknown_method_is_unimplemented_at_the_gateway(gateway, channel):
    before = upstream_requests(gateway)
    method = channel.unary_unary(f"/{SERVICE}/NoSuchMethod", request_serializer=bytes,
                                 response_deserializer=bytes)
    with pytest.raises(grpc.RpcError) as error:
        method(b"", timeout=5)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert upstream_requests(gateway) == before


# --- CORS -------------------------------------------------------------------------------------

def test_preflight_from_an_allowed_origin_gets_the_grpc_web_headers(gateway):
    response = preflight(gateway, ALLOWED_ORIGIN)
    assert response.status == 200
    assert response.getheader("access-control-allow-origin") == ALLOWED_ORIGIN
    allowed = {h.strip() for h in response.getheader("access-control-allow-headers").split(",")}
    assert {"content-type", "x-grpc-web", "x-trace-id", "grpc-timeout"} <= allowed
    exposed = response.getheader("access-control-expose-headers")
    assert {"grpc-status", "grpc-message", "x-trace-id", "x-ratelimited"} <= {
        h.strip() for h in exposed.split(",")}


def test_preflight_from_another_origin_is_refused_and_reaches_no_service(gateway):
    before = upstream_requests(gateway)
    response = preflight(gateway, "http://evil.example")
    assert response.getheader("access-control-allow-origin") is None
    assert response.getheader("access-control-expose-headers") is None
    assert upstream_requests(gateway) == before


# --- weights, pins and the admin helpers --------------------------------------------------------

def test_at_50_50_a_thousand_calls_split_evenly_without_errors(gateway, stub, weights):
    weights(50, 50)
    assert gateway.admin.weights().canary == 50
    before = gateway.admin.pool_calls()
    counts = call_many(stub, 1000)
    assert set(counts) <= {"stable", "canary"}, counts
    assert 420 <= counts["canary"] <= 580, counts
    after = gateway.admin.pool_calls()
    for pool in ("stable", "canary"):
        assert after[pool].total - before[pool].total == counts[pool]
        assert after[pool].errors == before[pool].errors


@pytest.mark.parametrize("stable,canary,pool", [(0, 100, "canary"), (100, 0, "stable")])
def test_new_weights_apply_to_the_next_calls(gateway, stub, weights, stable, canary, pool):
    weights(stable, canary)
    assert gateway.admin.weights().stable == stable
    assert call_many(stub, 200) == {pool: 200}


@pytest.mark.parametrize("pin,pool,against", [("always", "canary", (100, 0)),
                                               ("never", "stable", (0, 100))])
def test_canary_header_pins_the_pool_whatever_the_weights(stub, weights, pin, pool, against):
    weights(*against)
    assert call_many(stub, 200, metadata=(("x-canary", pin),)) == {pool: 200}


def test_invalid_weights_are_rejected_and_the_running_ones_kept(gateway, weights):
    weights(70, 30)
    for bad in ((0, 0), (50.5, 49.5), (101, -1), ("ten", 90), (60, 60)):
        with pytest.raises(ValueError):
            gateway.set_weights(*bad)
    assert gateway.admin.weights().stable == 70
    assert gateway.admin.weights().canary == 30


def test_access_log_names_the_pool_host_and_real_grpc_status(gateway, stub, pools):
    trace_id = f"log-{uuid.uuid4().hex[:12]}"
    stub.Execute(PING, timeout=10, metadata=(("x-canary", "always"), ("x-trace-id", trace_id)))
    grpc_web(gateway, PING, {"x-canary": "always", "x-trace-id": trace_id})
    # Envoy flushes its access log about once a second.
    wait_for(lambda: len(log_lines(gateway, trace_id)) == 4, 10, "four access log lines")
    lines = log_lines(gateway, trace_id)
    upstream = [line for line in lines if line["log"] == "upstream"]
    assert len(upstream) == 2
    for line in upstream:
        assert line["pool"] == "canary"
        assert line["upstream_host"] == pools.canary.automation_target
        assert line["grpc_status"] == 0  # for gRPC-Web too, where the request line cannot tell
        assert line["path"] == EXECUTE
    protocols = {line["protocol"] for line in lines if line["log"] == "request"}
    assert protocols == {"HTTP/2", "HTTP/1.1"}


def test_stats_listener_serves_prometheus_text_and_nothing_else(gateway, stub):
    call_many(stub, 5)
    text = urllib.request.urlopen(f"{gateway.stats_url}/stats/prometheus", timeout=5).read()
    assert b"envoy_cluster_grpc_0{" in text
    assert b'envoy_grpc_bridge_service="opsconductor_automation_v1_AutomationService"' in text
    for method, path in (("GET", "/clusters"), ("GET", "/"), ("POST", "/runtime_modify?x=1"),
                         ("POST", "/stats/prometheus")):
        request = urllib.request.Request(gateway.stats_url + path, method=method)
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=5)
        assert error.value.code == 404, path


# --- a pool dies under load ----------------------------------------------------------------------

@pytest.mark.slow
def test_killing_the_canary_under_load_fails_no_call_and_it_returns(gateway, pools, weights):
    weights(50, 50)
    counts: collections.Counter = collections.Counter()
    stop = threading.Event()
    lock = threading.Lock()

    def load() -> None:
        with grpc.insecure_channel(gateway.target) as channel:
            load_stub = automation_pb2_grpc.AutomationServiceStub(channel)
            deadline = time.monotonic() + 90  # bounded whatever happens to the test
            while not stop.is_set() and time.monotonic() < deadline:
                batch = call_many(load_stub, 16, window=8)
                with lock:
                    counts.update(batch)

    def canary_calls() -> int:
        with lock:
            return counts["canary"]

    with ThreadPoolExecutor(2) as workers:
        running = [workers.submit(load) for _ in range(2)]
        try:
            wait_for(lambda: canary_calls() >= 50, 30, "load to reach the canary")
            pools.canary.automation.stop(signal.SIGKILL)
            pools.canary.pipeline.stop(signal.SIGKILL)
            gateway.wait_pools_healthy({"canary": 0, "stable": 1})
            seen = sum(counts.values())
            wait_for(lambda: sum(counts.values()) >= seen + 200, 30, "calls with canary down")
            while_down = canary_calls()
            pools.canary.start()
            gateway.wait_pools_healthy({"canary": 1, "stable": 1})
            wait_for(lambda: canary_calls() >= while_down + 50, 30, "canary to get calls again")
        finally:
            stop.set()
            for future in running:
                future.result()
    errors = {key: n for key, n in counts.items() if key not in ("stable", "canary")}
    assert errors == {}, counts


# --- gateways with stricter settings -------------------------------------------------------------

def _hs256_token(secret: bytes, issuer: str, audience: str) -> str:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "test"}).encode())
    claims = b64(json.dumps({"iss": issuer, "aud": audience, "sub": "tester",
                             "exp": int(time.time()) + 600}).encode())
    signature = hmac.new(secret, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(signature)}"


@pytest.mark.slow
def test_jwt_is_required_on_automation_calls_but_not_on_health(pools, tmp_path):
    secret = b"integration-test-secret-0123456789"
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{
        "kty": "oct", "alg": "HS256", "kid": "test",
        "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode()}]}))
    jwt = JwtSettings(issuer="https://issuer.test", audiences=("opsconductor-mesh",),
                      jwks_path=str(jwks))
    targets = pools.targets()
    gw = start_gateway(tmp_path, targets["stable"], targets["canary"], name="envoy-jwt", jwt=jwt)
    try:
        with grpc.insecure_channel(gw.target) as channel:
            stub = automation_pb2_grpc.AutomationServiceStub(channel)
            with pytest.raises(grpc.RpcError) as missing:
                stub.Execute(PING, timeout=10)
            assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
            wrong = _hs256_token(b"not-the-secret-not-the-secret-000", jwt.issuer, "opsconductor-mesh")
            with pytest.raises(grpc.RpcError) as forged:
                stub.Execute(PING, timeout=10, metadata=(("authorization", f"Bearer {wrong}"),))
            assert forged.value.code() == grpc.StatusCode.UNAUTHENTICATED
            good = _hs256_token(secret, jwt.issuer, "opsconductor-mesh")
            reply = stub.Execute(PING, timeout=10,
                                 metadata=(("authorization", f"Bearer {good}"),))
            assert reply.output == "pong"
        health = grpcurl("-d", json.dumps({"service": SERVICE}), gw.target,
                         "grpc.health.v1.Health/Check")
        assert health.returncode == 0, health.stderr
        assert preflight(gw, ALLOWED_ORIGIN).getheader("access-control-allow-origin") == \
            ALLOWED_ORIGIN
    finally:
        gw.stop()


@pytest.mark.slow
def test_rate_limited_calls_are_told_apart_on_both_protocols(pools, tmp_path):
    targets = pools.targets()
    gw = start_gateway(tmp_path, targets["stable"], targets["canary"], name="envoy-limited",
                       rate_limit_per_s=3)
    try:
        with grpc.insecure_channel(gw.target) as channel:
            counts = call_many(automation_pb2_grpc.AutomationServiceStub(channel), 20, window=20)
        assert counts["RESOURCE_EXHAUSTED"] >= 10, counts
        assert set(counts) <= {"RESOURCE_EXHAUSTED", "stable", "canary"}, counts
        statuses = []
        for _ in range(10):
            response, _, _ = grpc_web(gw, PING, {"origin": ALLOWED_ORIGIN})
            statuses.append(response.status)
            if response.status == 429:
                # Envoy answers gRPC-Web with UNAVAILABLE; the header tells the page why.
                assert response.getheader("x-ratelimited") == "true"
                assert response.getheader("grpc-status") == "14"
                assert response.getheader("access-control-allow-origin") == ALLOWED_ORIGIN
        assert 429 in statuses, statuses
    finally:
        gw.stop()
