"""Tools, allowlist, selector, runner and fault injection: plain Python, no sockets except
loopback listeners the tools are pointed at."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.common.config import FaultConfig
from services.common.errors import DestinationDeniedError, InjectedFaultError, UnknownToolError, ValidationError
from services.pipeline.allowlist import Allowlist
from services.pipeline.egress import Egress
from services.pipeline.faults import FaultInjector
from services.pipeline.runner import ToolRunner
from services.pipeline.selector import KeywordSelector, NoMatch, score
from services.pipeline.selector_eval import evaluate
from services.pipeline.tools import CATALOGUE, ToolContext
from tests.unit.fakes import FakeResolver

TOOLS = {tool.name: tool for tool in CATALOGUE}
LOOPBACK = ToolContext(Egress(Allowlist(["127.0.0.0/8", "::1", "localhost"]), FakeResolver()))


def run_tool(name: str, text: str, **arguments: str) -> str:
    tool = TOOLS[name]
    return asyncio.run(tool.run(text, tool.parse_arguments(arguments), LOOPBACK))


# --- tools -----------------------------------------------------------------------------------

def test_echo_answers_ping_with_pong_and_echoes_the_rest():
    assert run_tool("echo", "ping") == "pong"
    assert run_tool("echo", " PING ") == "pong"
    assert run_tool("echo", "hello\x00wörld") == "hello\x00wörld"


def test_delay_sleeps_the_given_time_and_reads_a_number_from_the_input():
    assert run_tool("delay", "x", ms="5") == "slept 5 ms"
    assert run_tool("delay", "wait 7 ms please") == "slept 7 ms"


def test_delay_is_cancelled_with_its_call():
    async def scenario() -> bool:
        task = asyncio.create_task(TOOLS["delay"].run("x", {"ms": 60_000}, LOOPBACK))
        await asyncio.sleep(0)
        task.cancel()
        try:
            await asyncio.wait_for(task, 1)
        except asyncio.CancelledError:
            return True
        return False

    assert asyncio.run(scenario())


def test_arguments_are_checked_by_name_type_and_range():
    with pytest.raises(ValidationError, match="takes no argument 'colour'"):
        TOOLS["echo"].parse_arguments({"colour": "red"})
    with pytest.raises(ValidationError, match="must be an integer"):
        TOOLS["delay"].parse_arguments({"ms": "soon"})
    with pytest.raises(ValidationError, match="between 0 and 60000"):
        TOOLS["delay"].parse_arguments({"ms": "60001"})
    assert TOOLS["tcp_check"].parse_arguments({}) == {"timeout_ms": 2000}


def test_dns_lookup_resolves_allowed_names_and_denies_others_before_any_lookup():
    report = json.loads(run_tool("dns_lookup", "localhost"))
    assert report["found"] and "127.0.0.1" in report["addresses"]
    with pytest.raises(DestinationDeniedError):
        run_tool("dns_lookup", "example.com")
    with pytest.raises(ValidationError):
        run_tool("dns_lookup", "not a host name")


def test_tcp_check_reports_open_and_closed_ports_as_findings():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        opened = json.loads(run_tool("tcp_check", f"127.0.0.1:{port}"))
    assert opened["open"] is True and opened["latency_ms"] >= 0
    closed = json.loads(run_tool("tcp_check", f"127.0.0.1:{port}"))  # listener gone
    assert closed["open"] is False and closed["error"]
    with pytest.raises(DestinationDeniedError):
        run_tool("tcp_check", "192.0.2.1:80")
    with pytest.raises(ValidationError):
        run_tool("tcp_check", "127.0.0.1:99999")


def test_http_check_reports_status_without_following_redirects():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "http://example.com/")
                self.end_headers()
                return
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        ok = json.loads(run_tool("http_check", f"{base}/"))
        assert ok["status"] == 200 and ok["ok"] and ok["bytes"] == 2
        moved = json.loads(run_tool("http_check", f"{base}/moved"))
        assert moved["status"] == 302 and moved["location"] == "http://example.com/"
    finally:
        server.shutdown()
    with pytest.raises(DestinationDeniedError):
        run_tool("http_check", "https://example.com/")
    with pytest.raises(ValidationError):
        run_tool("http_check", "ftp://127.0.0.1/")


# --- allowlist ---------------------------------------------------------------------------------

def test_allowlist_matches_networks_names_and_suffixes():
    allowlist = Allowlist(["10.0.0.0/8", "db.example", "*.corp.example", "::1"])
    address = ipaddress.ip_address
    assert allowlist.allows_address(address("10.1.2.3"), from_name=False)
    assert allowlist.allows_address(address("::1"), from_name=False)
    assert allowlist.allows_name("DB.example.") and allowlist.allows_name("api.corp.example")
    assert not allowlist.allows_name("corp.example") and not allowlist.allows_name("corp.example.evil")
    assert not allowlist.allows_address(address("11.0.0.1"), from_name=False)
    assert not allowlist.allows_name("localhost")


# --- selector ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("ping", "echo"), ("127.0.0.1:22", "tcp_check"), ("https://example.com/x", "http_check"),
    ("resolve example.org", "dns_lookup"), ("sleep 100", "delay"),
])
def test_selector_picks_the_tool_whose_shape_or_keywords_fit(text, expected):
    assert KeywordSelector(CATALOGUE).select(text, "linux").tool.name == expected


def test_selector_explains_its_score():
    points, reasons = score(TOOLS["tcp_check"], "is port 22 open on localhost")
    assert points == 2 and reasons == ("keywords: open, port",)


def test_selector_fails_clearly_when_nothing_fits_or_platform_has_no_tools():
    with pytest.raises(NoMatch, match="no linux tool matches"):
        KeywordSelector(CATALOGUE).select("qwxz zzq", "linux")
    with pytest.raises(NoMatch):
        KeywordSelector(CATALOGUE).select("ping", "windows")


def test_selector_cache_hits_expire_and_stay_bounded():
    now = [0.0]
    selector = KeywordSelector(CATALOGUE, cache_size=2, cache_ttl_s=10, timer=lambda: now[0])
    assert not selector.select("ping", "linux").cached
    assert selector.select("  PING ", "linux").cached  # normalised to the same key
    assert not selector.select("ping", "darwin").cached  # the platform is part of the key
    selector.select("sleep 1", "linux")  # third key evicts the least recently used
    assert not selector.select("ping", "linux").cached
    now[0] = 11
    assert not selector.select("ping", "linux").cached  # expired


def test_selector_accuracy_on_the_labelled_set_is_measured_not_assumed():
    evaluation = evaluate(KeywordSelector(CATALOGUE), "linux")
    assert evaluation.cases >= 20
    assert evaluation.correct + len(evaluation.misses) == evaluation.cases
    assert evaluation.accuracy >= 0.8, evaluation.misses


# --- runner ------------------------------------------------------------------------------------

def runner(bypass: bool) -> ToolRunner:
    return ToolRunner(CATALOGUE, KeywordSelector(CATALOGUE), LOOPBACK, bypass_llm=bypass, host_platform="linux")


def test_bypass_runs_echo_directly_for_ping_or_echo():
    assert runner(True).plan("ping", "", "").how == "bypass"
    assert runner(True).plan("anything", "echo", "").how == "bypass"
    assert runner(False).plan("ping", "", "").how == "selected"
    assert runner(True).plan("127.0.0.1:1", "", "").how == "selected"


def test_named_tools_are_resolved_in_the_catalogue_for_the_platform():
    assert runner(False).plan("x", "delay", "").how == "named"
    with pytest.raises(UnknownToolError, match="not in the catalogue"):
        runner(False).plan("x", "rm_rf", "")
    with pytest.raises(UnknownToolError, match="does not run on 'windows'"):
        runner(False).plan("x", "delay", "windows")


# --- fault injection ---------------------------------------------------------------------------

def test_every_nth_call_fails_deterministically():
    injector = FaultInjector(FaultConfig(every_n=3, rate=0, latency_ms=0))

    async def outcomes() -> list[bool]:
        results = []
        for _ in range(6):
            try:
                await injector.apply()
                results.append(True)
            except InjectedFaultError:
                results.append(False)
        return results

    assert asyncio.run(outcomes()) == [True, True, False, True, True, False]


def test_no_faults_unless_configured():
    injector = FaultInjector(FaultConfig(every_n=0, rate=0, latency_ms=0))
    for _ in range(100):
        asyncio.run(injector.apply())
