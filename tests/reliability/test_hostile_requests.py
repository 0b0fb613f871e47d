"""What is not a gRPC call in protobuf never reaches a service: other methods than POST (with
gRPC or gRPC-Web content types) and content types with parameters get 415 from the gateway at
once, over HTTP/1.1 and HTTP/2, are never retried, and leave no trace on any host. (Envoy
answers a request typed application/grpc in gRPC's own form: HTTP 200 with grpc-status 3,
INVALID_ARGUMENT, and a message saying what the gateway takes.)"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import time

import pytest

from opsconductor.automation.v1 import automation_pb2
from opsconductor.load import grpcweb
from services.common.names import AUTOMATION_EXECUTE
from tests.support.metrics import upstream_requests

pytestmark = pytest.mark.slow

BODY = grpcweb.frame(automation_pb2.ExecuteRequest(input="ping", tool="echo").SerializeToString())
GRPC_TYPES = ("application/grpc", "application/grpc+proto", "application/grpc-web+proto", "application/grpc-web",
              "application/grpc-web-text")
WITH_PARAMETERS = ("application/grpc-web+proto; charset=utf-8", "application/grpc-web-text; charset=utf-8",
                   "application/grpc;charset=utf-8", "application/grpc+proto; x=y", "application/grpc-web+proto;")


def refused(status: int, grpc_status: str | None) -> bool:
    """A 415, or its gRPC form."""
    return status == 415 or (status == 200 and grpc_status == "3")


def http1(port: int, method: str, content_type: str) -> tuple[int, str | None, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    started = time.monotonic()
    try:
        connection.request(method, AUTOMATION_EXECUTE, BODY if method not in ("GET", "HEAD") else None,
                           {"content-type": content_type, "x-grpc-web": "1"})
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    return response.status, response.getheader("grpc-status"), time.monotonic() - started


def http2(port: int, method: str, content_type: str, tmp_path) -> tuple[int, str | None]:
    nghttp = shutil.which("nghttp")
    assert nghttp is not None, "nghttp is not installed (`make setup` installs nghttp2-client)"
    body = tmp_path / "body.bin"
    body.write_bytes(BODY)
    result = subprocess.run([nghttp, "-v", "-H", f":method: {method}", "-H", f"content-type: {content_type}",
                             "-H", "te: trailers", "-d", str(body), f"http://127.0.0.1:{port}{AUTOMATION_EXECUTE}"],
                            capture_output=True, timeout=20)
    received = {}
    for line in result.stdout.decode("latin-1").splitlines():
        _, marker, header = line.partition(") ")
        if marker and "recv (stream_id=" in line and ": " in header:
            name, _, value = header.partition(": ")
            received[name.strip()] = value.strip()
    assert ":status" in received, result.stdout.decode("latin-1")[-2000:]
    return int(received[":status"]), received.get("grpc-status")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_other_methods_get_415_and_reach_no_service(mesh, method, tmp_path):
    port = mesh.gateway.settings.listen_port
    before = upstream_requests(mesh.gateway.admin.base_url)
    for content_type in GRPC_TYPES:
        status, grpc_status, seconds = http1(port, method, content_type)
        assert refused(status, grpc_status) and seconds < 1, (method, content_type, status, grpc_status, seconds)
        if content_type.startswith("application/grpc-web"):
            assert status == 415, (method, content_type, status)
        if method != "HEAD":
            assert refused(*http2(port, method, content_type, tmp_path)), (method, content_type)
    assert upstream_requests(mesh.gateway.admin.base_url) == before


@pytest.mark.parametrize("content_type", WITH_PARAMETERS)
def test_content_types_with_parameters_get_415_and_reach_no_service(mesh, content_type, tmp_path):
    port = mesh.gateway.settings.listen_port
    before = upstream_requests(mesh.gateway.admin.base_url)
    status, grpc_status, seconds = http1(port, "POST", content_type)
    assert refused(status, grpc_status) and seconds < 1, (status, grpc_status, seconds)
    assert refused(*http2(port, "POST", content_type, tmp_path))
    assert upstream_requests(mesh.gateway.admin.base_url) == before


def test_the_spec_s_own_forms_still_pass(mesh):
    port = mesh.gateway.settings.listen_port
    for content_type in ("application/grpc-web+proto", "application/grpc-web"):
        reply = grpcweb.call("127.0.0.1", port, AUTOMATION_EXECUTE, automation_pb2.ExecuteRequest(
            input="ping", tool="echo").SerializeToString(), {"content-type": content_type})
        assert (reply.http_status, reply.grpc_status) == (200, 0), (content_type, reply)
