"""Every certificate of a running mesh renewed, by the clock (at two thirds of a short
lifetime) and on command, while calls flow through the gateway over both protocols and
straight to a service: no call fails, and every process is seen to take its new certificate."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections import Counter

import grpc
import pytest

from opsconductor.automation.v1 import automation_pb2
from opsconductor.identity import operator
from opsconductor.load import grpcweb
from opsconductor.observability import prometheus
from services.common.names import AUTOMATION_EXECUTE
from tests.support.calls import automation_stub
from tests.support.procs import wait_for
from tests.support.stack import start_stack, stop_stack

pytestmark = pytest.mark.slow

LIFETIME_S = 12  # renewed every 8 s by the clock
PING = automation_pb2.ExecuteRequest(input="ping", tool="echo")
SERVICES = ("stable-1-automation", "stable-1-pipeline", "canary-1-automation", "canary-1-pipeline")


@pytest.fixture
def stack(tmp_path):
    running = start_stack(tmp_path, "--no-page", "--scrape-interval", "1", "--cert-lifetime", str(LIFETIME_S))
    yield running
    stop_stack(running)


def reloads(stack, component: str) -> int:
    return open(stack.state.components[component].log).read().count('"message": "certificate reloaded"')


def automation_expiry(stack) -> float:
    metrics = operator.metrics_url(stack.state_dir, stack.state.replicas[0].automation_metrics)
    samples = prometheus.scrape(metrics, context=operator.ssl_context(stack.state_dir))
    return samples["opsconductor_certificate_expiry_timestamp_seconds"][0].value


def envoy_serials(stack) -> set[str]:
    """Serial numbers of the certificates Envoy presents now (its own, not the CA's)."""
    certs = json.load(urllib.request.urlopen(f"{stack.admin_url}/certs", timeout=5))["certificates"]
    return {entry["serial_number"] for cert in certs for entry in cert.get("cert_chain", ())}


def test_every_certificate_rotates_under_load_and_no_call_fails(stack):
    state = stack.state
    outcomes: Counter = Counter()
    stop = threading.Event()
    lock = threading.Lock()

    def count(outcome: str) -> None:
        with lock:
            outcomes[outcome] += 1

    def native() -> None:
        channel, stub = automation_stub(stack.gateway)
        with channel:
            while not stop.is_set():
                try:
                    stub.Execute(PING, timeout=10)
                    count("native OK")
                except grpc.RpcError as error:
                    count(f"native {error.code().name}")

    def web() -> None:
        while not stop.is_set():
            reply = grpcweb.call("127.0.0.1", stack.ports["gateway"], AUTOMATION_EXECUTE, PING.SerializeToString(), {})
            count("web OK" if reply.grpc_status == 0 else f"web {reply.grpc_status}")

    def direct() -> None:  # the operator's own certificate is renewed too
        replica = state.replicas[0]
        while not stop.is_set():
            channel, stub = stack.automation_stub(replica)
            with channel:
                for _ in range(20):
                    try:
                        stub.Execute(PING, timeout=10)
                        count("direct OK")
                    except grpc.RpcError as error:
                        count(f"direct {error.code().name}")

    workers = [threading.Thread(target=target) for target in (native, native, web, direct)]
    for worker in workers:
        worker.start()
    try:
        wait_for(lambda: sum(outcomes.values()) > 200, 30, "calls to flow")
        first_expiry = automation_expiry(stack)
        before = {name: reloads(stack, name) for name in SERVICES}
        seen_by_envoy = envoy_serials(stack)
        first_serials = set(seen_by_envoy)
        rotated = stack.cli("certs", "rotate", "-o", "json")  # a supervised change, like the canary's
        assert rotated.returncode == 0 and "gateway" in json.loads(rotated.stdout)["renewed"], rotated.stderr
        # Then the clock renews everything again (at 8 s of 12): two rotations of each certificate.
        wait_for(lambda: all(reloads(stack, name) >= before[name] + 2 for name in SERVICES), 40,
                 "every service to take two renewed certificates", interval=0.5)
        wait_for(lambda: len(seen_by_envoy.__ior__(envoy_serials(stack)) - first_serials) >= 2, 20,
                 "Envoy to present two renewed certificates", interval=0.2)
        settled = sum(outcomes.values())
        wait_for(lambda: sum(outcomes.values()) > settled + 200, 30, "calls to go on after the rotations")
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    failed = {outcome: n for outcome, n in outcomes.items() if not outcome.endswith(" OK")}
    assert not failed, outcomes
    assert min(outcomes["native OK"], outcomes["web OK"], outcomes["direct OK"]) > 50, outcomes
    # The services export the expiry of the certificate they now use: later than the first one's.
    expiry = automation_expiry(stack)
    # The command's renewal, then the clock's at two thirds of the new certificate's lifetime.
    assert expiry >= first_expiry + LIFETIME_S * 2 / 3 - 1, (first_expiry, expiry)
    # No private key (of the several each workload had) reached a log.
    logs = "".join(path.read_text(errors="replace") for path in stack.state_dir.rglob("*.log"))
    assert "PRIVATE KEY" not in logs
    for key in (stack.state_dir / "identity").rglob("tls.key"):
        body = "".join(key.read_text().splitlines()[1:-1])
        assert body[:40] not in logs, key
    # Prometheus still scrapes every target over mTLS, with its renewed certificate.
    assert all(sample.value == 1 for sample in prometheus.query(stack.prometheus_url, "up")), \
        prometheus.query(stack.prometheus_url, "up")
