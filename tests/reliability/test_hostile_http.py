"""http_check against hostile servers: one time budget covers the whole check (a body that
trickles a byte at a time, headers that arrive slowly), called through the gateway or straight
on the pipeline; a decompression bomb is decoded only up to the cap, in steps that leave the
event loop free, so pipeline memory stays flat and other calls keep their latency."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import psutil
import pytest

from opsconductor.automation.v1 import automation_pb2
from opsconductor.pipeline.v1 import pipeline_pb2, pipeline_pb2_grpc
from tests.support.calls import automation_stub

pytestmark = pytest.mark.slow

PIN = ("x-canary", "never")
BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024), 9)  # ~64 KB on the wire, 64 MiB decoded


def serve(respond: Callable[[socket.socket], None]) -> Iterator[int]:
    """A raw TCP server on loopback answering every connection with `respond` on a thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_answer, args=(respond, connection), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        listener.close()


def _answer(respond: Callable[[socket.socket], None], connection: socket.socket) -> None:
    with connection:
        try:
            connection.recv(65536)
            respond(connection)
        except OSError:
            pass


def trickle_body(connection: socket.socket) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(60):
        connection.sendall(b"x")
        time.sleep(0.5)


def trickle_headers(connection: socket.socket) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\n")
    for index in range(60):
        connection.sendall(f"X-Slow-{index}: y\r\n".encode())
        time.sleep(0.5)


def bomb(connection: socket.socket) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(BOMB) + BOMB)


def endless(connection: socket.socket) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
    for _ in range(1000):
        connection.sendall(chunk)


def huge_headers(connection: socket.socket) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\n")
    for index in range(2048):  # 2 MiB of headers
        connection.sendall(b"X-Big-%d: %s\r\n" % (index, b"h" * 1000))


@pytest.fixture
def server(request):
    generator = serve(request.param)
    yield next(generator)
    generator.close()


def through_gateway(mesh, url: str, timeout_ms: str = "1500", deadline: float = 20) -> tuple[dict, float]:
    channel, stub = automation_stub(mesh.gateway.target)
    with channel:
        started = time.monotonic()
        reply = stub.Execute(automation_pb2.ExecuteRequest(input=url, tool="http_check",
                                                           arguments={"timeout_ms": timeout_ms}),
                             timeout=deadline, metadata=(PIN,))
    return json.loads(reply.output), time.monotonic() - started


def on_the_pipeline(mesh, url: str, timeout_ms: str = "1500") -> tuple[dict, float]:
    """Straight on the pipeline, with no deadline at all: the check's own budget still holds."""
    with grpc.insecure_channel(mesh.stable[0].pipeline_target) as channel:
        stub = pipeline_pb2_grpc.PipelineServiceStub(channel)
        started = time.monotonic()
        reply = stub.Execute(pipeline_pb2.ExecuteRequest(input=url, tool="http_check",
                                                         arguments={"timeout_ms": timeout_ms}))
    return json.loads(reply.output), time.monotonic() - started


@pytest.mark.parametrize("server", [trickle_body, trickle_headers], indirect=True, ids=["body", "headers"])
def test_a_slow_server_gets_one_time_budget_for_the_whole_check(mesh, server, figure, request):
    url = f"http://127.0.0.1:{server}/"
    for check in (through_gateway, on_the_pipeline):
        report, seconds = check(mesh, url)
        assert report["ok"] is False and "within 1.5 s" in report["error"], report
        assert 1.4 < seconds < 2.0, (check.__name__, seconds)
        figure(f"http.trickle_{request.node.callspec.id}_{check.__name__}_total", seconds, "s (timeout_ms=1500)")


@pytest.mark.parametrize("server", [endless], indirect=True)
def test_an_endless_body_is_read_up_to_one_mebibyte(mesh, server):
    report, seconds = through_gateway(mesh, f"http://127.0.0.1:{server}/", timeout_ms="5000")
    assert report["bytes"] == 1 << 20 and report["truncated"] is True, report
    assert seconds < 5


@pytest.mark.parametrize("server", [huge_headers], indirect=True)
def test_megabytes_of_headers_are_refused(mesh, server):
    report, seconds = through_gateway(mesh, f"http://127.0.0.1:{server}/", timeout_ms="5000")
    assert report["ok"] is False and "status" not in report, report
    assert seconds < 2


@pytest.mark.parametrize("server", [bomb], indirect=True)
def test_a_decompression_bomb_costs_no_memory_and_stalls_no_other_call(mesh, server, figure):
    pipeline = psutil.Process(mesh.stable[0].pipeline.pid)
    url = f"http://127.0.0.1:{server}/"
    through_gateway(mesh, url)  # warm: first use of the code paths
    rss_before = pipeline.memory_info().rss
    echo_ms: list[float] = []
    channel, stub = automation_stub(mesh.gateway.target)
    with channel, ThreadPoolExecutor(8) as workers:
        bombs = [workers.submit(through_gateway, mesh, url, "5000") for _ in range(6)]
        while not all(future.done() for future in bombs):
            started = time.monotonic()
            stub.Execute(automation_pb2.ExecuteRequest(input="ping", tool="echo"), timeout=5, metadata=(PIN,))
            echo_ms.append((time.monotonic() - started) * 1000)
        reports = [future.result()[0] for future in bombs]
    growth_mb = (pipeline.memory_info().rss - rss_before) / 1e6
    for report in reports:
        assert report["decoded_bytes"] == 1 << 20 and report["truncated"] is True, report
        assert report["bytes"] <= len(BOMB)
    assert growth_mb < 20, growth_mb
    assert echo_ms and max(echo_ms) < 250, echo_ms
    figure("http.bomb_pipeline_rss_growth", growth_mb, "MB (6 bombs of 64 MiB at once)")
    figure("http.echo_max_during_bombs", max(echo_ms), "ms")
