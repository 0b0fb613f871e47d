"""The page's static server over real loopback HTTP: what it serves, with which headers, and
what it refuses."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.page.server import ApiReply, create_server
from tests.support.procs import free_port, wait_for

JS = "export const answer = 42;\n" * 200  # big enough to be worth compressing


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    """A built page in miniature, with a secret beside it that must never be served."""
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><div id=app></div>")
    (root / "config.json").write_text('{"gatewayUrl": "http://from-disk:1"}')
    (root / "assets" / "index-abc123.js").write_text(JS)
    (root / "assets" / "index-abc123.css").write_text("body{margin:0}")
    (root / "assets" / "logo.svg").write_text("<svg/>")
    (root / ".env").write_text("SECRET=1")
    (tmp_path / "secret.txt").write_text("outside the page")
    (root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    return root


def _serve(directory: Path, config: dict | None, apis: dict | None = None) -> Iterator[int]:
    server = create_server(directory, "127.0.0.1", 0, config, apis)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def port(dist: Path) -> Iterator[int]:
    yield from _serve(dist, {"gatewayUrl": "http://127.0.0.1:3000"})


def fetch(port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
          ) -> tuple[int, http.client.HTTPMessage, bytes]:
    """A raw request: http.client sends the path exactly as given (no normalising of ..)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def test_index_is_html_revalidated_and_locked_down(port: int) -> None:
    for path in ("/", "/index.html"):
        status, headers, body = fetch(port, path)
        assert status == 200
        assert body.startswith(b"<!doctype html>")
        assert headers["Server"] == "opsconductor-page"
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert headers["Cache-Control"] == "no-cache"
        assert headers["X-Content-Type-Options"] == "nosniff"
        csp = headers["Content-Security-Policy"]
        assert "connect-src 'self' http://127.0.0.1:3000" in csp
        assert "script-src 'self'" in csp


def test_config_comes_from_memory_not_disk(port: int) -> None:
    status, headers, body = fetch(port, "/config.json")
    assert status == 200
    assert json.loads(body) == {"gatewayUrl": "http://127.0.0.1:3000"}
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-cache"


def test_config_from_disk_when_none_given(dist: Path) -> None:
    for port in _serve(dist, None):
        status, headers, body = fetch(port, "/config.json")
        assert status == 200 and json.loads(body) == {"gatewayUrl": "http://from-disk:1"}
        # The policy follows the gateway the page will really call.
        assert "connect-src 'self' http://from-disk:1" in headers["Content-Security-Policy"]


@pytest.mark.parametrize(("path", "content_type"), [
    ("/assets/index-abc123.js", "text/javascript; charset=utf-8"),
    ("/assets/index-abc123.css", "text/css; charset=utf-8"),
    ("/assets/logo.svg", "image/svg+xml"),
])
def test_hashed_assets_are_immutable_with_exact_types(port: int, path: str, content_type: str) -> None:
    status, headers, _ = fetch(port, path)
    assert status == 200
    assert headers["Content-Type"] == content_type
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_gzip_only_when_asked(port: int) -> None:
    status, headers, body = fetch(port, "/assets/index-abc123.js", headers={"Accept-Encoding": "gzip, br"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Vary"] == "Accept-Encoding"
    assert int(headers["Content-Length"]) == len(body) < len(JS)
    assert gzip.decompress(body).decode() == JS

    _, plain_headers, plain = fetch(port, "/assets/index-abc123.js", headers={"Accept-Encoding": "gzip;q=0"})
    assert plain_headers["Content-Encoding"] is None
    assert plain.decode() == JS
    assert plain_headers["ETag"] != headers["ETag"]


def test_etag_revalidation_gives_304(port: int) -> None:
    _, headers, _ = fetch(port, "/index.html")
    status, again, body = fetch(port, "/index.html", headers={"If-None-Match": headers["ETag"]})
    assert status == 304
    assert body == b""
    assert again["ETag"] == headers["ETag"]
    assert fetch(port, "/index.html", headers={"If-None-Match": '"other"'})[0] == 200


def test_head_reports_length_without_body(port: int) -> None:
    status, headers, body = fetch(port, "/assets/index-abc123.css", method="HEAD")
    assert status == 200
    assert body == b""
    assert headers["Content-Length"] == str(len("body{margin:0}"))


@pytest.mark.parametrize("path", [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/assets/../../secret.txt",
    "/assets/%2e%2e/%2e%2e/secret.txt",
    "/escape.txt",  # a symlink out of the tree
    "/.env",
    "/assets/",
    "/missing.js",
    "/index.html%00.js",
])
def test_refuses_anything_outside_the_page(port: int, path: str) -> None:
    status, _, body = fetch(port, path)
    assert status in (400, 404)
    assert b"outside the page" not in body and b"SECRET" not in body


def test_only_get_and_head(port: int) -> None:
    status, headers, _ = fetch(port, "/index.html", method="POST")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


def test_health_endpoint(port: int) -> None:
    status, headers, body = fetch(port, "/healthz")
    assert (status, body) == (200, b"ok\n")
    assert headers["Cache-Control"] == "no-store"


def test_refuses_bad_setups(dist: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="index.html"):
        create_server(tmp_path / "nowhere", "127.0.0.1", 0, None)
    with pytest.raises(ValueError, match="gatewayUrl"):
        create_server(dist, "127.0.0.1", 0, {"timeoutMs": 5})


def test_command_serves_then_stops_cleanly_on_sigterm(dist: Path, tmp_path: Path) -> None:
    port = free_port()
    log = open(tmp_path / "page.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "services", "page", "--directory", str(dist), "--addr", f"127.0.0.1:{port}",
         "--gateway-url", "http://gw.example:3000"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, "LOG_LEVEL": "INFO"},
        cwd=Path(__file__).resolve().parents[2])
    log.close()
    try:
        def healthy() -> bool:
            assert process.poll() is None, (tmp_path / "page.log").read_text()
            try:
                return fetch(port, "/healthz")[0] == 200
            except OSError:
                return False

        wait_for(healthy, 15, "the page server to answer /healthz")
        assert json.loads(fetch(port, "/config.json")[2]) == {"gatewayUrl": "http://gw.example:3000",
                                                               "traces": False}
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log_lines = [json.loads(line) for line in (tmp_path / "page.log").read_text().splitlines()]
    assert any(line["message"] == "GET /config.json 200" for line in log_lines)


def test_api_routes_answer_by_prefix_with_the_page_headers(dist: Path) -> None:
    seen: list[tuple[str, str]] = []

    def route(method: str, path: str, headers: dict[str, str]) -> ApiReply:
        seen.append((method, path))
        return ApiReply(200, b'{"ok": true}')

    server = _serve(dist, {"gatewayUrl": "http://127.0.0.1:3000"}, {"/api/demo/": route})
    port = next(server)
    try:
        status, headers, body = fetch(port, "/api/demo/x?y=1")
        assert (status, json.loads(body)) == (200, {"ok": True})
        assert headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "no-store"
        assert headers["X-Content-Type-Options"] == "nosniff" and "connect-src" in headers["Content-Security-Policy"]
        assert fetch(port, "/api/demo/x", method="POST")[0] == 405  # the page server is read-only
        assert fetch(port, "/api/other")[0] == 404  # no route: looked up as a file, and there is none
        assert seen == [("GET", "/api/demo/x?y=1")]
    finally:
        server.close()
