"""The mesh's identities as plain data: names, the CA and what it issues, the bundle files and
their renewal, the services' TLS settings, and the TLS parts of the Envoy and Prometheus configs."""

from __future__ import annotations

import datetime
import os
import stat

import pytest
from cryptography import x509

from opsconductor.gateway.config import render
from opsconductor.gateway.settings import EnvoySettings
from opsconductor.gateway.tls import EdgeTls, MeshTls, sds_resources
from opsconductor.identity.authority import CertificateAuthority
from opsconductor.identity.bundle import write_bundle
from opsconductor.identity.store import IdentityStore
from opsconductor.identity.workloads import EDGE, mesh_workloads
from opsconductor.observability import prometheus_config
from services.common import spiffe
from services.common.certificates import CertificateError, identity_of, read_material
from services.common.config import ConfigError, TlsConfig, automation_config, pipeline_config


def test_identities_name_pool_and_service_and_refuse_others():
    assert spiffe.workload("canary", "pipeline") == "spiffe://opsconductor.local/pool/canary/pipeline"
    assert spiffe.server_name("stable", "pipeline") == "pipeline.stable.opsconductor.local"
    for pool, service in (("blue", "pipeline"), ("stable", "gateway"), ("", "automation")):
        with pytest.raises(ValueError):
            spiffe.workload(pool, service)
    assert spiffe.default_callers("canary", "pipeline") == ("spiffe://opsconductor.local/pool/canary/automation",)
    assert spiffe.default_callers("stable", "automation") == (spiffe.GATEWAY, spiffe.OPERATOR)
    assert not spiffe.is_identity("spiffe://elsewhere.example/pool/stable/automation")
    assert not spiffe.is_identity("spiffe://opsconductor.local/")


def test_issued_certificates_carry_the_identity_and_names_and_chain_to_the_ca():
    authority = CertificateAuthority.create()
    issued = authority.issue(spiffe.workload("stable", "automation"), datetime.timedelta(hours=2),
                             ("automation.stable.opsconductor.local",), ("127.0.0.1",))
    certificate = x509.load_pem_x509_certificate(issued.certificate)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [spiffe.workload("stable", "automation")]
    assert names.get_values_for_type(x509.DNSName) == ["automation.stable.opsconductor.local"]
    assert identity_of(certificate) == spiffe.workload("stable", "automation")
    assert certificate.issuer == authority.certificate.subject
    certificate.verify_directly_issued_by(authority.certificate)
    assert (certificate.not_valid_after_utc - certificate.not_valid_before_utc) == datetime.timedelta(hours=2)
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_ca_key_and_every_workload_key_are_private_to_their_owner(tmp_path):
    store = IdentityStore(tmp_path / "identity", mesh_workloads(), 3600)
    store.ensure()
    for key in [tmp_path / "identity" / "ca" / "ca.key",
                *[store.files(name).key.resolve() for name in store.workloads]]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    for directory in [tmp_path / "identity" / "ca", *[store.files(name).directory for name in store.workloads]]:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    assert not (tmp_path / "identity" / "gateway" / "ca.key").exists()  # only the CA's directory holds its key


def test_a_bundle_swaps_all_its_files_at_once_and_keeps_one_previous_version(tmp_path):
    authority = CertificateAuthority.create()
    first, second, third = (authority.issue(spiffe.GATEWAY, datetime.timedelta(hours=1)) for _ in range(3))
    write_bundle(tmp_path / "gateway", first)
    tls = TlsConfig(str(tmp_path / "gateway/tls.crt"), str(tmp_path / "gateway/tls.key"),
                    str(tmp_path / "gateway/ca.crt"), (), ())
    assert read_material(tls).certificate_chain == first.certificate
    write_bundle(tmp_path / "gateway", second)
    write_bundle(tmp_path / "gateway", third)
    material = read_material(tls)
    assert (material.certificate_chain, material.private_key) == (third.certificate, third.private_key)
    assert len(list((tmp_path / "gateway").glob("..[0-9]*"))) == 2
    assert os.readlink(tmp_path / "gateway" / "tls.crt") == "..data/tls.crt"


