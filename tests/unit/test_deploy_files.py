"""Container and Kubernetes files: schema-valid, and consistent with each other and with the
gateway config they mount (no Docker engine or cluster runs here, so they are checked statically)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from mesh import envoy_variants
from mesh.envoy_config import render
from tests.support.procs import BIN

ROOT = envoy_variants.ROOT
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
READINESS = {"automation": "opsconductor.automation.v1.AutomationService",
             "pipeline": "opsconductor.pipeline.v1.PipelineService"}
PORTS = {"automation": (3003, 9091), "pipeline": (8001, 9092)}


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True,
                          timeout=120)


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def k8s_files() -> list[Path]:
    """Every manifest (kustomization files are kustomize's, not Kubernetes objects)."""
    return sorted(path for path in K8S.rglob("*.yaml") if path.name != "kustomization.yaml")


def k8s_objects() -> list[dict]:
    base = sorted((K8S / "base").glob("*.yaml"))
    return [doc for path in base if path.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in k8s_objects() if o["kind"] == kind}


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


# --- docker compose -------------------------------------------------------------------------

def test_compose_file_matches_the_compose_specification():
    result = run("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_rejects_a_misspelt_key(tmp_path):
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    image: envoyproxy", "    imag: envoyproxy"))
    result = run("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(broken))
    assert result.returncode != 0
    assert "'imag' was unexpected" in result.stdout + result.stderr


def test_compose_gateway_mounts_the_rendered_config_and_reaches_every_pool():
    services = compose()["services"]
    gateway = services["gateway"]
    assert gateway["image"] == "envoyproxy/envoy:v1.40.0"
    mounts = dict(v.split(":", 2)[:2] for v in gateway["volumes"])
    assert mounts["./envoy/envoy.compose.yaml"] == "/etc/envoy/envoy.yaml"
    assert (DEPLOY / "envoy/envoy.compose.yaml").exists()
    settings = envoy_variants.compose_settings()
    for pool, hosts in (("stable", settings.stable_hosts), ("canary", settings.canary_hosts)):
        ((host, port),) = hosts
        assert host == f"automation-{pool}"
        grpc_addr = services[host]["environment"]["AUTOMATION_GRPC_ADDR"]
        assert grpc_addr == f"0.0.0.0:{port}"
    published = {p.split(":")[-1] for p in gateway["ports"]}
    assert published == {str(settings.listen_port), str(settings.stats_port)}


@pytest.mark.parametrize("pool", ["stable", "canary"])
def test_compose_pools_are_vertical_slices(pool):
    services = compose()["services"]
    automation, pipeline = services[f"automation-{pool}"], services[f"pipeline-{pool}"]
    tag = "${STABLE_TAG:-0.1.0}" if pool == "stable" else "${CANARY_TAG:-0.1.0}"
    for service, command in ((automation, "automation"), (pipeline, "pipeline")):
        assert service["command"] == [command]
        assert service["image"] == f"opsconductor-mesh:{tag}"
        assert service["environment"]["POOL"] == pool
        assert service["environment"]["SERVICE_VERSION"] == tag
    target_host, target_port = automation["environment"]["PIPELINE_TARGET"].split(":")
    assert target_host == f"pipeline-{pool}"
    assert pipeline["environment"]["PIPELINE_GRPC_ADDR"] == f"0.0.0.0:{target_port}"
    assert pipeline["environment"]["FEATURE_BYPASS_LLM"] == ("true" if pool == "canary"
                                                             else "false")


def test_compose_page_config_points_at_the_gateway_from_an_allowed_origin():
    services = compose()["services"]
    web = services["web"]
    config = json.loads((DEPLOY / "web/config.json").read_text())
    gateway_port = envoy_variants.compose_settings().listen_port
    assert config["gatewayUrl"] == f"http://127.0.0.1:{gateway_port}"
    page_port = web["ports"][0].split(":")[-1]
    origin = f"http://127.0.0.1:{page_port}"
    assert origin in envoy_variants.compose_settings().cors_origins
    assert f"listen {page_port};" in (DEPLOY / "web/nginx.conf").read_text()


def test_compose_mounts_files_that_exist():
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
    prometheus = compose()["services"]["prometheus"]
    config = next(arg for arg in prometheus["command"] if arg.startswith("--config.file="))
    assert (ROOT / "observability/prometheus" / Path(config.split("=", 1)[1]).name).exists()


# --- the image ------------------------------------------------------------------------------

def test_dockerfile_builds_one_non_root_image_for_both_services():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["opsconductor"\]$', text, re.M)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert "HEALTHCHECK" not in re.sub(r"#.*", "", text)
    # Everything the image copies is in the repository and let through the ignore file.
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for line in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for source in line.split():
            assert (ROOT / source).exists(), f"COPY source {source} is missing"
            assert f"!{source.rstrip('/')}" in [i.rstrip("/") for i in ignore], source


def test_the_installed_package_carries_every_data_file_the_services_read(tmp_path):
    # The image runs `pip install .`: a data file missing from the wheel is missing in the
    # container, though every test of the working tree passes. Built from a copy, so the
    # repository gets no build/ directory.
    source = tmp_path / "src"
    source.mkdir()
    packages = ("opsconductor", "services", "mesh")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in packages:
        shutil.copytree(ROOT / package, source / package, ignore=ignore)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                             "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
                             str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    wanted = {str(path.relative_to(source)) for package in packages
              for path in (source / package).rglob("*") if path.is_file()}
    assert sorted(wanted - packaged) == []


# --- Kubernetes -----------------------------------------------------------------------------

def test_manifests_match_the_kubernetes_schemas():
    result = run("kubernetes-validate", "--strict", "--quiet", *map(str, k8s_files()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_manifest_check_rejects_an_unknown_field(tmp_path):
    broken = tmp_path / "gateway.yaml"
    broken.write_text((K8S / "base/gateway.yaml").read_text().replace("replicas:", "replicaz:"))
    result = run("kubernetes-validate", "--strict", "--quiet", str(broken))
    assert result.returncode != 0


def test_kustomizations_list_every_manifest():
    base = yaml.safe_load((K8S / "base/kustomization.yaml").read_text())
    listed = set(base["resources"])
    present = {p.name for p in (K8S / "base").glob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == present
    production = yaml.safe_load((K8S / "production/kustomization.yaml").read_text())
    assert production["resources"] == ["../base"]
    assert [p["path"] for p in production["patches"]] == ["envoy-config.yaml"]


@pytest.mark.parametrize("name", ["automation-stable", "automation-canary", "pipeline-stable",
                                  "pipeline-canary"])
def test_service_deployments_probe_grpc_health_and_are_sized(name):
    service, pool = name.split("-")
    deployment = by_kind("Deployment")[name]
    assert deployment["spec"]["replicas"] >= 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == [service]
    grpc_port, metrics_port = PORTS[service]
    assert container["livenessProbe"]["grpc"] == {"port": grpc_port, "service": ""}
    assert container["readinessProbe"]["grpc"] == {"port": grpc_port,
                                                   "service": READINESS[service]}
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert "memory" in container["resources"]["limits"]
    env = env_of(container)
    assert env["POOL"] == pool
    prefix = service.upper()
    assert env[f"{prefix}_GRPC_ADDR"] == f"0.0.0.0:{grpc_port}"
    assert env[f"{prefix}_METRICS_ADDR"] == f"0.0.0.0:{metrics_port}"
    if service == "automation":
        assert env["PIPELINE_TARGET"] == f"pipeline-{pool}:{PORTS['pipeline'][0]}"
    else:
        assert env["FEATURE_BYPASS_LLM"] == ("true" if pool == "canary" else "false")
    # Services select exactly this Deployment's pods; a PDB keeps one of them up.
    svc = by_kind("Service")[name]
    assert svc["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert {p["port"] for p in svc["spec"]["ports"]} == {grpc_port, metrics_port}
    assert by_kind("PodDisruptionBudget")[name]["spec"]["selector"]["matchLabels"] == \
        deployment["spec"]["selector"]["matchLabels"]


def test_envoy_upstreams_are_headless_services_on_the_grpc_port():
    services = by_kind("Service")
    namespace = envoy_variants.NAMESPACE
    settings = envoy_variants.k8s_settings()
    for hosts in (settings.stable_hosts, settings.canary_hosts):
        ((host, port),) = hosts
        name, _, rest = host.partition(".")
        assert rest == f"{namespace}.svc.cluster.local"
        assert services[name]["spec"].get("clusterIP") == "None", "Envoy balances across pods"
        assert port in {p["port"] for p in services[name]["spec"]["ports"]}
    assert all(o["metadata"].get("namespace", namespace) == namespace for o in k8s_objects())


def test_gateway_deployment_mounts_its_config_and_jwks_where_the_config_reads_them():
    deployment = by_kind("Deployment")["gateway"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "envoyproxy/envoy:v1.40.0"
    config_path = container["args"][container["args"].index("-c") + 1]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == envoy_variants.CONFIGMAP_NAME
    assert config_path == f"{mounts['config']}/envoy.yaml"
    assert volumes["jwks"]["secret"]["secretName"] == "envoy-jwks"
    assert envoy_variants.JWKS_PATH.startswith(mounts["jwks"] + "/")
    settings = envoy_variants.k8s_settings()
    ports = {p["containerPort"] for p in container["ports"]}
    assert ports == {settings.listen_port, settings.stats_port}
    service_ports = {p["port"] for p in by_kind("Service")["gateway"]["spec"]["ports"]}
    assert service_ports == ports
    assert "gateway" in by_kind("PodDisruptionBudget")


def test_production_config_requires_jwt_and_base_does_not():
    def filters(path: str) -> list[str]:
        configmap = yaml.safe_load((K8S / path).read_text())
        config = yaml.safe_load(configmap["data"]["envoy.yaml"])
        hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        return [f["name"] for f in hcm["typed_config"]["http_filters"]]

    assert "envoy.filters.http.jwt_authn" in filters("production/envoy-config.yaml")
    assert "envoy.filters.http.jwt_authn" not in filters("base/envoy-config.yaml")
    assert render(envoy_variants.production_settings())["admin"]["address"][
        "socket_address"]["address"] == "127.0.0.1"


def test_pods_run_as_non_root_without_privileges():
    for name, deployment in by_kind("Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
