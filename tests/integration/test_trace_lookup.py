"""The trace store's query API and the page server's trace lookup in front of it, over real
loopback HTTP: answers by trace id, the slowest listing, and what each refuses."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.page.server import create_server
from services.page.traces import PREFIX, trace_route
from services.traces.otlp import decode_attributes, encode_attributes
from services.traces.query import serve_query
from services.traces.store import SpanRecord, SpanStore
from tests.support.procs import free_port

TRACE = "0af7651916cd43dd8448eb211c80319c"


def fetch(port: int, path: str, method: str = "GET") -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        body = response.read()
        return response.status, json.loads(body) if body else {}
    finally:
        connection.close()


@pytest.fixture(scope="module")
def store_port() -> Iterator[int]:
    store = SpanStore(":memory:", 1000, 60, decode=decode_attributes)
    attributes = {"rpc.grpc.status_code": 0}
    store.add([SpanRecord(TRACE, "a" * 16, "", "gateway", "automation", "SERVER", 10**9, 10**9 + 4_000_000,
                          encoded=encode_attributes({})),
               SpanRecord(TRACE, "b" * 16, "a" * 16, "automation", "/x.Y/Execute", "SERVER", 10**9 + 1_000_000,
                          10**9 + 3_000_000, encoded=encode_attributes(attributes))])
    server = serve_query(f"127.0.0.1:{free_port()}", store)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def page_port(store_port: int, tmp_path_factory) -> Iterator[int]:
    dist = tmp_path_factory.mktemp("dist")
    (dist / "index.html").write_text("<!doctype html><div id=app></div>")
    server = create_server(dist, "127.0.0.1", 0, {"gatewayUrl": "http://127.0.0.1:3000", "traces": True},
                           {PREFIX: trace_route(f"http://127.0.0.1:{store_port}")})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_store_answers_a_trace_as_a_waterfall_and_lists_the_slowest(store_port):
    status, trace = fetch(store_port, f"/v1/traces/{TRACE}")
    assert status == 200 and trace["span_count"] == 2 and trace["duration_ms"] == 4.0
    assert [(s["service"], s["depth"], s["offset_ms"]) for s in trace["spans"]] == [("gateway", 0, 0.0),
                                                                                     ("automation", 1, 1.0)]
    assert trace["spans"][1]["attributes"] == {"rpc.grpc.status_code": 0}
    status, listing = fetch(store_port, "/v1/traces?slowest=5")
    assert status == 200 and [t["trace_id"] for t in listing["traces"]] == [TRACE]


@pytest.mark.parametrize(("path", "method", "status"), [
    ("/v1/traces/" + "1" * 32, "GET", 404), ("/v1/traces/not-hex", "GET", 400), ("/v1/traces?slowest=0", "GET", 400),
    ("/v1/traces?slowest=101", "GET", 400), ("/v1/traces?slowest=x", "GET", 400), ("/elsewhere", "GET", 404),
    (f"/v1/traces/{TRACE}", "POST", 405), (f"/v1/traces/{TRACE}", "DELETE", 405),
])
def test_the_store_refuses_what_it_cannot_answer_with_a_reason(store_port, path, method, status):
    answered, body = fetch(store_port, path, method)
    assert answered == status and body["error"]


def test_the_page_server_relays_the_store_and_says_so_in_its_config(page_port):
    status, config = fetch(page_port, "/config.json")
    assert status == 200 and config["traces"] is True
    status, trace = fetch(page_port, f"{PREFIX}{TRACE}")
    assert status == 200 and trace["trace_id"] == TRACE
    assert fetch(page_port, f"{PREFIX}{'1' * 32}") == (404, {"error": "no spans of this trace in the store (yet, "
                                                                       "or it was not sampled)"})
    for bad in ("ABC", "../../etc/passwd", "0af7651916cd43dd8448eb211c80319c/../x", TRACE.upper()):
        assert fetch(page_port, f"{PREFIX}{bad}")[0] in (400, 404), bad


def test_a_store_that_does_not_answer_is_a_503_not_a_hang(tmp_path: Path):
    (tmp_path / "index.html").write_text("<!doctype html>")
    server = create_server(tmp_path, "127.0.0.1", 0, {"gatewayUrl": "http://127.0.0.1:3000"},
                           {PREFIX: trace_route(f"http://127.0.0.1:{free_port()}")})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        status, body = fetch(server.server_address[1], f"{PREFIX}{TRACE}")
        assert status == 503 and "does not answer" in body["error"]
    finally:
        server.shutdown()
        server.server_close()