def test_a_key_that_does_not_match_its_certificate_is_not_taken(tmp_path):
    authority = CertificateAuthority.create()
    one, other = (authority.issue(spiffe.GATEWAY, datetime.timedelta(hours=1)) for _ in range(2))
    (tmp_path / "tls.crt").write_bytes(one.certificate)
    (tmp_path / "tls.key").write_bytes(other.private_key)
    (tmp_path / "ca.crt").write_bytes(one.ca)
    tls = TlsConfig(str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"), str(tmp_path / "ca.crt"), (), ())
    with pytest.raises(CertificateError, match="does not match"):
        read_material(tls)


def test_certificates_are_renewed_at_two_thirds_of_their_lifetime_and_when_the_ca_changes(tmp_path):
    store = IdentityStore(tmp_path, [EDGE], lifetime_s=90)
    store.ensure()
    assert store.rotations == 1
    store.ensure()
    assert store.rotations == 1  # not due yet
    assert 55 < store.next_renewal() <= 60  # at 60 s of 90
    store.rotate()
    assert store.rotations == 2
    again = IdentityStore(tmp_path, [EDGE], lifetime_s=90)  # the same CA: nothing to do
    again.ensure()
    assert again.rotations == 0
    (tmp_path / "ca" / "ca.key").unlink()  # a new CA: every certificate is reissued
    replaced = IdentityStore(tmp_path, [EDGE], lifetime_s=90)
    replaced.ensure()
    assert replaced.rotations == 1
    with pytest.raises(ValueError, match="no such workload"):
        store.rotate(["nobody"])


def test_tls_settings_are_all_or_nothing_with_identities_of_the_trust_domain(tmp_path):
    files = {name: tmp_path / name for name in ("c", "k", "a")}
    for path in files.values():
        path.write_text("x")
    env = {"TLS_CERT_FILE": str(files["c"]), "TLS_KEY_FILE": str(files["k"]), "TLS_CA_FILE": str(files["a"]),
           "POOL": "canary"}
    assert pipeline_config({}).common.tls is None  # on its own: plaintext
    tls = pipeline_config(env).common.tls
    assert tls.allowed_callers == (spiffe.workload("canary", "automation"),)
    assert tls.allowed_scrapers == spiffe.DEFAULT_SCRAPERS
    assert automation_config(env).common.tls.allowed_callers == (spiffe.GATEWAY, spiffe.OPERATOR)
    custom = automation_config({**env, "TLS_ALLOWED_CALLERS": f"{spiffe.GATEWAY}, {spiffe.PROMETHEUS}"})
    assert custom.common.tls.allowed_callers == (spiffe.GATEWAY, spiffe.PROMETHEUS)
    for bad, message in (({"TLS_CA_FILE": ""}, "TLS_CA_FILE: TLS needs"),
                         ({"TLS_KEY_FILE": str(tmp_path / "missing")}, "TLS_KEY_FILE: "),
                         ({"TLS_ALLOWED_CALLERS": "spiffe://evil.example/x"}, "TLS_ALLOWED_CALLERS: "),
                         ({"PIPELINE_HEALTH_ADDR": "nonsense"}, "PIPELINE_HEALTH_ADDR")):
        with pytest.raises(ConfigError, match=message):
            pipeline_config({**env, **bad})


def test_envoy_checks_each_pools_identity_upstream_and_the_scrapers_on_the_stats_listener():
    mesh = MeshTls(certificate_dir="/c", sds_dir="/s")
    config = render(EnvoySettings(mesh_tls=mesh))
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    for pool in ("stable", "canary"):
        tls = clusters[f"{pool}_pool"]["transport_socket"]["typed_config"]["common_tls_context"]
        assert tls["alpn_protocols"] == ["h2"]
        matchers = tls["combined_validation_context"]["default_validation_context"]["match_typed_subject_alt_names"]
        assert matchers == [{"san_type": "URI", "matcher": {"exact": spiffe.workload(pool, "automation")}}]
    listeners = {listener["name"]: listener for listener in config["static_resources"]["listeners"]}
    stats = listeners["stats"]["filter_chains"][0]["transport_socket"]["typed_config"]
    assert stats["require_client_certificate"] is True
    assert "transport_socket" not in listeners["gateway"]["filter_chains"][0]  # the edge stays plaintext
    assert config["node"]["id"] == "gateway"
    plain = render(EnvoySettings())
    assert "node" not in plain and "transport_socket" not in plain["static_resources"]["clusters"][0]


def test_sds_files_point_at_the_bundle_and_are_watched():
    files = sds_resources(MeshTls("/id", "/sds"), EdgeTls("/edge/tls.crt", "/edge/tls.key", "/sds"))
    assert set(files) == {"mesh_certificate.yaml", "mesh_ca.yaml", "edge_certificate.yaml"}
    (certificate,) = files["mesh_certificate.yaml"]["resources"]
    assert certificate["tls_certificate"]["private_key"] == {"filename": "/id/tls.key"}
    assert certificate["tls_certificate"]["watched_directory"] == {"path": "/id"}
    (edge,) = files["edge_certificate.yaml"]["resources"]
    assert edge["tls_certificate"]["watched_directory"] == {"path": "/edge"}


def test_prometheus_scrapes_every_job_over_https_with_its_certificate():
    targets = prometheus_config.compose_targets()
    config = prometheus_config.build_config(targets, tls=prometheus_config.mesh_tls("/p"))
    for job in config["scrape_configs"]:
        assert job["scheme"] == "https", job["job_name"]
        assert job["tls_config"]["cert_file"] == "/p/tls.crt"
    names = {job["job_name"]: job["tls_config"]["server_name"] for job in config["scrape_configs"]}
    assert names == {"automation": "automation.opsconductor.local", "pipeline": "pipeline.opsconductor.local",
                     "envoy": "gateway.opsconductor.local"}
    assert all("scheme" not in job for job in prometheus_config.build_config(targets)["scrape_configs"])
