"""Bad input at the edge, through Envoy: malformed gRPC and gRPC-Web frames, wrong content
types, oversized messages and headers, and HTTP that is not HTTP. Each gets a clean answer (a
gRPC status or a 4xx) within a bound, and afterwards every process still serves."""

from __future__ import annotations

import http.client
import shutil
import socket
import struct
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from opsconductor.load import grpcweb
from opsconductor.automation.v1 import automation_pb2
from tests.support.calls import automation_stub, error_info
from tests.support.metrics import upstream_requests
from tests.support.procs import health_status
from services.common.names import AUTOMATION_EXECUTE, AUTOMATION_SERVICE

EXECUTE = AUTOMATION_EXECUTE
AUTOMATION = AUTOMATION_SERVICE
PING = automation_pb2.ExecuteRequest(input="ping", tool="echo").SerializeToString()
# A short route bound, so that requests no server ever answers are cut in seconds here.
# (The product's bound is 35 s; a unit test checks it is rendered the same way.)
ROUTE_BOUND_S = 3
CODE = {code.name: code.value[0] for code in grpc.StatusCode}


# The module's mesh (tests/reliability/conftest.py), shaped for these tests.
MESH = {"route_timeout_s": ROUTE_BOUND_S, "per_try_timeout_s": ROUTE_BOUND_S}


@pytest.fixture(scope="module")
def port(mesh) -> int:
    return mesh.gateway.settings.listen_port


# --- clients that send exactly the bytes given ------------------------------------------------

@dataclass
class Answer:
    http_status: int
    grpc_status: int | None
    grpc_message: str
    seconds: float


def web_raw(port: int, body: bytes, content_type: str | None = "application/grpc-web+proto") -> Answer:
    """A gRPC-Web POST over HTTP/1.1 with `body` as it is."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=ROUTE_BOUND_S + 10)
    headers = {"x-grpc-web": "1", "content-length": str(len(body))}
    if content_type is not None:
        headers["content-type"] = content_type
    started = time.monotonic()
    try:
        connection.putrequest("POST", EXECUTE, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    seconds = time.monotonic() - started
    reply = grpcweb.Reply(response.status, {k.lower(): v for k, v in response.getheaders()})
    if response.status == 200:
        reply.messages, reply.trailers = grpcweb.parse(data)
    return Answer(response.status, reply.grpc_status, reply.grpc_message, seconds)


NGHTTP = shutil.which("nghttp")


def native_raw(port: int, body: bytes, tmp_path: Path, content_type: str = "application/grpc") -> Answer:
    """A native gRPC call over h2c with `body` as its DATA, sent by nghttp (nghttp2-client):
    grpc itself frames messages correctly, so it cannot send a broken frame."""
    assert NGHTTP is not None, "nghttp is not installed (`make setup` installs nghttp2-client)"
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "body.bin"
    data.write_bytes(body)
    started = time.monotonic()
    result = subprocess.run([NGHTTP, "-v", "-H", f"content-type: {content_type}", "-H", "te: trailers",
                             "-d", str(data), f"http://127.0.0.1:{port}{EXECUTE}"],
                            capture_output=True, timeout=ROUTE_BOUND_S + 10)
    seconds = time.monotonic() - started
    received: dict[str, str] = {}
    for line in result.stdout.decode("latin-1").splitlines():
        _, marker, header = line.partition(") ")
        if marker and "recv (stream_id=" in line and ": " in header:
            name, _, value = header.partition(": ")
            received[name.strip()] = value.strip()
    assert ":status" in received, result.stdout.decode("latin-1")[-2000:]
    status = received.get("grpc-status")
    return Answer(int(received[":status"]), int(status) if status is not None else None,
                  received.get("grpc-message", ""), seconds)


def socket_exchange(port: int, data: bytes, wait_s: float = 5.0) -> bytes:
    """Sends `data` on a fresh connection and reads until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as connection:
        connection.sendall(data)
        received = b""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                chunk = connection.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        else:
            pytest.fail(f"the gateway kept the connection open for {wait_s} s after {data[:40]!r}")
    return received


# --- malformed frames ---------------------------------------------------------------------------

def frame_header(flags: int, length: int) -> bytes:
    return struct.pack(">BI", flags, length)


# name: (body, the gRPC status for gRPC-Web, for native gRPC); None: not sent natively.
FRAMES = {
    "length prefix short of the body": (frame_header(0, 3) + PING, "INVALID_ARGUMENT", "INVALID_ARGUMENT"),
    "trailer flag on a request frame": (grpcweb.frame(PING, 0x80), "INVALID_ARGUMENT", None),
    "compressed flag with no encoding": (grpcweb.frame(PING, 0x01), "INTERNAL", "INTERNAL"),
    "bytes that are not protobuf": (grpcweb.frame(b"\xff\xff\xff\xff\xff\x0a"), "INVALID_ARGUMENT",
                                    "INVALID_ARGUMENT"),
    "garbage": (bytes(range(7, 250, 3)) * 4, "INVALID_ARGUMENT", "INVALID_ARGUMENT"),
    "length prefix of 4 GiB": (frame_header(0, 0xFFFFFFFF) + PING, "RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"),
}
# Requests that end before one whole message arrived: each is answered at once, never left to
# wait for a message that cannot come until the call's deadline.
ENDS_EARLY = {
    "length prefix beyond the body": frame_header(0, len(PING) + 100) + PING,
    "frame header cut short": b"\x00\x00\x00",
    "no frame at all": b"",
}


