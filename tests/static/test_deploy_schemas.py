"""Container and Kubernetes files against their published schemas (check-jsonschema's compose
spec, kubernetes-validate's Kubernetes schemas), and the image's package built as the
Dockerfile builds it. No Docker engine or cluster runs here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.procs import BIN

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=120)


# cert-manager's kinds are not in Kubernetes' schemas: tests/static/test_cert_manager_schemas.py;
# nor are prometheus-operator's: tests/static/test_k8s_monitoring.py.
CERT_MANAGER_FILES = ("identity.yaml",)
PROMETHEUS_OPERATOR_DIR = "prometheus-operator"


def k8s_files() -> list[Path]:
    """Every manifest of Kubernetes' own kinds (kustomization files are kustomize's)."""
    return sorted(path for path in K8S.rglob("*.yaml")
                  if path.name != "kustomization.yaml" and path.name not in CERT_MANAGER_FILES
                  and PROMETHEUS_OPERATOR_DIR not in path.relative_to(K8S).parts)


def dockerfile_copies() -> list[str]:
    """The repository paths the Dockerfile copies into the image."""
    text = (DEPLOY / "Dockerfile").read_text()
    return [source for line in re.findall(r"^COPY (.+) \S+$", text, re.M) for source in line.split()]


def test_compose_file_matches_the_compose_specification():
    result = run("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_rejects_a_misspelt_key(tmp_path):
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    image: envoyproxy", "    imag: envoyproxy"))
    result = run("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(broken))
    assert result.returncode != 0
    assert "'imag' was unexpected" in result.stdout + result.stderr


def test_the_image_package_carries_every_file_the_services_read(tmp_path):
    # The image runs `pip install .` on what the Dockerfile copies: a module or data file
    # missing from that wheel is missing in the container, though every test of the working
    # tree passes. Built from a copy, so the repository gets no build/ directory.
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    copies = dockerfile_copies()
    for name in copies:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy(ROOT / name, source / name)
    packages = [name for name in copies if (ROOT / name).is_dir()]
    assert "services" in packages and "opsconductor/automation" in packages, copies
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                             "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
                             str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    wanted = {str(path.relative_to(source)) for package in packages
              for path in (source / package).rglob("*") if path.is_file()}
    assert sorted(wanted - packaged) == []


def test_manifests_match_the_kubernetes_schemas():
    result = run("kubernetes-validate", "--strict", "--quiet", *map(str, k8s_files()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_manifest_check_rejects_an_unknown_field(tmp_path):
    broken = tmp_path / "gateway.yaml"
    broken.write_text((K8S / "base/gateway.yaml").read_text().replace("replicas:", "replicaz:"))
    result = run("kubernetes-validate", "--strict", "--quiet", str(broken))
    assert result.returncode != 0
