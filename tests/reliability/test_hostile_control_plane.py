"""The tools cannot read the mesh's own control plane: under `opsconductor up` every port of
the stack (gateway, Envoy admin and stats, Prometheus, the page, the trace store's three, every
service's gRPC, /metrics and health-only port) is refused to tcp_check and http_check on every
address, whatever the allowlist says, while other loopback ports stay reachable."""

from __future__ import annotations

import socket

import grpc
import pytest

from opsconductor.automation.v1 import automation_pb2
from opsconductor.stack.ports import REPLICA_PORT_NAMES
from tests.support.calls import automation_stub, error_info
from tests.support.stack import start_stack, stop_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    running = start_stack(tmp_path_factory.mktemp("control-plane"), "--no-page")
    yield running
    stop_stack(running)


def mesh_ports(stack) -> dict[str, int]:
    ports = {name: port for name, port in stack.ports.items() if name != "page"}  # --no-page: nothing there
    for replica in stack.state.replicas:
        for use in REPLICA_PORT_NAMES:  # gRPC, metrics and health-only of both services
            ports[f"{replica.name} {use}"] = int(getattr(replica, use).rsplit(":", 1)[1])
    return ports


def run(stack, tool: str, text: str):
    channel, stub = automation_stub(stack.gateway)
    with channel:
        try:
            return stub.Execute(automation_pb2.ExecuteRequest(input=text, tool=tool), timeout=10)
        except grpc.RpcError as error:
            return error


def test_every_port_of_the_stack_is_refused_to_the_tools(stack):
    ports = mesh_ports(stack)
    # gateway, admin, stats, Prometheus, the trace store's three, and each replica's
    assert len(ports) >= 7 + 2 * len(REPLICA_PORT_NAMES), ports
    assert {"traces-otlp", "traces-query", "traces-metrics"} <= set(ports), ports
    for name, port in ports.items():
        for tool, text in (("tcp_check", f"127.0.0.1:{port}"), ("tcp_check", f"localhost:{port}"),
                           ("tcp_check", f"[::1]:{port}"), ("http_check", f"http://127.0.0.1:{port}/config_dump"),
                           ("http_check", f"http://localhost:{port}/metrics")):
            answer = run(stack, tool, text)
            assert isinstance(answer, grpc.RpcError), (name, tool, text, answer)
            assert answer.code() == grpc.StatusCode.PERMISSION_DENIED, (name, text, answer.details())
            assert error_info(answer).reason == "DESTINATION_DENIED" and "mesh's own ports" in answer.details()


def test_other_loopback_ports_stay_reachable(stack):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        reply = run(stack, "tcp_check", f"127.0.0.1:{listener.getsockname()[1]}")
    assert not isinstance(reply, grpc.RpcError), reply
    assert '"open": true' in reply.output
