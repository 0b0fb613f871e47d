"""The deployment files enforce the topology: Kubernetes NetworkPolicies allow exactly the
mesh's flows, every workload mounts the certificate of its own identity and turns mTLS on,
and compose does the same with its init service's volume."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from opsconductor.identity import certmanager, network
from opsconductor.stack.ports import CONTAINER_PORTS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s" / "base"
COMPOSE = ROOT / "deploy" / "compose.yaml"
TLS_VARS = {"TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE"}


def objects(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc and doc["kind"] == kind}


def allowed(source: dict[str, str], destination: dict[str, str], port: int) -> bool:
    """Whether the committed policies let a pod labelled `source` reach `destination`:`port`
    (both sides must allow it: the source's egress and the destination's ingress)."""
    policies = list(objects("NetworkPolicy").values())

    def selects(selector: dict, labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())

    def peer_matches(peer: dict, labels: dict[str, str]) -> bool:
        if "namespaceSelector" in peer:  # another namespace: "monitoring" for Prometheus
            return labels.get("namespace") == peer["namespaceSelector"]["matchLabels"].get(
                "kubernetes.io/metadata.name") and selects(peer.get("podSelector", {}), labels)
        return labels.get("namespace") is None and selects(peer["podSelector"], labels)

    def rule_allows(rules: list[dict], peer_key: str, peer: dict[str, str]) -> bool:
        return any((not rule.get(peer_key) or any(peer_matches(p, peer) for p in rule[peer_key]))
                   and any(p["port"] == port for p in rule.get("ports", [{"port": port}])) for rule in rules)

    egress = source.get("namespace") is not None or any(
        rule_allows(p["spec"]["egress"], "to", destination) for p in policies
        if "Egress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], source))
    ingress = any(rule_allows(p["spec"]["ingress"], "from", source) for p in policies
                  if "Ingress" in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], destination))
    return egress and ingress


GATEWAY = {"app.kubernetes.io/name": "gateway"}
PROMETHEUS = {"app.kubernetes.io/name": "prometheus", "namespace": network.PROMETHEUS_NAMESPACE}
OUTSIDER = {"app.kubernetes.io/name": "debug", "namespace": "default"}
COLLECTOR = {"app.kubernetes.io/name": "otel-collector"}


def pod(service: str, pool: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": service, "opsconductor.io/pool": pool}


A, P = CONTAINER_PORTS["automation"], CONTAINER_PORTS["pipeline"]


@pytest.mark.parametrize("source, destination, port, expected", [
    (OUTSIDER, GATEWAY, 3000, True),  # the one entry point
    (GATEWAY, pod("automation", "stable"), A["grpc"], True),
    (GATEWAY, pod("automation", "canary"), A["grpc"], True),
    (pod("automation", "stable"), pod("pipeline", "stable"), P["grpc"], True),
    (pod("automation", "canary"), pod("pipeline", "canary"), P["grpc"], True),
    (PROMETHEUS, pod("pipeline", "canary"), P["metrics"], True),
    (PROMETHEUS, GATEWAY, 9902, True),
    (OUTSIDER, pod("automation", "stable"), A["health"], True),  # the kubelet's probes
    # Spans: every traced workload to the OpenTelemetry Collector, nobody else.
    (GATEWAY, COLLECTOR, 4317, True),
    (pod("automation", "canary"), COLLECTOR, 4317, True),
    (pod("pipeline", "stable"), COLLECTOR, 4317, True),
    (OUTSIDER, COLLECTOR, 4317, False),
    (COLLECTOR, pod("pipeline", "stable"), P["grpc"], False),
    (COLLECTOR, pod("automation", "stable"), A["grpc"], False),
    (pod("pipeline", "stable"), pod("pipeline", "canary"), 4317, False),
    # Everything else is refused:
    (OUTSIDER, pod("pipeline", "stable"), P["grpc"], False),
    (OUTSIDER, pod("automation", "stable"), A["grpc"], False),
    (pod("automation", "canary"), pod("pipeline", "stable"), P["grpc"], False),  # pools are slices
    (GATEWAY, pod("pipeline", "stable"), P["grpc"], False),
    (pod("pipeline", "stable"), pod("automation", "stable"), A["grpc"], False),
    (pod("automation", "stable"), pod("automation", "canary"), A["grpc"], False),
    (OUTSIDER, pod("automation", "stable"), A["metrics"], False),
    (OUTSIDER, GATEWAY, 9902, False),
    (PROMETHEUS, pod("pipeline", "stable"), P["grpc"], False),
])
def test_network_policies_allow_exactly_the_mesh_flows(source, destination, port, expected):
    assert allowed(source, destination, port) is expected


def test_the_namespace_denies_by_default_and_lets_every_pod_resolve_names():
    policies = objects("NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert deny["ingress"] == [] and deny["egress"] == []
    (dns,) = policies["dns"]["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}


@pytest.mark.parametrize("name", ["automation-stable", "automation-canary", "pipeline-stable", "pipeline-canary",
                                  "gateway"])
def test_every_workload_mounts_its_own_certificate(name):
    pod_spec = objects("Deployment")[name]["spec"]["template"]["spec"]
    secrets = {v["secret"]["secretName"] for v in pod_spec["volumes"] if "secret" in v}
    assert f"{name}-mesh-tls" in secrets
    assert f"{name}-mesh-tls" in {c["spec"]["secretName"] for c in objects("Certificate").values()}
    assert pod_spec["securityContext"]["fsGroup"] == pod_spec["securityContext"]["runAsGroup"]
    if name != "gateway":
        (container,) = pod_spec["containers"]
        env = {e["name"]: e.get("value", "") for e in container["env"]}
        assert TLS_VARS <= env.keys() and all(env[v].startswith("/etc/opsconductor/identity/") for v in TLS_VARS)
        service = name.split("-")[0]
        assert env[f"{service.upper()}_HEALTH_ADDR"] == f"0.0.0.0:{CONTAINER_PORTS[service]['health']}"


def test_compose_turns_mtls_on_for_every_service_with_its_own_certificate():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert services["certificates"]["build"]["target"] == "certificates"
    for name in ("automation-stable", "automation-canary", "pipeline-stable", "pipeline-canary"):
        service, pool = name.split("-")
        assert TLS_VARS <= services[name]["environment"].keys(), name
        (mount,) = [v for v in services[name]["volumes"] if isinstance(v, dict)]
        assert mount["volume"]["subpath"] == f"{pool}-{service}" and mount["read_only"] is True
        assert services[name]["depends_on"]["certificates"]["condition"] == "service_completed_successfully"
    for name, subpath in (("gateway", "gateway"), ("prometheus", "prometheus")):
        named = [v for v in services[name]["volumes"] if isinstance(v, dict) and v["type"] == "volume"]
        assert [v["volume"]["subpath"] for v in named] == [subpath]


def test_secret_names_follow_the_workloads():
    assert certmanager.secret_name("stable-automation") == "automation-stable-mesh-tls"
    assert certmanager.secret_name("gateway") == "gateway-mesh-tls"
