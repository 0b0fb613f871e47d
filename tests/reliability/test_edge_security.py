"""Security at the edge: JWT checked by Envoy for both protocols with keys made here (RS256,
ES256), the local rate limit as each protocol sees it, every socket of a running stack on
loopback only, and bearer tokens kept out of every log."""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from opsconductor.load import grpcweb
from opsconductor.gateway.settings import JwtSettings
from opsconductor.automation.v1 import automation_pb2
from tests.support.calls import automation_stub
from tests.support.gateway import Gateway
from tests.support.metrics import upstream_requests
from tests.support.procs import wait_for
from tests.support.stack import RunningStack, start_stack, stop_stack
from tests.support.tokens import SigningKey, mint, write_jwks
from services.common.names import AUTOMATION_SERVICE

pytestmark = pytest.mark.slow

AUTOMATION = AUTOMATION_SERVICE
EXECUTE = f"/{AUTOMATION}/Execute"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
ISSUER, AUDIENCE = "https://login.opsconductor.test", "opsconductor-mesh"
ORIGIN = "http://127.0.0.1:3100"  # an origin the gateway's CORS policy allows by default
PING = automation_pb2.ExecuteRequest(input="ping", tool="echo")


@dataclass
class Keys:
    rs256: SigningKey
    es256: SigningKey
    stranger: SigningKey  # not in the JWKS, but claims the ES256 key's id
    jwks: Path

    def token(self, alg: str = "ES256", **claims) -> str:
        key = self.rs256 if alg == "RS256" else self.es256
        return mint(key, **{"issuer": ISSUER, "audience": AUDIENCE, **claims})


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Keys:
    rs256, es256 = SigningKey.make("rsa-1", "RS256"), SigningKey.make("ec-1", "ES256")
    jwks = write_jwks(tmp_path_factory.mktemp("jwks") / "jwks.json", rs256, es256)
    return Keys(rs256, es256, SigningKey.make("ec-1", "ES256"), jwks)


# The module's mesh (tests/reliability/conftest.py), shaped for these tests.
MESH = {"gateway": False}  # its gateways are added by the fixtures below


@pytest.fixture(scope="module")
def jwt_gateway(mesh, keys) -> Gateway:
    return mesh.add_gateway("envoy-jwt", jwt=JwtSettings(ISSUER, (AUDIENCE,), str(keys.jwks)))


def native_call(gateway: Gateway, token: str | None, request=PING) -> tuple[str, str]:
    """(code name, details) of one Execute through `gateway`."""
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
    channel, stub = automation_stub(gateway.target)
    with channel:
        try:
            reply = stub.Execute(request, timeout=10, metadata=metadata)
        except grpc.RpcError as error:
            return error.code().name, error.details()
    return "OK", reply.output


def web_call(gateway: Gateway, token: str | None, path: str = EXECUTE, message: bytes = PING.SerializeToString(),
             **headers: str) -> grpcweb.Reply:
    sent = {"origin": ORIGIN, **headers}
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    return grpcweb.call("127.0.0.1", gateway.settings.listen_port, path, message, sent)


def exposed(reply: grpcweb.Reply) -> set[str]:
    return {name.strip() for name in reply.headers.get("access-control-expose-headers", "").split(",")}


# --- JWT ----------------------------------------------------------------------------------------

