"""A caller's mistake gets a clear 4xx-class status naming the field, the same one every time,
bounded and free of internal addresses and secrets; and nothing a caller sends, a short
deadline included, ejects a healthy host or counts as a server fault."""

from __future__ import annotations

import http.client
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest

from opsconductor.automation.v1 import automation_pb2
from opsconductor.load import grpcweb
from services.common.names import AUTOMATION_EXECUTE
from tests.support.calls import automation_stub, error_info
from tests.support.metrics import metric

pytestmark = pytest.mark.slow

CANARY = ("x-canary", "always")  # calls pinned to the canary pool's one host
CALLER_SIDE = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED,
               grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OUT_OF_RANGE}
FAULTS = ("INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED", "UNAVAILABLE", "DATA_LOSS", "UNIMPLEMENTED")


def request(tool: str, text: str, **arguments: str) -> automation_pb2.ExecuteRequest:
    return automation_pb2.ExecuteRequest(input=text, tool=tool, arguments=arguments)


# name: (request, the field or argument the error names)
BAD_INPUT = {
    "delay of 5,000 digits": (request("delay", "x", ms="9" * 5000), ("argument", "ms")),
    "delay in superscript": (request("delay", "x", ms="²"), ("argument", "ms")),
    "delay in Arabic-Indic digits": (request("delay", "x", ms="٣٠٠"), ("argument", "ms")),
    "delay number in the input of 5,000 digits": (request("delay", "delay " + "7" * 5000), ("field", "input")),
    "port in superscript": (request("tcp_check", "127.0.0.1:²"), ("field", "input")),
    "port in full-width digits": (request("tcp_check", "127.0.0.1:８０"), ("field", "input")),
    "port of 30 digits": (request("tcp_check", "127.0.0.1:" + "8" * 30), ("field", "input")),
    "IPv6 without brackets": (request("tcp_check", "::1:80"), ("field", "input")),
    "URL port that is not a number": (request("http_check", "http://127.0.0.1:abc/"), ("field", "input")),
    "URL with an open bracket": (request("http_check", "http://[::1/"), ("field", "input")),
    "URL with a control character": (request("http_check", "http://127.0.0.1/\x07a"), ("field", "input")),
    "URL with a NUL": (request("http_check", "http://127.0.0.1\x00.evil/"), ("field", "input")),
    "URL with userinfo": (request("http_check", "http://admin:pw@127.0.0.1/"), ("field", "input")),
    "timeout in scientific notation": (request("tcp_check", "127.0.0.1:1", timeout_ms="1e3"),
                                       ("argument", "timeout_ms")),
    "timeout of 4,096 digits": (request("http_check", "http://127.0.0.1:1/", timeout_ms="5" * 4096),
                                ("argument", "timeout_ms")),
    "host name with a NUL": (request("dns_lookup", "local\x00host"), ("field", "input")),
}


def call(stub, message, timeout: float = 10, metadata=(CANARY,)):
    try:
        return stub.Execute(message, timeout=timeout, metadata=metadata)
    except grpc.RpcError as error:
        return error


@pytest.fixture(scope="module")
def stub(mesh):
    channel, stub = automation_stub(mesh.gateway.target)
    yield stub
    channel.close()


@pytest.mark.parametrize("name", list(BAD_INPUT))
def test_bad_input_is_a_caller_side_status_naming_its_field(stub, name):
    message, (key, value) = BAD_INPUT[name]
    answer = call(stub, message)
    assert isinstance(answer, grpc.RpcError), answer
    assert answer.code() in CALLER_SIDE, (answer.code(), answer.details())
    info = error_info(answer)
    assert info.metadata.get(key) == value, dict(info.metadata)
    assert len(answer.details()) <= 300 and "Traceback" not in answer.details() and "\n" not in answer.details()


def canary_handled(mesh, code: str) -> float:
    return metric(mesh.canary[0].automation_metrics, "grpc_server_handled_total", grpc_method="Execute",
                  grpc_code=code)


def ejections(mesh) -> int:
    text = http.client.HTTPConnection("127.0.0.1", mesh.gateway.settings.admin_port, timeout=5)
    text.request("GET", "/stats?filter=outlier_detection.ejections_enforced_total")
    body = text.getresponse().read().decode()
    return sum(int(line.rsplit(":", 1)[1]) for line in body.splitlines() if line.strip())


