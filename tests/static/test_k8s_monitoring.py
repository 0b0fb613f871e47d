"""Kubernetes observability of the release tools: the Prometheus of deploy/k8s/monitoring and
the PodMonitors and PrometheusRules of deploy/k8s/prometheus-operator carry exactly the rules
the local stack loads, scrape the pods the mesh's manifests run under the labels the queries
use, pass promtool, and match prometheus-operator's API schemas (the npm package
@kubernetes-models/prometheus-operator, pinned in tests/static/crd_schemas/)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from opsconductor.identity.network import PROMETHEUS_NAMESPACE
from opsconductor.observability import kubernetes as monitoring
from opsconductor.observability.prometheus_config import JOBS
from tests.support import crd_schemas

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OPERATOR_FILES = ("pod-monitors.yaml", "prometheus-rules.yaml")


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def operator_objects() -> list[dict]:
    return [doc for name in OPERATOR_FILES for doc in documents(K8S / "prometheus-operator" / name)]


def own_prometheus() -> dict[str, dict]:
    return {doc["kind"] + "/" + doc["metadata"]["name"]: doc
            for doc in documents(K8S / "monitoring" / "prometheus.yaml")}


@pytest.fixture(scope="module")
def schemas() -> Path:
    return crd_schemas.install()


def test_the_pod_monitors_and_prometheus_rules_match_the_operators_schemas(schemas):
    objects = operator_objects()
    assert sorted(o["kind"] for o in objects) == ["PodMonitor"] * len(JOBS) + ["PrometheusRule"] * len(
        monitoring.rule_files())
    result = crd_schemas.validate(objects)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == len(objects), result.stdout


def _first(kind: str) -> dict:
    return next(o for o in operator_objects() if o["kind"] == kind)


@pytest.mark.parametrize("kind, change, reason", [
    ("PodMonitor", lambda s: s["podMetricsEndpoints"][0].update(scheme="httpz"), "allowed values"),
    ("PodMonitor", lambda s: s["podMetricsEndpoints"][0]["relabelings"][0].update(action="rename"), "allowed values"),
    ("PodMonitor", lambda s: s["podMetricsEndpoints"][0].update(interval="15 seconds"), "must match pattern"),
    ("PrometheusRule", lambda s: s["groups"][0]["rules"][0].pop("expr"), "must have required property"),
    ("PrometheusRule", lambda s: s["groups"][0].update(interval="often"), "must match pattern"),
])
def test_the_schema_check_catches_a_broken_resource(schemas, kind, change, reason):
    broken = _first(kind)
    change(broken["spec"])
    result = crd_schemas.validate([broken])
    assert result.returncode == 1 and reason in result.stdout, result.stdout


def test_every_copy_carries_exactly_the_rules_the_local_stack_loads():
    files = monitoring.rule_files()
    assert len(files) >= 4
    rules = {o["metadata"]["name"]: o["spec"]["groups"] for o in operator_objects() if o["kind"] == "PrometheusRule"}
    assert rules == {f"opsconductor-{Path(name).stem}": yaml.safe_load(text)["groups"] for name, text in files.items()}
    assert own_prometheus()["ConfigMap/prometheus-rules"]["data"] == files


def test_promtool_accepts_the_operator_rules_and_the_prometheus_config(tmp_path):
    for rule in (o for o in operator_objects() if o["kind"] == "PrometheusRule"):
        path = tmp_path / f"{rule['metadata']['name']}.yml"
        path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        result = subprocess.run([shutil.which("promtool"), "check", "rules", str(path)], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
    # The config, with /etc/prometheus moved here: promtool reads the rule files and TLS files it names.
    config = own_prometheus()["ConfigMap/prometheus-config"]["data"]["prometheus.yml"]
    root = tmp_path / "etc-prometheus"
    (root / "rules").mkdir(parents=True)
    for name, text in monitoring.rule_files().items():
        (root / "rules" / name).write_text(text)
    (root / "identity").mkdir()
    for name in ("ca.crt", "tls.crt", "tls.key"):
        (root / "identity" / name).write_text("")
    # Debian's Prometheus is built without Kubernetes discovery: promtool checks the rest (TLS,
    # relabelling, rule files) with the pod discovery swapped for a target, which is checked here.
    parsed = yaml.safe_load(config.replace("/etc/prometheus/", f"{root}/"))
    for job in parsed["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs") == [{"role": "pod", "namespaces": {"names": ["opsconductor"]}}]
        job["static_configs"] = [{"targets": ["127.0.0.1:1"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(parsed))
    result = subprocess.run([shutil.which("promtool"), "check", "config", "--syntax-only", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_both_scrape_the_pods_the_mesh_runs_under_the_labels_the_queries_use():
    pods: dict[str, set[str]] = {}
    for path in (K8S / "base").glob("*.yaml"):
        for doc in documents(path):
            if doc.get("kind") == "Deployment":
                template = doc["spec"]["template"]
                ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
                pods.setdefault(template["metadata"]["labels"]["app.kubernetes.io/name"], set()).update(ports)
                if template["metadata"]["labels"]["app.kubernetes.io/name"] in ("automation", "pipeline"):
                    # The pool workloads: the queries group them by pool.
                    assert monitoring.POOL_LABEL in template["metadata"]["labels"], path
    config = yaml.safe_load(own_prometheus()["ConfigMap/prometheus-config"]["data"]["prometheus.yml"])
    assert [job["job_name"] for job in config["scrape_configs"]] == list(JOBS)
    monitors = {o["metadata"]["name"]: o for o in operator_objects() if o["kind"] == "PodMonitor"}
    for job in config["scrape_configs"]:
        name, port = job["relabel_configs"][0]["regex"].split(";")
        assert port in pods[name], (job["job_name"], pods)
        monitor = monitors[f"opsconductor-{job['job_name']}"]
        endpoint = monitor["spec"]["podMetricsEndpoints"][0]
        assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}
        assert (endpoint["port"], endpoint["path"]) == (port, job["metrics_path"])
        assert endpoint["relabelings"][0] == {"targetLabel": "job", "replacement": job["job_name"], "action": "replace"}
        labels = {r["target_label"] for r in job["relabel_configs"][1:]}
        assert labels == {r["targetLabel"] for r in endpoint["relabelings"][1:]}
        assert labels == ({"instance"} if job["job_name"] == "envoy" else {"instance", "pool"})
        assert endpoint["tlsConfig"]["serverName"] == job["tls_config"]["server_name"]


def test_the_prometheus_pod_is_the_one_the_network_policies_let_scrape():
    deployment = own_prometheus()["Deployment/prometheus"]
    assert deployment["metadata"]["namespace"] == PROMETHEUS_NAMESPACE
    assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "prometheus"
    policies = (K8S / "base" / "network-policies.yaml").read_text()
    assert PROMETHEUS_NAMESPACE in policies and "prometheus" in policies
    role = own_prometheus()["Role/prometheus-discovery"]
    assert role["metadata"]["namespace"] == "opsconductor"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    binding = own_prometheus()["RoleBinding/prometheus-discovery"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prometheus", "namespace": PROMETHEUS_NAMESPACE}]
