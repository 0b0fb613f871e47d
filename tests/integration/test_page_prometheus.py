"""The page server's read-only way to Prometheus, over real loopback HTTP against a fake
Prometheus that records what reaches it: the five reads pass with their parameters (and a
timeout of ours), every other path, method and parameter is refused before anything reaches
Prometheus, and a slow, down, huge or unconfigured Prometheus gets a status that says so.
Also the rollout state the mesh view reads."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from services.page import prometheus, rollout
from services.page.server import create_server
from tests.support.procs import free_port

PREFIX = prometheus.PREFIX
TIMEOUT_S = 0.5


@dataclass
class FakePrometheus:
    """Answers every request with `body` after `delay_s`, and remembers each one."""

    body: bytes = b'{"status": "success", "data": {"resultType": "vector", "result": []}}'
    status: int = 200
    delay_s: float = 0.0
    seen: list[tuple[str, str]] = field(default_factory=list)  # (method, path with query)


@pytest.fixture
def fake() -> Iterator[tuple[FakePrometheus, str]]:
    state = FakePrometheus()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            state.seen.append((self.command, self.path))
            time.sleep(state.delay_s)  # the slow Prometheus under test, not a wait for readiness
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            try:
                self.wfile.write(state.body)
            except OSError:
                pass  # the page server gave up on us: that is the point of the timeout

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _page(tmp_path: Path, prometheus_url: str, rollout_file: str = "", max_bytes: int = 1 << 20) -> Iterator[int]:
    """A page server on a free port (yielded), stopped afterwards."""
    (tmp_path / "dist").mkdir(exist_ok=True)
    (tmp_path / "dist" / "index.html").write_text("<!doctype html>")
    (tmp_path / "dist" / "mesh.html").write_text("<!doctype html><div id=mesh></div>")
    apis = {PREFIX + "/": prometheus.prometheus_route(prometheus_url, TIMEOUT_S, max_bytes),
            rollout.PATH: rollout.rollout_route(rollout_file)}
    server = create_server(tmp_path / "dist", "127.0.0.1", 0, {"gatewayUrl": "http://127.0.0.1:1"}, apis)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def page(tmp_path: Path, fake) -> Iterator[tuple[int, FakePrometheus]]:
    state, url = fake
    with _page(tmp_path, url) as port:
        yield port, state


def request(port: int, path: str, method: str = "GET") -> tuple[int, dict, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    started = time.monotonic()
    try:
        connection.request(method, path)
        response = connection.getresponse()
        body = response.read()
        elapsed = time.monotonic() - started
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            data = {"raw": body.decode(errors="replace")}
        return response.status, data, elapsed
    finally:
        connection.close()


@pytest.mark.parametrize(("path", "params"), [
    ("/api/v1/query", {"query": "up", "time": "1700000000"}),
    ("/api/v1/query_range", {"query": 'sum(rate(x{a="b"}[1m]))', "start": "1", "end": "61", "step": "5"}),
    ("/api/v1/query_exemplars", {"query": "ai_request_errors_total", "start": "1", "end": "2"}),
    ("/api/v1/rules", {"type": "alert"}),
    ("/api/v1/alerts", {}),
])
def test_the_five_reads_are_forwarded_with_their_parameters(page, path, params) -> None:
    port, fake = page
    query = ("?" + urllib.parse.urlencode(params)) if params else ""
    status, data, _ = request(port, PREFIX + path + query)
    assert status == 200 and data["status"] == "success"
    [(method, forwarded)] = fake.seen
    parts = urllib.parse.urlsplit(forwarded)
    assert method == "GET" and parts.path == path
    sent = dict(urllib.parse.parse_qsl(parts.query))
    expected = dict(params)
    if path in ("/api/v1/query", "/api/v1/query_range"):
        expected["timeout"] = f"{TIMEOUT_S:g}s"  # Prometheus stops evaluating when we stop waiting
    assert sent == expected


@pytest.mark.parametrize("path", [
    "/api/v1/admin/tsdb/delete_series?match[]=up",
    "/api/v1/admin/tsdb/snapshot",
    "/api/v1/admin/tsdb/clean_tombstones",
    "/api/v1/series?match[]=up",
    "/api/v1/labels",
    "/api/v1/label/job/values",
    "/api/v1/targets",
    "/api/v1/status/config",
    "/api/v1/status/flags",
    "/api/v1/write",
    "/api/v1/otlp/v1/metrics",
    "/federate?match[]=up",
    "/-/quit",
    "/-/reload",
    "/graph",
    "/metrics",
    "",
    "/",
    "/api/v1/query/../admin/tsdb/snapshot",
    "/api/v1/%71uery",  # an encoded "q": only the literal paths are forwarded
    "/api/v2/query",
])
def test_every_other_prometheus_path_is_refused_before_it_reaches_prometheus(page, path) -> None:
    port, fake = page
    status, data, _ = request(port, PREFIX + path)
    assert status in (400, 404), (path, status, data)
    assert fake.seen == []


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
@pytest.mark.parametrize("path", ["/api/v1/query?query=up", "/api/v1/admin/tsdb/delete_series"])
def test_every_other_method_is_refused(page, method, path) -> None:
    port, fake = page
    status, _, _ = request(port, PREFIX + path, method)
    assert status == 405
    assert fake.seen == []


@pytest.mark.parametrize("query", [
    "query=up&stats=all",  # an extra parameter Prometheus knows but the view has no use for
    "query=up&query=down",  # one value each: no smuggling a second query past a check
    "query=up&timeout=10m",  # the timeout is ours to set
    "query=%ff",  # not UTF-8
    "query=" + "x" * (prometheus.MAX_QUERY_STRING + 1),
])
def test_unknown_repeated_or_oversized_parameters_are_refused(page, query) -> None:
    port, fake = page
    status, data, _ = request(port, f"{PREFIX}/api/v1/query?{query}")
    assert status in (400, 414) and data["status"] == "error", data
    assert fake.seen == []


def test_a_slow_prometheus_is_answered_with_a_timeout_status(page) -> None:
    port, fake = page
    fake.delay_s = TIMEOUT_S * 6
    status, data, elapsed = request(port, f"{PREFIX}/api/v1/query?query=up")
    assert status == 504 and data["errorType"] == "timeout", data
    assert elapsed < TIMEOUT_S * 4, f"the page server waited {elapsed:.2f} s for a {TIMEOUT_S} s timeout"


def test_a_prometheus_that_is_down_is_answered_as_unreachable(tmp_path) -> None:
    with _page(tmp_path, f"http://127.0.0.1:{free_port()}") as port:
        status, data, _ = request(port, f"{PREFIX}/api/v1/alerts")
        assert status == 502 and data["errorType"] == "unavailable", data
        assert "127.0.0.1" not in data["error"], "no internal address in what the browser sees"


def test_an_answer_over_the_size_bound_is_refused(tmp_path, fake) -> None:
    state, url = fake
    state.body = b'{"status": "success", "data": "' + b"x" * 200_000 + b'"}'
    with _page(tmp_path, url, max_bytes=100_000) as port:
        status, data, _ = request(port, f"{PREFIX}/api/v1/query?query=up")
        assert status == 502 and data["errorType"] == "too_large", data


def test_prometheus_refusing_a_query_reaches_the_view_as_it_is(page) -> None:
    port, fake = page
    fake.status, fake.body = 400, b'{"status": "error", "errorType": "bad_data", "error": "parse error"}'
    status, data, _ = request(port, f"{PREFIX}/api/v1/query?query=sum(")
    assert (status, data["errorType"], data["error"]) == (400, "bad_data", "parse error")


def test_without_a_prometheus_every_read_says_none_is_configured(tmp_path) -> None:
    with _page(tmp_path, "") as port:
        status, data, _ = request(port, f"{PREFIX}/api/v1/query?query=up")
        assert status == 503 and "configured" in data["error"], data


def test_mesh_is_the_second_view_of_the_page(page) -> None:
    port, _ = page
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/mesh")
    response = connection.getresponse()
    assert response.status == 200 and b'id=mesh' in response.read()
    assert response.getheader("Cache-Control") == "no-cache"


def test_the_rollout_state_is_served_with_its_age_and_none_is_said_plainly(tmp_path, fake) -> None:
    _, url = fake
    record = tmp_path / "rollout.json"
    with _page(tmp_path, url, str(record)) as port:
        assert request(port, rollout.PATH)[:2] == (200, {"running": False})
        record.write_text(json.dumps({"running": True, "weight": 50, "updated_at": time.time() - 30}))
        status, data, _ = request(port, rollout.PATH)
        assert status == 200 and data["running"] and data["weight"] == 50 and 29 <= data["age_s"] <= 40
        record.write_text("{half a file")
        status, data, _ = request(port, rollout.PATH)
        assert status == 200 and not data["running"] and "not a rollout record" in data["error"]
        assert request(port, rollout.PATH, "POST")[0] == 405