# case: (token maker, gRPC status, HTTP status of the gRPC-Web reply, Envoy's message)
REFUSED = {
    "missing": (lambda k: None, "UNAUTHENTICATED", 401, "Jwt is missing"),
    "bad signature": (lambda k: mint(k.stranger, issuer=ISSUER, audience=AUDIENCE), "UNAUTHENTICATED", 401,
                      "Jwt verification fails"),
    "wrong audience": (lambda k: k.token(audience="another-service"), "PERMISSION_DENIED", 403,
                       "Audiences in Jwt are not allowed"),
    "wrong issuer": (lambda k: k.token(issuer="https://elsewhere.test"), "UNAUTHENTICATED", 401,
                     "Jwt issuer is not configured"),
    "expired": (lambda k: k.token(lifetime_s=-120), "UNAUTHENTICATED", 401, "Jwt is expired"),
    "unknown key id": (lambda k: mint(k.es256, issuer=ISSUER, audience=AUDIENCE, kid="retired"),
                       "UNAUTHENTICATED", 401, "Jwks doesn't have key to match kid or alg from Jwt"),
    "not a JWT": (lambda k: "not-a-token", "UNAUTHENTICATED", 401,
                  "Jwt is not in the form of Header.Payload.Signature"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_token_natively(jwt_gateway, keys, case):
    make, code, _, message = REFUSED[case]
    before = upstream_requests(jwt_gateway.admin.base_url)
    got_code, details = native_call(jwt_gateway, make(keys))
    assert got_code == code and details.startswith(message), (got_code, details)
    assert upstream_requests(jwt_gateway.admin.base_url) == before  # refused before any service


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_token_over_grpc_web_with_cors_headers(jwt_gateway, keys, case):
    make, code, http_status, message = REFUSED[case]
    reply = web_call(jwt_gateway, make(keys))
    assert reply.http_status == http_status, reply
    assert reply.grpc_status == grpc.StatusCode[code].value[0] and reply.grpc_message.startswith(message), reply
    # The browser may read all of it: CORS headers are on Envoy's own error replies too.
    assert reply.headers.get("access-control-allow-origin") == ORIGIN, reply.headers
    assert {"grpc-status", "grpc-message"} <= exposed(reply), reply.headers
    assert reply.headers.get("www-authenticate", "").startswith("Bearer"), reply.headers


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_valid_token_passes_on_both_protocols(jwt_gateway, keys, alg):
    token = keys.token(alg)
    assert native_call(jwt_gateway, token) == ("OK", "pong")
    reply = web_call(jwt_gateway, token)
    assert (reply.http_status, reply.grpc_status) == (200, 0), reply
    assert automation_pb2.ExecuteResponse.FromString(reply.messages[0]).output == "pong"
    assert reply.headers.get("access-control-allow-origin") == ORIGIN


def test_health_checks_need_no_token_on_either_protocol(jwt_gateway):
    with grpc.insecure_channel(jwt_gateway.target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=AUTOMATION), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    request = health_pb2.HealthCheckRequest(service=AUTOMATION).SerializeToString()
    web = web_call(jwt_gateway, None, HEALTH_CHECK, request)
    assert (web.http_status, web.grpc_status) == (200, 0), web
    assert health_pb2.HealthCheckResponse.FromString(web.messages[0]).status == health_pb2.HealthCheckResponse.SERVING


# --- local rate limit ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def limited_gateway(mesh) -> Gateway:
    return mesh.add_gateway("envoy-limited", rate_limit_per_s=3)


def limited_native_call(gateway: Gateway) -> tuple[str, str, dict[str, str]]:
    """(code name, details, trailing metadata) of one ping."""
    channel, stub = automation_stub(gateway.target)
    with channel:
        try:
            stub.Execute(PING, timeout=10)
        except grpc.RpcError as error:
            return error.code().name, error.details(), dict(error.trailing_metadata() or ())
    return "OK", "", {}


def test_rate_limited_native_calls_are_resource_exhausted_and_reach_no_service(limited_gateway):
    before = upstream_requests(limited_gateway.admin.base_url)
    with ThreadPoolExecutor(20) as workers:
        answers = list(workers.map(lambda _: limited_native_call(limited_gateway), range(20)))
    outcomes = Counter(code for code, _, _ in answers)
    assert outcomes["RESOURCE_EXHAUSTED"] >= 10 and set(outcomes) <= {"OK", "RESOURCE_EXHAUSTED"}, outcomes
    for code, details, trailers in answers:
        if code == "RESOURCE_EXHAUSTED":
            assert details == "local_rate_limited" and trailers.get("x-ratelimited") == "true", (details, trailers)
    assert upstream_requests(limited_gateway.admin.base_url) - before == outcomes["OK"]
    # The bucket refills every second: calls pass again without anything being restarted.
    wait_for(lambda: native_call(limited_gateway, None)[0] == "OK", 5, "the rate limit to let a call through")


def test_rate_limited_grpc_web_calls_get_429_unavailable_and_a_readable_header(limited_gateway):
    replies = [web_call(limited_gateway, None) for _ in range(10)]
    limited = [reply for reply in replies if reply.http_status == 429]
    assert limited, [reply.http_status for reply in replies]
    for reply in limited:
        # gRPC-Web clients read HTTP 429 as UNAVAILABLE: the header is what tells it apart,
        # and CORS must expose it or the page cannot see it.
        assert reply.grpc_status == grpc.StatusCode.UNAVAILABLE.value[0], reply
        assert reply.headers.get("x-ratelimited") == "true", reply.headers
        assert reply.headers.get("access-control-allow-origin") == ORIGIN
        assert {"x-ratelimited", "grpc-status"} <= exposed(reply), reply.headers


# --- a running stack ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stack(tmp_path_factory, keys) -> Iterator[RunningStack]:
    """The whole mesh as `opsconductor up` starts it (with the page and Prometheus when they
    are there), its gateway requiring a token."""
    running = start_stack(tmp_path_factory.mktemp("stack"), "--jwt-jwks", str(keys.jwks),
                          "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE)
    yield running
    stop_stack(running)


def test_every_component_of_a_stack_listens_on_loopback_only(stack):
    state = stack.state
    pids = {name: info.pid for name, info in state.components.items()}
    pids["supervisor"] = state.supervisor_pid
    listening: dict[str, list[tuple[str, int]]] = {}
    for name, pid in pids.items():
        for conn in psutil.Process(pid).net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN or not conn.raddr:  # TCP listeners and UDP sockets
                listening.setdefault(name, []).append((conn.laddr.ip, conn.laddr.port))
    # Not vacuous: each service and Envoy were found listening.
    assert {"envoy", "stable-1-automation", "stable-1-pipeline", "canary-1-automation",
            "canary-1-pipeline"} <= set(listening), listening
    elsewhere = {name: [f"{ip}:{port}" for ip, port in addresses if bound_to(ip) != "127.0.0.1"]
                 for name, addresses in listening.items()}
    assert not any(elsewhere.values()), elsewhere


def bound_to(ip: str) -> str:
    """The IPv4 address behind an IPv4-mapped IPv6 one: grpc binds "127.0.0.1:port" as a
    dual-stack socket on ::ffff:127.0.0.1, which accepts IPv4 loopback connections only."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def test_bearer_tokens_never_reach_a_log_file(stack, keys):
    logs = stack.state_dir / "logs"
    valid = keys.token("RS256", subject=f"user-{uuid.uuid4().hex}")
    forged = mint(keys.stranger, issuer=ISSUER, audience=AUDIENCE, subject=f"forger-{uuid.uuid4().hex}")
    unknown_tool = automation_pb2.ExecuteRequest(input="ping", tool="no_such_tool")
    trace_ids: list[str] = []

    def traced(prefix: str) -> str:
        trace_ids.append(f"{prefix}-{uuid.uuid4().hex[:12]}")
        return trace_ids[-1]

    answers = Counter()
    channel, stub = automation_stub(stack.gateway)
    with channel:
        for token in (valid, forged):
            for request in (PING, unknown_tool):  # an error is logged by the services at INFO
                metadata = (("authorization", f"Bearer {token}"), ("x-trace-id", traced("native")))
                try:
                    stub.Execute(request, timeout=10, metadata=metadata)
                    answers["OK"] += 1
                except grpc.RpcError as error:
                    answers[error.code().name] += 1
    for token in (valid, forged):
        reply = grpcweb.call("127.0.0.1", stack.ports["gateway"], EXECUTE, unknown_tool.SerializeToString(),
                             {"authorization": f"Bearer {token}", "x-trace-id": traced("web")})
        answers[f"web {reply.grpc_status}"] += 1
    # The gateway let the valid token through and refused the forged one.
    assert answers == {"OK": 1, "NOT_FOUND": 1, "UNAUTHENTICATED": 2, "web 5": 1, "web 16": 1}, answers
    # Straight to an automation service too, where nothing strips the header.
    channel, stub = stack.automation_stub(stack.state.replicas[0])
    with channel, pytest.raises(grpc.RpcError):
        stub.Execute(unknown_tool, timeout=10, metadata=(("authorization", f"Bearer {valid}"),
                                                         ("x-trace-id", traced("direct"))))

    def files() -> list[Path]:
        return [path for path in logs.rglob("*") if path.is_file()] + list(stack.state_dir.glob("*.log"))

    def every_call_logged() -> bool:
        text = "".join(path.read_text(errors="replace") for path in files())
        return all(trace_id in text for trace_id in trace_ids)

    # Access log lines reach the file about once a second: until every call has left its
    # lines, finding no token would prove nothing.
    wait_for(every_call_logged, 15, "every call's trace id in the logs")
    for token in (valid, forged):
        header_and_claims, _, signature = token.rpartition(".")
        for path in files():
            text = path.read_text(errors="replace")
            assert header_and_claims not in text and signature not in text, f"a token part is in {path}"
    # The services themselves wrote lines for these calls (INFO, with the trace's id and the
    # caller's own x-trace-id beside it).
    automation_lines = [json.loads(line) for line in (logs / "stable-1-automation.log").read_text().splitlines()
                        if line.startswith("{") and '"trace_id"' in line]
    assert any(line.get("caller_trace_id") in trace_ids for line in automation_lines)
