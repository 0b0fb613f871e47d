"""The fuzz test: hypothesis-made Execute requests through the gateway (native gRPC) over every
tool's input and arguments, hostile numbers, spellings of addresses, URLs and metadata
included. Every call gets a clear status from the services, never INTERNAL, UNKNOWN or a hang;
and afterwards no host was ejected, no service has a series more than before, and no
process grew by more than a bound.

Network tools only ever reach loopback ports this test serves or knows closed: the services'
default allowlist (127.0.0.0/8, ::1, localhost) refuses anything else before sending anything,
and a name outside it causes no DNS question."""

from __future__ import annotations

import re
import socket
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from opsconductor.automation.v1 import automation_pb2
from services.common.names import AUTOMATION_SERVICE
from services.common.numbers import strict_int
from tests.support.calls import automation_stub, error_info
from tests.support.procs import health_status

pytestmark = pytest.mark.slow

TOOLS = ["echo", "delay", "dns_lookup", "tcp_check", "http_check"]
CLEAR = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED,
         grpc.StatusCode.RESOURCE_EXHAUSTED}
CLIENT_TIMEOUT_S = 5.0  # well above the slowest call made here (a 300 ms delay, a 300 ms check)
RSS_GROWTH_BOUND = 60e6


class _Target(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = b"fuzz target"
        self.send_response(200 if len(self.path) < 100 else 302)
        self.send_header("Location", "http://127.0.0.1/elsewhere?token=SECRET")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


_SERVER = ThreadingHTTPServer(("127.0.0.1", 0), _Target)
_SERVER.daemon_threads = True
OPEN_PORT = _SERVER.server_port
with socket.socket() as _closed:
    _closed.bind(("127.0.0.1", 0))
    CLOSED_PORT = _closed.getsockname()[1]

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=120)  # valid UTF-8 only
visible = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
# Numbers as callers may spell them: plain, signed, huge, in other scripts, with separators.
quick = st.integers(0, 300).map(str)
hostile_numbers = st.one_of(
    st.integers(60_001, 10**15).map(str), st.integers(-10**6, -1).map(str), visible,
    st.sampled_from(["9" * 5000, "9" * 13, "²", "٣٠٠", "１２", "①", "1e3", "0x10", " 1", "+5", "1_000", "", "-0",
                     "nan", "1.5", "0" * 40 + "7"]))
numbers = st.one_of(quick, quick, hostile_numbers)
valid_hosts = st.sampled_from(["127.0.0.1", "localhost", "localhost.", "[::1]", "LOCALHOST", "127.0.0.9"])
hostile_hosts = st.sampled_from([
    "0.0.0.0", "[::]", "0177.0.0.1", "0x7f.0.0.1", "2130706433", "127.1", "[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]",
    "169.254.169.254", "[fe80::1%25lo]", "１２７.0.0.1", "10.0.0.1", "example.com", "x.localhost", "127.0.0.1.",
    "user@127.0.0.1", "127.0.0.1\x00", "ⓛocalhost", "[::1", "a" * 300])
hosts = st.one_of(valid_hosts, valid_hosts, hostile_hosts)
# Only ports this test serves or knows closed, and spellings that are no port at all.
known_ports = st.sampled_from([str(OPEN_PORT), str(CLOSED_PORT)])
ports = st.one_of(known_ports, known_ports, known_ports, hostile_numbers)
urls = st.builds(lambda scheme, host, port, path: f"{scheme}://{host}{':' + port if port is not None else ''}{path}",
                 st.sampled_from(["http", "https", "HTTP", "ftp", "javascript"]), hosts,
                 st.one_of(st.none(), ports), st.one_of(st.just("/"), st.just(""), text.map(lambda t: "/" + t),
                                                          st.just("/?token=SECRET")))
inputs = {
    "echo": text,
    "delay": st.one_of(text.filter(lambda t: not any(c.isdigit() for c in t)), numbers.map(lambda n: f"delay {n}")),
    "dns_lookup": st.one_of(hosts, text),
    "tcp_check": st.one_of(st.builds(lambda h, p: f"{h}:{p}", hosts, ports), text),
    "http_check": st.one_of(urls, text),
}
# Each tool's own arguments, mostly with values that keep a call short, and made-up ones.
arguments = {
    "echo": st.dictionaries(st.sampled_from(["ms", "x", "timeout_ms"]), numbers, max_size=2),
    "delay": st.dictionaries(st.just("ms"), numbers, max_size=1),
    "dns_lookup": st.dictionaries(st.just("timeout_ms"), numbers, max_size=1),
    "tcp_check": st.dictionaries(st.just("timeout_ms"), numbers, max_size=1),
    "http_check": st.dictionaries(st.sampled_from(["timeout_ms", "timeout_ms", "follow"]), numbers, max_size=2),
}
per_tool = st.one_of(*(st.builds(automation_pb2.ExecuteRequest, input=inputs[tool], tool=st.just(tool),
                                 arguments=arguments[tool]) for tool in TOOLS))