def check_clean(answer: Answer, expected: str) -> None:
    assert answer.http_status == 200 and answer.grpc_status == CODE[expected], answer
    assert answer.seconds < 2, answer
    assert "Traceback" not in answer.grpc_message and "<class" not in answer.grpc_message, answer


@pytest.mark.parametrize("name", list(FRAMES))
def test_malformed_grpc_web_frame_gets_a_clean_status(port, name):
    body, expected, _ = FRAMES[name]
    check_clean(web_raw(port, body), expected)


@pytest.mark.parametrize("name", [name for name, (_, _, native) in FRAMES.items() if native])
def test_malformed_native_frame_gets_a_clean_status(port, name, tmp_path):
    body, _, expected = FRAMES[name]
    check_clean(native_raw(port, body, tmp_path), expected)


def test_requests_that_end_before_a_whole_message_are_invalid_argument_at_once(port, tmp_path, figure):
    with ThreadPoolExecutor(2 * len(ENDS_EARLY)) as workers:
        web = {name: workers.submit(web_raw, port, body) for name, body in ENDS_EARLY.items()}
        native = {name: workers.submit(native_raw, port, body, tmp_path / name.replace(" ", "-"))
                  for name, body in ENDS_EARLY.items()}
        answers = {("gRPC-Web", name): future.result() for name, future in web.items()}
        answers |= {("native", name): future.result() for name, future in native.items()}
    for (protocol, name), answer in answers.items():
        assert (answer.http_status, answer.grpc_status) == (200, CODE["INVALID_ARGUMENT"]), (protocol, name, answer)
        assert "has no complete message" in answer.grpc_message, (protocol, name, answer)
        assert answer.seconds < 2, (protocol, name, answer)
    figure("edge.request_without_a_whole_message_answered_after", max(a.seconds for a in answers.values()), "s")


def test_undecodable_message_is_invalid_argument_with_error_info(mesh):
    trace_id = uuid.uuid4().hex
    channel = grpc.insecure_channel(mesh.gateway.target)
    with channel:
        execute = channel.unary_unary(EXECUTE)  # bytes in, bytes out: no serializer in the way
        with pytest.raises(grpc.RpcError) as caught:
            execute(b"\xff\xff\xff\xff\xff\x0a", timeout=5,
                    metadata=(("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"),))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(caught.value)
    assert info.reason == "VALIDATION_ERROR" and info.metadata["trace_id"] == trace_id


# --- content types ------------------------------------------------------------------------------

@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "application/x-www-form-urlencoded",
                                          "application/grpc-web+json", None])
def test_a_post_that_is_not_grpc_gets_415_and_reaches_no_service(mesh, port, content_type):
    before = upstream_requests(mesh.gateway.admin.base_url)
    answer = web_raw(port, grpcweb.frame(PING), content_type=content_type)
    assert answer.http_status == 415 and answer.seconds < 1, answer
    assert upstream_requests(mesh.gateway.admin.base_url) == before


def test_native_grpc_with_a_json_content_type_gets_415(port, tmp_path):
    answer = native_raw(port, grpcweb.frame(PING), tmp_path, content_type="application/json")
    assert answer.http_status == 415, answer


def test_grpc_web_text_that_is_not_base64_is_refused_by_the_gateway(port):
    answer = web_raw(port, grpcweb.frame(PING), content_type="application/grpc-web-text")
    # The grpc_web filter decodes the body after the headers went upstream: the call is
    # reset there, and the caller gets Envoy's 400.
    assert (answer.http_status, answer.grpc_status) == (400, CODE["INTERNAL"]), answer
    assert "base64" in answer.grpc_message


# --- oversized ----------------------------------------------------------------------------------

FIVE_MB = automation_pb2.ExecuteRequest(input="x" * (5 * 1024 * 1024), tool="echo")


def test_five_megabyte_message_is_resource_exhausted_natively(mesh):
    options = [("grpc.max_send_message_length", -1)]
    with grpc.insecure_channel(mesh.gateway.target, options=options) as channel:
        execute = channel.unary_unary(EXECUTE, request_serializer=automation_pb2.ExecuteRequest.SerializeToString)
        with pytest.raises(grpc.RpcError) as caught:
            execute(FIVE_MB, timeout=10)
    # The automation server's 4 MiB receive limit answers; Envoy passes the status through.
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in caught.value.details()


def test_five_megabyte_message_is_resource_exhausted_over_grpc_web(port):
    answer = web_raw(port, grpcweb.frame(FIVE_MB.SerializeToString()))
    assert (answer.http_status, answer.grpc_status) == (200, CODE["RESOURCE_EXHAUSTED"]), answer
    assert "larger than max" in answer.grpc_message


