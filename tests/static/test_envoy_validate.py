"""Envoy itself accepts every rendered variant of the gateway's config, with no warning."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
from pathlib import Path

import pytest

from opsconductor.gateway import variants as envoy_variants
from opsconductor.gateway.config import render, to_yaml
from opsconductor.gateway.settings import EnvoySettings
from opsconductor.gateway.tls import sds_resources, sds_yaml
from opsconductor.identity.authority import CertificateAuthority
from opsconductor.identity.bundle import write_bundle
from tests.support.procs import BIN

ENVOY = str(BIN / "envoy")


def envoy_validate(config_text: str, tmp_path: Path) -> str:
    """Runs `envoy --mode validate`; returns its output, failing on an error or any warning."""
    path = tmp_path / "envoy.yaml"
    path.write_text(config_text)
    # Envoy watches the weights layer's directory from the start: the local variant's is relative.
    (tmp_path / envoy_variants.LOCAL_RUNTIME_DIR).mkdir(parents=True, exist_ok=True)
    result = subprocess.run([ENVOY, "--mode", "validate", "-c", str(path), "--disable-hot-restart",
                             "--log-level", "warn"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # A deprecated field only warns; such a config breaks on a later Envoy, so it fails here.
    assert "deprecated" not in output.lower(), output
    assert not re.search(r"\]\[(warning|error|critical)\]", output), output
    return output


def with_local_jwks(text: str, tmp_path: Path) -> str:
    """The production config pointing at a JWKS file that exists here (Envoy reads it)."""
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{"kty": "oct", "alg": "HS256", "kid": "k",
                                          "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]}))
    assert envoy_variants.JWKS_PATH in text
    return text.replace(envoy_variants.JWKS_PATH, str(jwks))


def with_local_certificates(text: str, settings: EnvoySettings, tmp_path: Path) -> str:
    """The config with /etc/envoy moved under `tmp_path`, where the SDS files it names and the
    certificates they name exist (Envoy checks that the paths do)."""
    root = tmp_path / "etc-envoy"
    authority = CertificateAuthority.create()
    issued = authority.issue("spiffe://opsconductor.local/gateway", datetime.timedelta(hours=1))
    for directory in ("identity", "edge"):
        write_bundle(root / directory, issued)
    (root / "sds").mkdir()
    (root / "runtime").mkdir()  # the weights layer's mount
    for name, resource in sds_resources(settings.mesh_tls, settings.edge_tls).items():
        (root / "sds" / name).write_text(sds_yaml(resource).replace("/etc/envoy", str(root)))
    return text.replace("/etc/envoy/", f"{root}/")


@pytest.mark.parametrize("variant", sorted(envoy_variants.VARIANTS))
def test_every_variant_passes_envoy_validate_without_warnings(variant, tmp_path):
    text = envoy_variants.envoy_yaml(variant)
    if variant == "production":
        text = with_local_jwks(text, tmp_path)
    settings = envoy_variants.VARIANTS[variant]()
    if settings.mesh_tls or settings.edge_tls:
        text = with_local_certificates(text, settings, tmp_path)
    assert "OK" in envoy_validate(text, tmp_path)


def test_the_validation_catches_a_deprecated_field(tmp_path):
    # The check above must be able to fail: VirtualHost.cors is deprecated in this Envoy.
    config = render(EnvoySettings())
    routes_config = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    routes_config["typed_config"]["route_config"]["virtual_hosts"][0]["cors"] = {
        "allow_origin_string_match": [{"exact": "http://x"}]}
    with pytest.raises(AssertionError, match="deprecated"):
        envoy_validate(to_yaml(config), tmp_path)
