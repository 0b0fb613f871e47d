"""`gate --prometheus URL` reads the Prometheus it is given (a cluster's, through a port-forward)
instead of the environment's, with no local stack needed, and refuses a URL that is not one."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from opsconductor.cli import exits
from opsconductor.cli.main import main


class _Prometheus(BaseHTTPRequestHandler):
    """Answers every instant query with one sample of value `value`, and records the query."""

    queries: list[str] = []
    value = "0"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).queries.append(parse_qs(urlsplit(self.path).query)["query"][0])
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [0, type(self).value]}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def prometheus():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Prometheus)
    _Prometheus.queries = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("environment", ["local", "production"])
def test_gate_reads_the_prometheus_it_is_given_without_a_local_stack(prometheus, tmp_path, environment, capsys):
    code = main(["gate", environment, "0.02", "--interval", "0.5", "--prometheus", prometheus,
                 "--state-dir" if environment == "local" else "--window", str(tmp_path) if environment == "local"
                 else "30s"])
    # No traffic in the answers (every value 0): inconclusive, never a pass, and never "no stack".
    assert code == exits.INCONCLUSIVE, capsys.readouterr()
    assert _Prometheus.queries and any("grpc_server_handled_total" in q or "ai_request" in q
                                       for q in _Prometheus.queries), _Prometheus.queries


@pytest.mark.parametrize("url", ["ftp://prometheus", "prometheus:9090", "http://", "http://h:99999",
                                 "http://" + "a" * 3000])
def test_gate_refuses_a_prometheus_that_is_not_an_http_url(url, capsys):
    with pytest.raises(SystemExit) as refused:
        main(["gate", "local", "1", "--prometheus", url])
    assert refused.value.code == exits.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an http(s) URL" in err and len(err) < 300
