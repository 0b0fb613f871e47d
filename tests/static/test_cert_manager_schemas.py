"""The rendered cert-manager resources (deploy/k8s/base/identity.yaml) against cert-manager's
API schemas, offline: the npm package @kubernetes-models/cert-manager (pinned in
tests/static/crd_schemas/package-lock.json) carries validators generated from cert-manager's
Go API types, the source its CRDs' openAPIV3Schema is generated from. No cluster runs here."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from opsconductor.identity import certmanager
from services.common import spiffe
from tests.support import crd_schemas

ROOT = Path(__file__).resolve().parents[2]
IDENTITY = ROOT / "deploy" / "k8s" / "base" / "identity.yaml"


@pytest.fixture(scope="module")
def schemas() -> Path:
    return crd_schemas.install()


def committed() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(IDENTITY.read_text()) if doc]


def test_the_issuers_and_certificates_match_cert_managers_schemas(schemas):
    objects = committed()
    result = crd_schemas.validate(objects)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\nok ") + result.stdout.startswith("ok ") == len(objects) > 5, result.stdout


def _broken(change) -> dict:
    certificate = next(doc for doc in committed() if doc["kind"] == "Certificate" and "uris" in doc["spec"])
    change(certificate["spec"])
    return certificate


@pytest.mark.parametrize("change, reason", [
    (lambda spec: spec.pop("secretName"), "must have required property secretName"),
    (lambda spec: spec["privateKey"].update(algorithm="DSA"), "must be equal to one of the allowed values"),
    (lambda spec: spec.update(uris=spec["uris"][0]), "uris must be array"),
    (lambda spec: spec.update(duration=24), "duration must be string"),
])
def test_the_schema_check_rejects_a_broken_certificate(schemas, change, reason):
    result = crd_schemas.validate([_broken(change)])
    assert result.returncode == 1 and reason in result.stdout, result.stdout + result.stderr


def test_every_workload_has_a_certificate_with_its_spiffe_id_renewed_before_expiry():
    certificates = {doc["spec"]["secretName"]: doc["spec"] for doc in committed() if doc["kind"] == "Certificate"}
    expected = {f"{service}-{pool}-mesh-tls": spiffe.workload(pool, service)
                for pool in ("stable", "canary") for service in spiffe.SERVICES}
    expected |= {"gateway-mesh-tls": spiffe.GATEWAY, "prometheus-mesh-tls": spiffe.PROMETHEUS}
    assert {name: spec.get("uris") for name, spec in certificates.items() if name != certmanager.CA_SECRET} == \
        {name: [identity] for name, identity in expected.items()}
    for name, spec in certificates.items():
        assert spec["issuerRef"]["name"] == (certmanager.CA_ISSUER if name != certmanager.CA_SECRET
                                             else "mesh-ca-bootstrap"), name
        if name != certmanager.CA_SECRET:  # renewed at two thirds, a new key every time
            assert (spec["duration"], spec["renewBefore"]) == ("24h", "8h"), name
            assert spec["privateKey"]["rotationPolicy"] == "Always", name
    assert certificates["pipeline-stable-mesh-tls"]["dnsNames"][0] == spiffe.server_name("stable", "pipeline")
