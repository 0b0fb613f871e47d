"""Container and Kubernetes files, read as data: consistent with each other and with the gateway
config they mount, and an image that holds only what the services run. (Their schema checks are
in tests/static/test_deploy_schemas.py.)"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from opsconductor.gateway import variants as envoy_variants
from opsconductor.gateway.config import render
from opsconductor.stack.ports import CONTAINER_PORTS, MAX_REPLICAS, Ports, replica_ports
from services.common.names import POOLS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yaml"
READINESS = {"automation": "opsconductor.automation.v1.AutomationService",
             "pipeline": "opsconductor.pipeline.v1.PipelineService"}
PORTS = {"automation": (3003, 9091), "pipeline": (8001, 9092)}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def k8s_objects() -> list[dict]:
    base = sorted((K8S / "base").glob("*.yaml"))
    return [doc for path in base if path.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in k8s_objects() if o["kind"] == kind}


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


# --- docker compose -------------------------------------------------------------------------


def test_compose_gateway_mounts_the_rendered_config_and_reaches_every_pool():
    services = compose()["services"]
    gateway = services["gateway"]
    assert gateway["image"] == "envoyproxy/envoy:v1.40.0"
    mounts = dict(v.split(":", 2)[:2] for v in gateway["volumes"] if isinstance(v, str))
    assert mounts["../envoy/envoy.compose.yaml"] == "/etc/envoy/envoy.yaml"
    assert (ROOT / "envoy/envoy.compose.yaml").exists()
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
            if isinstance(volume, dict) and volume["type"] == "bind":  # a directory compose makes when missing
                assert volume["bind"]["create_host_path"] and volume["source"].startswith("./"), volume
                continue
            if isinstance(volume, dict):  # a named volume's subpath: the volume must be declared
                assert volume["source"] in compose()["volumes"], f"{name} mounts undeclared {volume['source']}"
                continue
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).resolve().exists(), f"{name} mounts missing {source}"
    prometheus = compose()["services"]["prometheus"]
    config = next(arg for arg in prometheus["command"] if arg.startswith("--config.file="))
    assert (ROOT / "observability/prometheus" / Path(config.split("=", 1)[1]).name).exists()


# --- the image ------------------------------------------------------------------------------

def test_dockerfile_builds_one_non_root_image_for_both_services():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim AS services$", text, re.M)
    # The default (last) stage is the services' stage as it is; compose's certificate
    # authority is a separate target built on it.
    assert re.findall(r"^FROM .+$", text, re.M)[-1] == "FROM services"
    services = text.split("\nFROM services AS certificates")[0]
    assert re.search(r'^ENTRYPOINT \["python", "-m", "services"\]$', services, re.M)
    user = re.findall(r"^USER (\S+)$", services, re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert "HEALTHCHECK" not in re.sub(r"#.*", "", text)
    # Everything the image copies is in the repository and let through the ignore file.
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for line in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for source in line.split():
            assert (ROOT / source).exists(), f"COPY source {source} is missing"
            assert f"!{source.rstrip('/')}" in [i.rstrip("/") for i in ignore], source


# --- Kubernetes -----------------------------------------------------------------------------


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
    # The kubelet cannot do TLS: probes go to the plaintext health-only port.
    health_port = CONTAINER_PORTS[service]["health"]
    assert container["livenessProbe"]["grpc"] == {"port": health_port, "service": ""}
    assert container["readinessProbe"]["grpc"] == {"port": health_port,
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


def test_the_services_import_nothing_the_image_lacks():
    # The image installs pyproject's runtime dependencies and copies services/ and the stubs
    # only: a service module importing the operator tool, or a library that only the
    # operator or dev extras bring, would fail in the container alone.
    def normalized(name: str) -> str:  # PEP 503: prometheus_client is prometheus-client
        return re.sub(r"[-_.]+", "-", name).lower()

    runtime = {normalized(re.split(r"[=<>\[ ]", spec, maxsplit=1)[0])
               for spec in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    stdlib = sys.stdlib_module_names
    unexpected = []
    for path in sorted((ROOT / "services").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [])
            for name in names:
                top = name.split(".")[0]
                if top in stdlib or top == "services" or name.startswith(("opsconductor.automation",
                                                                              "opsconductor.pipeline")):
                    continue
                packages = {normalized(d) for d in distributions.get(top, [])}
                if top == "google":  # a namespace shared by protobuf and googleapis-common-protos
                    packages = {"protobuf"} if name.startswith("google.protobuf") else {"googleapis-common-protos"}
                if not packages & runtime:
                    unexpected.append(f"{path.relative_to(ROOT)}: {name}")
    assert not unexpected, unexpected


# --- traces: every component to the collector, the collector to a backend -------------------------

COLLECTOR = yaml.safe_load((DEPLOY / "otel/collector.yaml").read_text())
SERVICES = ("automation-stable", "automation-canary", "pipeline-stable", "pipeline-canary")


def test_the_collector_config_defines_everything_its_pipeline_uses():
    pipeline = COLLECTOR["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        assert set(pipeline[kind]) <= set(COLLECTOR[kind]), kind
    assert set(COLLECTOR["service"]["extensions"]) <= set(COLLECTOR["extensions"])
    assert COLLECTOR["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert pipeline["processors"][0] == "memory_limiter"  # first, as the collector's docs require
    assert COLLECTOR["exporters"]["otlp"]["endpoint"] == "${env:TRACES_EXPORT_ENDPOINT}"


def test_compose_sends_every_components_spans_through_the_collector_to_jaeger():
    services = compose()["services"]
    rate = envoy_variants.compose_settings().tracing.sample_percent / 100
    for name in SERVICES:
        env = services[name]["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317", name
        assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        assert float(env["OTEL_TRACES_SAMPLER_ARG"]) == rate  # direct calls sampled as the gateway samples
    assert envoy_variants.compose_settings().tracing.collector == ("otel-collector", 4317)
    collector = services["otel-collector"]
    assert collector["environment"]["TRACES_EXPORT_ENDPOINT"] == "jaeger:4317"
    assert "./otel/collector.yaml:/etc/otelcol/collector.yaml:ro" in collector["volumes"]
    assert "127.0.0.1:16686:16686" in services["jaeger"]["ports"]


def test_kubernetes_runs_a_collector_whose_exporter_is_configurable():
    deployment = by_kind("Deployment")["otel-collector"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["TRACES_EXPORT_ENDPOINT"]  # the backend, set by a patch
    (volume,) = deployment["spec"]["template"]["spec"]["volumes"]
    configmap = by_kind("ConfigMap")[volume["configMap"]["name"]]
    assert yaml.safe_load(configmap["data"]["collector.yaml"]) == COLLECTOR
    assert f"--config={container['volumeMounts'][0]['mountPath']}/collector.yaml" in container["args"]
    service = by_kind("Service")["otel-collector"]
    assert service["spec"]["ports"][0]["port"] == 4317
    endpoint = f"http://otel-collector.{service['metadata']['namespace']}.svc.cluster.local:4317"
    for name in SERVICES:
        (service_container,) = by_kind("Deployment")[name]["spec"]["template"]["spec"]["containers"]
        assert env_of(service_container)["OTEL_EXPORTER_OTLP_ENDPOINT"] == endpoint, name
    assert f"http://{':'.join(map(str, envoy_variants.k8s_settings().tracing.collector))}" == endpoint


# --- one meaning per port number --------------------------------------------------------------------

# Fixed ports of the local stack that compose and Kubernetes give the same component.
SAME_ROLE_EVERYWHERE = {"gateway", "page", "prometheus", "envoy_admin", "envoy_stats", "traces_otlp"}


def deployed_ports() -> set[int]:
    """Every port compose and the Kubernetes pods use: what their pipelines' MESH_PORTS list."""
    found = {env["MESH_PORTS"] for env in (s.get("environment", {}) for s in compose()["services"].values())
             if "MESH_PORTS" in env}
    for deployment in by_kind("Deployment").values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if env_of(container).get("MESH_PORTS"):
                found.add(env_of(container)["MESH_PORTS"])
    assert found, "no MESH_PORTS in compose or Kubernetes"
    return {int(port) for ports in found for port in ports.split(",")}


def test_a_port_number_means_one_thing_across_the_local_stack_compose_and_kubernetes():
    local: dict[int, str] = {}
    fixed = [(field.name, getattr(Ports(), field.name)) for field in fields(Ports)]
    every_replica = [(f"{pool}-{i + 1} {name}", port) for pool in POOLS for i in range(MAX_REPLICAS)
                     for name, port in replica_ports(pool, i).items()]
    for use, port in fixed + every_replica:
        assert port not in local, f"port {port}: both {local[port]} and {use}"
        local[port] = use
    deployed = deployed_ports()
    in_containers = [port for ports in CONTAINER_PORTS.values() for port in ports.values()]
    assert len(in_containers) == len(set(in_containers)) and set(in_containers) <= deployed
    # A number both use is the same component in both; the trace store's query and metrics
    # ports, and every replica port, are the local stack's alone.
    shared = {local[port] for port in deployed if port in local}
    assert shared <= SAME_ROLE_EVERYWHERE, shared - SAME_ROLE_EVERYWHERE
    assert {Ports().traces_query, Ports().traces_metrics}.isdisjoint(deployed)
