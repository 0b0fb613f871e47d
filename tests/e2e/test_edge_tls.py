"""`opsconductor up --tls`: the gateway terminates TLS with a certificate of the local CA,
native gRPC (h2) and gRPC-Web (HTTP/1.1) on one port chosen by ALPN, grpcurl with the CA
file, and the page pointed at the https URL; plaintext is no longer answered there."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import urllib.request

import grpc
import pytest

from opsconductor.automation.v1 import automation_pb2, automation_pb2_grpc
from opsconductor.load import grpcweb
from services.common.names import AUTOMATION_EXECUTE
from tests.support.procs import BIN
from tests.support.stack import start_stack, stop_stack

pytestmark = pytest.mark.slow
PING = automation_pb2.ExecuteRequest(input="ping", tool="echo")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, built_page):
    running = start_stack(tmp_path_factory.mktemp("edge"), "--tls", "--no-prometheus")
    yield running
    stop_stack(running)


def ca_file(stack) -> str:
    return str(stack.state_dir / "identity" / "ca" / "ca.crt")


def negotiated(stack, protocols: list[str]) -> str | None:
    context = ssl.create_default_context(cafile=ca_file(stack))
    context.set_alpn_protocols(protocols)
    with socket.create_connection(("127.0.0.1", stack.ports["gateway"]), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as connection:
            return connection.selected_alpn_protocol()


def test_alpn_offers_h2_and_http_1_1_on_one_port(stack):
    assert negotiated(stack, ["h2"]) == "h2"
    assert negotiated(stack, ["http/1.1"]) == "http/1.1"


def test_native_grpc_over_tls_with_the_local_ca(stack):
    with open(ca_file(stack), "rb") as ca:
        credentials = grpc.ssl_channel_credentials(ca.read())
    with grpc.secure_channel(stack.gateway, credentials) as channel:
        reply = automation_pb2_grpc.AutomationServiceStub(channel).Execute(PING, timeout=10)
    assert reply.output == "pong"


def test_grpc_web_over_https(stack):
    context = ssl.create_default_context(cafile=ca_file(stack))
    connection = http.client.HTTPSConnection("127.0.0.1", stack.ports["gateway"], timeout=10, context=context)
    try:
        reply = grpcweb.call("127.0.0.1", stack.ports["gateway"], AUTOMATION_EXECUTE, PING.SerializeToString(),
                             connection=connection)
    finally:
        connection.close()
    assert (reply.http_status, reply.grpc_status) == (200, 0), reply
    assert automation_pb2.ExecuteResponse.FromString(reply.messages[0]).output == "pong"


def test_grpcurl_works_with_the_ca_file_and_plaintext_does_not(stack):
    with_ca = subprocess.run([str(BIN / "grpcurl"), "-cacert", ca_file(stack), "-d", '{"input": "ping"}',
                              stack.gateway, "opsconductor.automation.v1.AutomationService/Execute"],
                             capture_output=True, text=True, timeout=30)
    assert with_ca.returncode == 0 and '"output": "pong"' in with_ca.stdout, with_ca.stderr
    plaintext = subprocess.run([str(BIN / "grpcurl"), "-plaintext", stack.gateway, "list"],
                               capture_output=True, text=True, timeout=30)
    assert plaintext.returncode != 0


def test_the_page_calls_the_https_gateway(stack):
    with urllib.request.urlopen(f"{stack.page_url}/config.json", timeout=5) as response:
        config = json.load(response)
    assert config["gatewayUrl"] == f"https://127.0.0.1:{stack.ports['gateway']}"


def test_status_still_reports_every_component(stack):
    result = stack.cli("status")
    assert result.returncode == 0 and "NOT HEALTHY" not in result.stdout, result.stdout + result.stderr
