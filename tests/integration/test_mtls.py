"""Mutual TLS between real processes: each way a caller can be wrong is refused, at the
handshake or with a status naming the identity it presented; the right callers get through;
probes get health, and only health, in plaintext."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from opsconductor.automation.v1 import automation_pb2, automation_pb2_grpc
from opsconductor.identity.stack import MeshIdentity, write_sds
from opsconductor.identity.store import IdentityStore
from opsconductor.identity.workloads import EDGE, mesh_workloads
from opsconductor.stack.replica import ServicePair, service_pair
from services.common import spiffe
from services.common.names import AUTOMATION_SERVICE, PIPELINE_SERVICE
from tests.support.calls import error_info
from tests.support.gateway import start_gateway
from tests.support.procs import wait_for

PING = automation_pb2.ExecuteRequest(input="ping", tool="echo")


@dataclass
class Mesh:
    identity: MeshIdentity
    stranger: IdentityStore  # the same workload names, signed by another CA
    pairs: dict[str, ServicePair]
    log_dir: Path

    def credentials(self, workload: str, store: IdentityStore | None = None) -> grpc.ChannelCredentials:
        files = (store or self.identity.store).files(workload)
        return grpc.ssl_channel_credentials(files.ca.read_bytes(), files.key.read_bytes(), files.cert.read_bytes())

    def channel(self, pool: str, service: str, workload: str, store: IdentityStore | None = None) -> grpc.Channel:
        target = getattr(self.pairs[pool], f"{service}_target")
        return grpc.secure_channel(target, self.credentials(workload, store),
                                   options=(("grpc.ssl_target_name_override", spiffe.server_name(pool, service)),))


@pytest.fixture(scope="module")
def mesh(tmp_path_factory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("mtls")
    identity = MeshIdentity(root / "state", lifetime_s=3600, edge=True)
    stranger = IdentityStore(root / "stranger", [*mesh_workloads(), EDGE], 3600)
    stranger.ensure()
    pairs: dict[str, ServicePair] = {}
    try:
        for pool in ("stable", "canary"):
            pairs[pool] = service_pair(root, pool, pool=pool,
                                       pipeline_env=identity.service_env(pool, "pipeline"),
                                       automation_env=identity.service_env(pool, "automation")).start()
        yield Mesh(identity, stranger, pairs, root)
    finally:
        for pair in pairs.values():
            pair.stop()
        identity.stop()


def health(channel: grpc.Channel, service: str = "") -> tuple[str, str]:
    """(code name, details or status name) of a health check over `channel`."""
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                              timeout=5)
        except grpc.RpcError as error:
            return error.code().name, error.details()
    return "OK", health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


@pytest.mark.parametrize("service", ["automation", "pipeline"])
def test_a_plaintext_caller_is_refused_at_the_handshake(mesh, service):
    target = getattr(mesh.pairs["stable"], f"{service}_target")
    code, details = health(grpc.insecure_channel(target))
    assert code == "UNAVAILABLE", details


@pytest.mark.parametrize("service", ["automation", "pipeline"])
def test_a_certificate_of_another_ca_is_refused_at_the_handshake(mesh, service):
    # It claims the very identity that is allowed in; only the signature is wrong.
    caller = "stable-automation" if service == "pipeline" else "gateway"
    code, details = health(mesh.channel("stable", service, caller, mesh.stranger))
    assert code == "UNAVAILABLE", details
    assert health(mesh.channel("stable", service, caller)) == ("OK", "SERVING")


@pytest.mark.parametrize("caller", ["canary-automation", "gateway", "operator", "stable-pipeline", "prometheus"])
def test_the_pipeline_refuses_every_identity_but_its_own_pools_automation(mesh, caller):
    code, details = health(mesh.channel("stable", "pipeline", caller), PIPELINE_SERVICE)
    identity = mesh.identity.store.workloads[caller].identity
    assert (code, details) == ("PERMISSION_DENIED", f"caller {identity} may not call grpc.health.v1.Health")


def test_the_pipeline_accepts_its_own_pools_automation(mesh):
    assert health(mesh.channel("canary", "pipeline", "canary-automation"), PIPELINE_SERVICE) == ("OK", "SERVING")


@pytest.mark.parametrize("caller", ["gateway", "operator"])
def test_the_automation_accepts_the_gateway_and_the_operator(mesh, caller):
    channel = mesh.channel("stable", "automation", caller)
    with channel:
        reply = automation_pb2_grpc.AutomationServiceStub(channel).Execute(PING, timeout=10)
    assert (reply.output, reply.pool) == ("pong", "stable")


@pytest.mark.parametrize("caller", ["stable-pipeline", "canary-automation", "prometheus"])
def test_the_automation_refuses_other_identities_naming_them(mesh, caller):
    channel = mesh.channel("stable", "automation", caller)
    with channel, pytest.raises(grpc.RpcError) as refused:
        automation_pb2_grpc.AutomationServiceStub(channel).Execute(PING, timeout=10)
    identity = mesh.identity.store.workloads[caller].identity
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details() == f"caller {identity} may not call {AUTOMATION_SERVICE}"


def test_a_certificate_without_an_identity_is_unauthenticated_naming_what_it_names(mesh):
    code, details = health(mesh.channel("stable", "automation", "edge"))
    assert code == "UNAUTHENTICATED", details
    assert "names no spiffe://opsconductor.local/ identity" in details and "localhost" in details


def test_the_automation_checks_its_pipeline_is_its_own_pools(mesh, tmp_path):
    # A canary automation pointed at the stable pipeline refuses it by the name in its
    # certificate (whatever the address), so it never becomes ready.
    crossed = service_pair(tmp_path, "crossed", pool="canary",
                           automation_env={**mesh.identity.service_env("canary", "automation"),
                                           "PIPELINE_TARGET": mesh.pairs["stable"].pipeline_target})
    crossed.automation.start()
    try:
        health_target = crossed.health_target("automation")
        crossed.automation.wait_healthy(health_target, "", timeout=30)  # alive
        channel = grpc.secure_channel(crossed.automation_target, mesh.credentials("operator"), options=(
            ("grpc.ssl_target_name_override", spiffe.server_name("canary", "automation")),))
        with channel, pytest.raises(grpc.RpcError) as refused:
            automation_pb2_grpc.AutomationServiceStub(channel).Execute(PING, timeout=10)
        # The caller reads a public-safe BAD_GATEWAY (no internal address or TLS detail); the
        # automation's own log says why: the pipeline's certificate does not name its pool.
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(refused.value).reason == "BAD_GATEWAY"
        assert refused.value.details() == "the pipeline is unavailable; retry shortly"
        wait_for(lambda: "Hostname Verification Check failed" in crossed.automation.log_text(), 10,
                 "the automation to log why it refused the pipeline")
        assert health(grpc.insecure_channel(health_target), AUTOMATION_SERVICE) == ("OK", "NOT_SERVING")
    finally:
        crossed.automation.stop()


def test_the_health_port_serves_health_in_plaintext_and_nothing_else(mesh):
    pair = mesh.pairs["stable"]
    for service, name in (("automation", AUTOMATION_SERVICE), ("pipeline", PIPELINE_SERVICE)):
        assert health(grpc.insecure_channel(pair.health_target(service)), name) == ("OK", "SERVING")
    channel = grpc.insecure_channel(pair.health_target("automation"))
    with channel, pytest.raises(grpc.RpcError) as refused:
        automation_pb2_grpc.AutomationServiceStub(channel).Execute(PING, timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


def _metrics(mesh: Mesh, workload: str, scheme: str = "https") -> tuple[int, str]:
    import ssl

    url = f"{scheme}://{mesh.pairs['stable'].automation_metrics}/metrics"
    context = None
    if scheme == "https":
        files = mesh.identity.store.files(workload)
        context = ssl.create_default_context(cafile=str(files.ca))
        context.check_hostname = False
        context.load_cert_chain(str(files.cert), str(files.key))
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_metrics_need_the_scrapers_certificate(mesh):
    status, text = _metrics(mesh, "prometheus")
    assert status == 200
    identity = spiffe.workload("stable", "automation")
    expiry = f'opsconductor_certificate_expiry_timestamp_seconds{{identity="{identity}"}}'
    assert expiry in text
    assert _metrics(mesh, "operator")[0] == 200
    assert _metrics(mesh, "gateway") == (403, "this identity may not scrape\n")
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        _metrics(mesh, "", scheme="http")


def test_envoy_accepts_only_the_pools_own_automation(mesh):
    # The stable cluster points at the canary automation: a valid certificate of the mesh, but
    # not the identity that cluster expects, so Envoy's health checks never pass it.
    sds_dir = mesh.log_dir / "sds"
    tls = mesh.identity.envoy_tls(sds_dir)
    write_sds(sds_dir, tls, None)
    canary = mesh.pairs["canary"].automation_target
    gateway = start_gateway(mesh.log_dir, (canary,), (canary,), name="envoy-crossed", healthy={"canary": 1},
                            mesh_tls=tls)
    try:
        health_by_pool = gateway.admin.pool_health()
        assert (health_by_pool["stable"].healthy, health_by_pool["canary"].healthy) == (0, 1)
        channel = grpc.insecure_channel(gateway.target)
        with channel:
            reply = automation_pb2_grpc.AutomationServiceStub(channel).Execute(PING, timeout=10)
        assert reply.pool == "canary"  # the stable share failed over to the only pool it trusts
    finally:
        gateway.stop()


@pytest.mark.parametrize("env, message", [
    ({"TLS_CERT_FILE": "/nonexistent.crt"}, "TLS_KEY_FILE, TLS_CA_FILE: TLS needs"),
    ({"TLS_CERT_FILE": "/nonexistent.crt", "TLS_KEY_FILE": "/k", "TLS_CA_FILE": "/c"}, "TLS_CERT_FILE:"),
])
def test_incomplete_tls_settings_stop_the_service_with_one_line(env, message):
    result = subprocess.run([sys.executable, "-m", "services", "pipeline"], env={"PATH": "/usr/bin", **env},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1