wild = st.builds(
    automation_pb2.ExecuteRequest,
    input=st.one_of(text, st.just(""), st.just("x" * (64 * 1024 + 1))),
    tool=st.one_of(st.just(""), st.sampled_from(TOOLS), text.filter(lambda t: len(t) < 80)),
    platform=st.one_of(st.just(""), st.sampled_from(["linux", "darwin", "windows"]), visible),
    trace_id=st.one_of(st.just(""), st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True), text),
    arguments=st.dictionaries(st.one_of(st.sampled_from(["ms", "timeout_ms", "port"]), text), numbers, max_size=4),
)
requests = st.one_of(per_tool, per_tool, wild)
metadata = st.lists(st.tuples(st.sampled_from(["x-trace-id", "traceparent", "x-canary", "x-custom", "grpc-timeout"]),
                              header_text), max_size=3, unique_by=lambda item: item[0])


def slow_on_purpose(request: automation_pb2.ExecuteRequest) -> bool:
    """A delay the caller asked to last about as long as its own deadline, or longer."""
    if request.tool not in ("delay", ""):
        return False
    raw = request.arguments.get("ms")
    if raw is None:
        number = re.search(r"-?[0-9]+", request.input, re.ASCII)
        raw = number.group() if number else "1000"
    ms = strict_int(raw)
    return ms is not None and CLIENT_TIMEOUT_S * 1000 * 0.8 <= ms <= 60_000


def series_count(address: str) -> int:
    text_ = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    return sum(len(family.samples) for family in text_string_to_metric_families(text_))


def ejections(admin_url: str) -> int:
    body = urllib.request.urlopen(f"{admin_url}/stats?filter=outlier_detection.ejections_enforced_total",
                                  timeout=5).read().decode()
    return sum(int(line.rsplit(":", 1)[1]) for line in body.splitlines() if line.strip())


@pytest.fixture(scope="module")
def baseline(mesh):
    """Before the fuzzing: series per metrics page and RSS per service, after one plain call."""
    threading.Thread(target=_SERVER.serve_forever, daemon=True).start()
    channel, stub = automation_stub(mesh.gateway.target)
    with channel:
        for pin in ("always", "never"):
            stub.Execute(automation_pb2.ExecuteRequest(input="ping", tool="echo"), timeout=5,
                         metadata=(("x-canary", pin),))
    pages = [address for pair in mesh.pairs() for address in (pair.automation_metrics, pair.pipeline_metrics)]
    return ({address: series_count(address) for address in pages},
            {process.name: psutil.Process(process.pid).memory_info().rss for process in mesh.services()})


@pytest.fixture(scope="module")
def stub(mesh, baseline):
    channel, stub = automation_stub(mesh.gateway.target)
    yield stub
    channel.close()


@pytest.mark.timeout(240)
@settings(max_examples=600, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=requests, headers=metadata)
def test_fuzz_every_tool_through_the_gateway(stub, request, headers):
    try:
        reply = stub.Execute(request, timeout=CLIENT_TIMEOUT_S, metadata=headers)
    except grpc.RpcError as error:
        code = error.code()
        event(code.name)  # the spread shows with --hypothesis-show-statistics
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and slow_on_purpose(request):
            return
        assert code in CLEAR, f"{code.name}: {error.details()} for {request!r} {headers!r}"
        # Every status here comes from a service, with its ErrorInfo; a DEADLINE_EXCEEDED
        # without one would be the client's own timeout, that is a hang.
        assert error_info(error).domain == "opsconductor", f"{code.name}: {error.details()}"
        assert len(error.details()) <= 300 and "SECRET" not in error.details()
    else:
        event(f"OK {reply.tool}")
        assert reply.success and reply.tool in TOOLS and reply.pool in ("stable", "canary")
        assert "SECRET" not in reply.output


def test_after_the_fuzzing_no_host_was_ejected_no_series_minted_and_memory_is_bounded(mesh, baseline, figure):
    series_before, rss_before = baseline
    assert ejections(mesh.gateway.admin.base_url) == 0
    assert all(health.healthy == health.total for health in mesh.gateway.admin.pool_health().values())
    assert {address: series_count(address) for address in series_before} == series_before
    growth = {process.name: psutil.Process(process.pid).memory_info().rss - rss_before[process.name]
              for process in mesh.services()}
    assert max(growth.values()) < RSS_GROWTH_BOUND, growth
    assert all(process.running() for process in [*mesh.services(), mesh.gateway.process])
    assert health_status(mesh.gateway.target, AUTOMATION_SERVICE) == health_pb2.HealthCheckResponse.SERVING
    figure("fuzz.largest_rss_growth", max(growth.values()) / 1e6, "MB")