def compressed_frame_without_encoding(port: int) -> int:
    """A gRPC-Web call whose frame is flagged compressed with no encoding: grpc itself answers INTERNAL."""
    body = struct.pack(">BI", 1, 4) + b"ping"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", AUTOMATION_EXECUTE, body, {"content-type": "application/grpc-web+proto",
                                                              "x-grpc-web": "1", CANARY[0]: CANARY[1]})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_caller_mistakes_and_short_deadlines_eject_no_host_and_count_as_no_fault(mesh, stub, figure):
    faults_before = {code: canary_handled(mesh, code) for code in FAULTS}
    ejected_before = ejections(mesh)
    for message, _ in list(BAD_INPUT.values()) * 2:
        assert call(stub, message).code() in CALLER_SIDE
    for _ in range(6):
        compressed_frame_without_encoding(mesh.gateway.settings.listen_port)
    # A 90 ms deadline is plenty for echo: answered, not refused at once.
    short = [call(stub, request("echo", "ping"), timeout=0.09) for _ in range(20)]
    answered = sum(1 for reply in short if not isinstance(reply, grpc.RpcError))
    # A deadline shorter than the tool's run: the caller's deadline ends each call.
    for _ in range(8):
        assert call(stub, request("delay", "x", ms="2000"), timeout=0.3).code() == grpc.StatusCode.DEADLINE_EXCEEDED
    time.sleep(1.5)  # past an outlier-detection sweep (1 s)
    assert ejections(mesh) == ejected_before
    assert mesh.gateway.admin.pool_health()["canary"].healthy == 1
    assert answered >= 18, [getattr(reply, "code", lambda: "OK")() for reply in short]
    assert {code: canary_handled(mesh, code) for code in FAULTS} == faults_before
    assert call(stub, request("echo", "ping")).output == "pong"
    figure("statuses.echo_answered_with_a_90ms_deadline", answered, "of 20")


def test_the_same_bad_call_always_gets_the_same_answer(stub):
    message = request("delay", "x", ms="9" * 4096)
    answers = {(error.code(), error.details()) for error in (call(stub, message) for _ in range(30))}
    assert len(answers) == 1, answers
    ((code, details),) = answers
    assert code == grpc.StatusCode.INVALID_ARGUMENT and len(details) < 200


@pytest.mark.parametrize("size,expected", [(12 * 1024, None), (15 * 1024, None),
                                           (17 * 1024, grpc.StatusCode.RESOURCE_EXHAUSTED)])
def test_request_metadata_is_refused_only_over_16_kib_and_always_alike(stub, size, expected):
    metadata = (CANARY, ("x-padding", "a" * size))
    codes = set()
    for _ in range(20):
        answer = call(stub, request("echo", "ping"), metadata=metadata)
        codes.add(answer.code() if isinstance(answer, grpc.RpcError) else None)
    assert codes == {expected}, codes


def test_with_the_pipeline_down_callers_read_no_internal_address(healed):
    pair = healed.canary[0]
    pair.pipeline.stop()
    channel, stub = automation_stub(healed.gateway.target)
    with channel:
        answer = call(stub, request("echo", "ping"))
    assert isinstance(answer, grpc.RpcError) and answer.code() == grpc.StatusCode.UNAVAILABLE, answer
    details = answer.details()
    assert "127.0.0.1" not in details and str(pair.ports["pipeline"]) not in details and "ipv4:" not in details, details


def test_a_redirect_is_reported_without_its_query_string(stub):
    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.send_response(302)
            self.send_header("Location", "http://user:pw@elsewhere.example/next?token=SECRET#frag")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        reply = call(stub, request("http_check", f"http://127.0.0.1:{server.server_port}/start?session=SECRET"))
    finally:
        server.shutdown()
    assert not isinstance(reply, grpc.RpcError), reply
    assert '"status": 302' in reply.output and "elsewhere.example/next" in reply.output
    assert "SECRET" not in reply.output and "pw" not in reply.output, reply.output


def test_grpc_web_bad_input_gets_the_same_caller_side_status(mesh):
    message, _ = BAD_INPUT["port in superscript"]
    reply = grpcweb.call("127.0.0.1", mesh.gateway.settings.listen_port, AUTOMATION_EXECUTE,
                         message.SerializeToString(), {CANARY[0]: CANARY[1]})
    assert (reply.http_status, reply.grpc_status) == (200, grpc.StatusCode.INVALID_ARGUMENT.value[0]), reply


def test_a_compression_bomb_at_the_grpc_layer_is_resource_exhausted(mesh):
    options = [("grpc.max_send_message_length", -1)]
    bomb = automation_pb2.ExecuteRequest(input="0" * (16 * 1024 * 1024), tool="echo")
    with grpc.insecure_channel(mesh.gateway.target, options=options, compression=grpc.Compression.Gzip) as channel:
        execute = channel.unary_unary(AUTOMATION_EXECUTE,
                                      request_serializer=automation_pb2.ExecuteRequest.SerializeToString)
        with pytest.raises(grpc.RpcError) as refused:
            execute(bomb, timeout=10, metadata=(CANARY,))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value.details()