def test_one_megabyte_input_is_invalid_argument_on_both_protocols(mesh, port):
    request = automation_pb2.ExecuteRequest(input="x" * (1024 * 1024), tool="echo")
    channel, stub = automation_stub(mesh.gateway.target)
    with channel, pytest.raises(grpc.RpcError) as caught:
        stub.Execute(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).reason == "VALIDATION_ERROR"
    answer = web_raw(port, grpcweb.frame(request.SerializeToString()))
    assert (answer.http_status, answer.grpc_status) == (200, CODE["INVALID_ARGUMENT"]), answer


@pytest.mark.parametrize("size,code", [(20_000, grpc.StatusCode.RESOURCE_EXHAUSTED),
                                       (100_000, grpc.StatusCode.UNAVAILABLE)])
def test_oversized_native_metadata_gets_a_status(mesh, size, code):
    # 20 kB passes Envoy (60 KiB) and meets the service's 16 KiB metadata limit; 100 kB is
    # refused by Envoy itself, which ends the connection (the client reads UNAVAILABLE).
    channel, stub = automation_stub(mesh.gateway.target)
    with channel, pytest.raises(grpc.RpcError) as caught:
        stub.Execute(automation_pb2.ExecuteRequest(input="ping"), timeout=5, metadata=(("x-big", "a" * size),))
    assert caught.value.code() == code


# --- HTTP that is not HTTP ----------------------------------------------------------------------

def http1(request_line: str, headers: list[str], body: bytes = b"") -> bytes:
    return ("\r\n".join([request_line, *headers]) + "\r\n\r\n").encode() + body


GARBAGE_HTTP = {
    "binary junk": (b"\x00\xff\xfe junk \x01\x02\r\n\r\n", 400),
    "a line that is not a request": (b"HELLO WORLD\r\n\r\n", 400),
    "HTTP/1.0": (http1(f"POST {EXECUTE} HTTP/1.0", ["content-type: application/grpc-web+proto",
                                                    f"content-length: {len(grpcweb.frame(PING))}"],
                       grpcweb.frame(PING)), 426),
    "a 100 kB header": (http1(f"POST {EXECUTE} HTTP/1.1", ["host: gateway", "x-big: " + "a" * 100_000,
                                                           "content-type: application/grpc-web+proto",
                                                           "content-length: 0"]), 431),
    "200 headers": (http1(f"POST {EXECUTE} HTTP/1.1", ["host: gateway", *(f"x-h{i}: v" for i in range(200)),
                                                       "content-length: 0"]), 431),
    "a negative content-length": (http1(f"POST {EXECUTE} HTTP/1.1", ["host: gateway", "content-length: -5"]), 400),
}


@pytest.mark.parametrize("name", list(GARBAGE_HTTP))
def test_garbage_http_gets_a_4xx_and_the_connection_closed(port, name):
    data, status = GARBAGE_HTTP[name]
    received = socket_exchange(port, data)
    assert received.startswith(f"HTTP/1.1 {status} ".encode()), received[:200]


def test_http2_preface_followed_by_junk_gets_a_goaway(port):
    received = socket_exchange(port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 64)
    frame_types, offset = [], 0
    while offset + 9 <= len(received):
        length = int.from_bytes(received[offset:offset + 3], "big")
        frame_types.append(received[offset + 3])
        offset += 9 + length
    assert 0x07 in frame_types, received[:200]  # GOAWAY


# --- and afterwards -----------------------------------------------------------------------------

def test_after_all_of_it_every_process_still_serves(mesh):
    """Runs last in this module (pytest keeps file order)."""
    assert mesh.gateway.process.running()
    assert all(process.running() for process in mesh.services()), [p.name for p in mesh.services()]
    assert health_status(mesh.gateway.target, AUTOMATION) == health_pb2.HealthCheckResponse.SERVING
    for pair in mesh.pairs():
        assert health_status(pair.automation_target, AUTOMATION) == health_pb2.HealthCheckResponse.SERVING
    channel, stub = automation_stub(mesh.gateway.target)
    with channel:
        for pin in ("always", "never"):  # each pool answers
            reply = stub.Execute(automation_pb2.ExecuteRequest(input="ping", tool="echo"), timeout=5,
                                 metadata=(("x-canary", pin),))
            assert reply.output == "pong"
    answer = web_raw(mesh.gateway.settings.listen_port, grpcweb.frame(PING))
    assert (answer.http_status, answer.grpc_status) == (200, 0), answer


@pytest.mark.slow
def test_a_client_that_never_finishes_its_headers_is_cut_off(port):
    """Request headers must arrive within 10 s, or Envoy answers 408 and closes the connection."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(b"POST /opsconductor.automation.v1.AutomationService/Execute HTTP/1.1\r\nHost: x\r\n")
        received = b""
        while chunk := connection.recv(4096):  # returns b"" once Envoy closes the connection
            received += chunk
    elapsed = time.monotonic() - started
    assert 9 <= elapsed < 20, f"the connection lasted {elapsed:.1f} s"
    assert received.startswith(b"HTTP/1.1 408"), received[:80]
