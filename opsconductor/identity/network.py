"""Who may open a connection to whom in Kubernetes: default-deny NetworkPolicies for the
namespace, then exactly the flows the mesh needs. mTLS says who a caller is; these keep
everyone else from reaching the ports at all.

  anyone (the entry point)      → gateway :3000
  gateway                       → automation (both pools) :3003
  a pool's automation           → that pool's pipeline :8001
  Prometheus (namespace "monitoring") → every metrics port, Envoy's stats listener :9902
  the kubelet                   → the plaintext health ports :9093 / :9094
  gateway, automation, pipeline → the OpenTelemetry Collector :4317 (their spans)
  the Collector                 → its trace backend, any address on :4317 (patch for yours)
  every pod                     → cluster DNS :53
"""

from __future__ import annotations

from typing import Any

from opsconductor.gateway.variants import NAMESPACE, OTLP_PORT
from opsconductor.identity.certmanager import documents_yaml
from opsconductor.stack.ports import CONTAINER_PORTS
from services.common.names import POOLS

API_VERSION = "networking.k8s.io/v1"
PROMETHEUS_NAMESPACE = "monitoring"
_NAME = "app.kubernetes.io/name"
_POOL = "opsconductor.io/pool"


def _pods(name: str, pool: str | None = None) -> dict[str, Any]:
    labels = {_NAME: name, **({_POOL: pool} if pool else {})}
    return {"matchLabels": labels}


def _peer_pods(name: str, pool: str | None = None) -> dict[str, Any]:
    return {"podSelector": _pods(name, pool)}


COLLECTOR_HEALTH_PORT = 13133  # the Collector's health_check extension (deploy/otel/collector.yaml)
# Spans go to the Collector over OTLP/gRPC; every traced workload may open that one flow.
_TO_COLLECTOR = {"to": [{"podSelector": {"matchLabels": {_NAME: "otel-collector"}}}], "ports": [
    {"protocol": "TCP", "port": OTLP_PORT}]}
_PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": PROMETHEUS_NAMESPACE}},
               "podSelector": {"matchLabels": {_NAME: "prometheus"}}}


def _ports(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def _policy(name: str, pods: dict[str, Any], ingress: list[dict[str, Any]] | None,
            egress: list[dict[str, Any]] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": pods, "policyTypes": []}
    if ingress is not None:
        spec["policyTypes"].append("Ingress")
        spec["ingress"] = ingress
    if egress is not None:
        spec["policyTypes"].append("Egress")
        spec["egress"] = egress
    return {"apiVersion": API_VERSION, "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "labels": {"app.kubernetes.io/part-of": "opsconductor-mesh"}},
            "spec": spec}


def policies() -> list[dict[str, Any]]:
    automation, pipeline, gateway = (CONTAINER_PORTS[name] for name in ("automation", "pipeline", "gateway"))
    documents = [
        # Nothing in or out of any pod of the namespace unless a policy below allows it.
        _policy("default-deny", {}, [], []),
        _policy("dns", {}, None, [{
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]),
        _policy("gateway", _pods("gateway"),
                [{"ports": _ports(gateway["gateway"])},  # the mesh's only entry point
                 {"from": [_PROMETHEUS], "ports": _ports(gateway["stats"])}],
                [{"to": [_peer_pods("automation")], "ports": _ports(automation["grpc"])}, _TO_COLLECTOR]),
        _policy("otel-collector", _pods("otel-collector"),
                [{"from": [_peer_pods(name) for name in ("gateway", "automation", "pipeline")],
                  "ports": _ports(OTLP_PORT)},
                 {"ports": _ports(COLLECTOR_HEALTH_PORT)}],  # the kubelet's probes; health only
                # Its backend (TRACES_EXPORT_ENDPOINT) may live anywhere: in-cluster or a vendor's.
                [{"ports": _ports(OTLP_PORT)}]),
    ]
    for pool in POOLS:
        documents.append(_policy(
            f"automation-{pool}", _pods("automation", pool),
            [{"from": [_peer_pods("gateway")], "ports": _ports(automation["grpc"])},
             {"from": [_PROMETHEUS], "ports": _ports(automation["metrics"])},
             # The kubelet probes from the node, whose address no selector names; the port
             # answers grpc.health.v1 and nothing else.
             {"ports": _ports(automation["health"])}],
            [{"to": [_peer_pods("pipeline", pool)], "ports": _ports(pipeline["grpc"])}, _TO_COLLECTOR]))
        documents.append(_policy(
            f"pipeline-{pool}", _pods("pipeline", pool),
            [{"from": [_peer_pods("automation", pool)], "ports": _ports(pipeline["grpc"])},
             {"from": [_PROMETHEUS], "ports": _ports(pipeline["metrics"])},
             {"ports": _ports(pipeline["health"])}],
            # Its tools reach only TOOL_ALLOWLIST (loopback by default): widen both together.
            # The Collector is a flow of the pipeline itself; its port is in MESH_PORTS, so no tool
            # reaches it.
            [_TO_COLLECTOR]))
    return documents


def network_policies_yaml() -> str:
    header = ("Default-deny NetworkPolicies for the namespace, then exactly the flows the mesh needs.\n"
              "Generated by `make generate` (opsconductor/identity/network.py); do not edit.")
    return documents_yaml(policies(), header)
