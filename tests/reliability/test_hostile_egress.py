"""The network tools against a DNS that lies, in a private network namespace (netns.py): a
name is resolved once, every address is checked, and the connection goes to exactly the
checked address with the name kept in the Host header and TLS SNI; names that are not listed
cause no DNS question at all; a resolver that never answers delays nothing else, every lookup
ends within its call's deadline, and SIGTERM is not held up by lookups in flight."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from opsconductor.pipeline.v1 import pipeline_pb2, pipeline_pb2_grpc
from tests.support.netns import TLS_NAME, Sandbox, start_sandbox

pytestmark = pytest.mark.slow

DNS = {
    "localhost": ["127.0.0.2"],  # /etc/hosts answers first (127.0.0.1); DNS would say 127.0.0.2
    "127.0.0.1": ["127.0.0.2"],  # what "127.0.0.1." resolves to if anything asks DNS for it
    "rebind.test": ["127.0.0.2"],
    "inside.test": ["127.0.0.1"],
    "mixed.test": ["127.0.0.2", "127.0.0.1"],
    "private.test": ["10.0.0.5", "192.168.7.7"],
    "mapped.test": ["::ffff:127.0.0.1"],
    TLS_NAME: ["127.0.0.1"],
}
ALLOWLIST = "127.0.0.1/32,::1,localhost,*.test"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    box = start_sandbox(tmp_path_factory.mktemp("netns"), DNS, {"TOOL_ALLOWLIST": ALLOWLIST})
    yield box
    box.stop()


def execute(sandbox: Sandbox, tool: str, text: str, timeout: float = 10, **arguments: str):
    """(code name, parsed output or details) of one pipeline Execute."""
    with grpc.insecure_channel(sandbox.target) as channel:
        stub = pipeline_pb2_grpc.PipelineServiceStub(channel)
        try:
            reply = stub.Execute(pipeline_pb2.ExecuteRequest(input=text, tool=tool, arguments=arguments,
                                                             trace_id=uuid.uuid4().hex), timeout=timeout)
        except grpc.RpcError as error:
            return error.code().name, error.details()
    return "OK", json.loads(reply.output)


def reached(sandbox: Sandbox, address: str) -> list[dict]:
    return [hit for hit in sandbox.hits() if hit["address"] == address]


# name as typed -> what tcp_check and http_check get
DESTINATIONS = {
    "localhost.": "OK",  # the hosts file's 127.0.0.1, never DNS's 127.0.0.2
    "localhost": "OK",
    "inside.test": "OK",
    "INSIDE.test.": "OK",
    "mixed.test": "OK",  # only its checked address, 127.0.0.1
    "rebind.test": "PERMISSION_DENIED",
    "REBIND.TEST.": "PERMISSION_DENIED",
    "127.0.0.1.": "PERMISSION_DENIED",  # a name, and not a listed one
    "private.test": "PERMISSION_DENIED",
    "mapped.test": "PERMISSION_DENIED",
    "127.0.0.2": "PERMISSION_DENIED",
}


@pytest.mark.parametrize("name", list(DESTINATIONS))
def test_connections_go_only_to_checked_addresses(sandbox, name):
    port = sandbox.http_port
    for tool, text in (("tcp_check", f"{name}:{port}"), ("http_check", f"http://{name}:{port}/probe")):
        code, output = execute(sandbox, tool, text)
        assert code == DESTINATIONS[name], (tool, text, code, output)
        if code == "OK":
            assert output.get("open") is True or output.get("status") == 200, (tool, output)
        elif name != "127.0.0.2":  # what a name resolved to is never shown
            assert "127.0.0.2" not in output and "10.0.0.5" not in output, output
    assert reached(sandbox, "127.0.0.2") == [], "a connection reached an address that was never allowed"


def test_http_check_connects_to_the_checked_address_and_keeps_the_name(sandbox):
    port = sandbox.http_port
    code, output = execute(sandbox, "http_check", f"http://inside.test:{port}/kept?token=SECRET")
    assert code == "OK" and output["status"] == 200, output
    assert "SECRET" not in json.dumps(output)
    (hit,) = [h for h in reached(sandbox, "127.0.0.1") if h.get("path") == "/kept?token=SECRET"]
    assert hit["host"] == f"inside.test:{port}"
    # TLS: the handshake goes to the checked address and names the host in its SNI (the
    # target's certificate is self-signed, so the check itself reports a failure).
    code, output = execute(sandbox, "http_check", f"https://{TLS_NAME}:{sandbox.tls_port}/")
    assert code == "OK" and output["ok"] is False, output
    assert {"address": "127.0.0.1", "sni": TLS_NAME} in sandbox.hits()


def test_names_that_are_not_listed_cause_no_dns_question(sandbox):
    asked_before = len(sandbox.questions())
    for text in ("evil.example", "127.0.0.1.", "localhost.evil.example", "2130706433", "test", "xn--80ak6aa92e.com"):
        code, _ = execute(sandbox, "dns_lookup", text)
        assert code in ("PERMISSION_DENIED", "INVALID_ARGUMENT"), (text, code)
    assert sandbox.questions()[asked_before:] == []
    code, output = execute(sandbox, "dns_lookup", "rebind.test")  # a listed name is looked up, once
    assert code == "OK" and output["addresses"] == ["127.0.0.2"]
    assert "rebind.test" in sandbox.questions()[asked_before:]


def test_a_resolver_that_never_answers_holds_up_nothing_else(sandbox, figure):
    started = time.monotonic()
    with ThreadPoolExecutor(24) as workers:
        stuck = [workers.submit(execute, sandbox, "dns_lookup", f"n{i}.blackhole.test", 20, timeout_ms="3000")
                 for i in range(20)]
        time.sleep(0.3)  # the stuck lookups are in flight
        quick = time.monotonic()
        assert execute(sandbox, "dns_lookup", "localhost")[0] == "OK"
        localhost_s = time.monotonic() - quick
        quick = time.monotonic()
        code, output = execute(sandbox, "tcp_check", f"127.0.0.1:{sandbox.http_port}")
        tcp_s = time.monotonic() - quick
        answers = [future.result() for future in stuck]
    assert code == "OK" and output["open"] is True, output
    assert localhost_s < 1 and tcp_s < 1, (localhost_s, tcp_s)
    for code, output in answers:
        assert code == "OK" and output["found"] is False and "no answer" in output["error"], output
    assert time.monotonic() - started < 6
    figure("egress.localhost_lookup_while_20_lookups_hang", localhost_s * 1000, "ms")


def test_a_lookup_ends_within_its_call_s_deadline(sandbox):
    started = time.monotonic()
    code, output = execute(sandbox, "dns_lookup", "deadline.blackhole.test", 1.0, timeout_ms="10000")
    assert code == "OK" and output["found"] is False, (code, output)  # answered, before the deadline
    assert time.monotonic() - started < 1.0


def test_sigterm_is_not_held_up_by_lookups_in_flight(tmp_path, figure):
    box = start_sandbox(tmp_path / "shutdown", DNS, {"TOOL_ALLOWLIST": ALLOWLIST, "SHUTDOWN_GRACE_S": "1"})
    try:
        with ThreadPoolExecutor(10) as workers:
            calls = [workers.submit(execute, box, "dns_lookup", f"s{i}.blackhole.test", 30, timeout_ms="10000")
                     for i in range(10)]
            time.sleep(0.5)
            ended = box.stop()
            answers = [future.result() for future in calls]
    finally:
        box.stop()
    assert ended["code"] == 0 and ended["seconds"] < 3, ended
    assert {code for code, _ in answers} <= {"CANCELLED", "UNAVAILABLE"}, answers
    for line in box.pipeline_log().splitlines():
        record = json.loads(line)  # every line is JSON
        assert record["level"] not in ("ERROR", "CRITICAL"), line
    figure("egress.sigterm_with_10_lookups_hanging", ended["seconds"], "s")
