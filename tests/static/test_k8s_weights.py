"""`canary set|rollback|promote --kubernetes` against a recording `kubectl` on PATH (no cluster
runs here): the exact command lines, the ConfigMap each one applies (validated against the
Kubernetes schemas), and one-line failures when kubectl fails or is missing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from opsconductor.gateway import runtime
from opsconductor.gateway.admin import Weights
from opsconductor.release import kubernetes
from tests.support.procs import BIN

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "deploy" / "k8s" / "base" / "gateway-weights.yaml"
GATEWAY = ROOT / "deploy" / "k8s" / "base" / "gateway.yaml"
# Records each call (argv and stdin) as a JSON line; answers `get deployment` with an image and
# fails with a message when FAIL_ON is in its argv.
FAKE_KUBECTL = """#!{python}
import json, os, sys
stdin = "" if sys.stdin.isatty() else sys.stdin.read()
with open(os.environ["KUBECTL_RECORD"], "a") as record:
    record.write(json.dumps({{"argv": sys.argv[1:], "stdin": stdin}}) + "\\n")
if os.environ.get("FAIL_ON") and os.environ["FAIL_ON"] in sys.argv:
    print('error: the server has asked for the client to provide credentials', file=sys.stderr)
    sys.exit(1)
if "get" in sys.argv and "deployment" in sys.argv:
    name = sys.argv[sys.argv.index("deployment") + 1]
    print(f"registry.example/opsconductor-mesh:0.2.0-{{name.split('-')[0]}}", end="")
"""


@pytest.fixture
def kubectl(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "kubectl"
    fake.write_text(FAKE_KUBECTL.format(python=os.sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    record = tmp_path / "kubectl.jsonl"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "KUBECTL_RECORD": str(record)}

    def run(*args: str, **extra_env: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
        record.unlink(missing_ok=True)
        done = subprocess.run([str(BIN / "opsconductor"), "canary", *args, "--state-dir", str(tmp_path / "none")],
                              capture_output=True, text=True, timeout=60, env={**env, **extra_env})
        calls = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
        return done, calls

    return run


def applied(call: dict) -> dict:
    return yaml.safe_load(call["stdin"])


@pytest.mark.parametrize("args, context, namespace, weights", [
    (("set", "30"), [], "opsconductor", {"stable": "70", "canary": "30"}),
    (("set", "100", "--context", "prod-eu", "--namespace", "mesh"), ["--context", "prod-eu"], "mesh",
     {"stable": "0", "canary": "100"}),
    (("rollback", "--namespace", "staging"), [], "staging", {"stable": "100", "canary": "0"}),
])
def test_a_change_applies_the_weights_configmap_with_kubectl(kubectl, args, context, namespace, weights, tmp_path):
    done, calls = kubectl(*args, "--kubernetes", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert [call["argv"] for call in calls] == [[*context, "--namespace", namespace, "apply", "--filename", "-"]]
    manifest = applied(calls[0])
    assert manifest["metadata"] == {**yaml.safe_load(COMMITTED.read_text())["metadata"], "namespace": namespace}
    # A change of the weights turns mirroring to the canary off, as it does locally.
    assert manifest["data"] == {**{f"routing.automation.{pool}": value for pool, value in weights.items()},
                                "routing.automation.mirror": "0"}
    result = json.loads(done.stdout)
    assert result["weights"] == {pool: int(value) for pool, value in weights.items()}
    assert result["kubernetes"]["command"] == " ".join(["kubectl", *context, "--namespace", namespace,
                                                        "apply", "--filename", "-"])
    # What kubectl was given is a valid ConfigMap for Kubernetes itself.
    path = tmp_path / "applied.yaml"
    path.write_text(calls[0]["stdin"])
    check = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", "--quiet", str(path)],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


def test_promote_moves_stable_to_the_canarys_images_between_two_weight_changes(kubectl):
    done, calls = kubectl("promote", "--kubernetes", "--context", "prod")
    assert done.returncode == 0, done.stderr
    verbs = [call["argv"][4:6] for call in calls]
    assert verbs == [["get", "deployment"], ["get", "deployment"], ["apply", "--filename"],
                     ["set", "image"], ["set", "image"], ["rollout", "status"], ["rollout", "status"],
                     ["apply", "--filename"]]
    assert [applied(calls[i])["data"]["routing.automation.canary"] for i in (2, 7)] == ["100", "0"]
    assert calls[3]["argv"][6:] == ["deployment/automation-stable",
                                    "automation=registry.example/opsconductor-mesh:0.2.0-automation"]
    assert calls[4]["argv"][6:] == ["deployment/pipeline-stable",
                                    "pipeline=registry.example/opsconductor-mesh:0.2.0-pipeline"]
    assert all(call["argv"][:3] == ["--context", "prod", "--namespace"] for call in calls)


def test_a_failing_rollout_leaves_the_canary_serving_and_says_which_step(kubectl):
    done, calls = kubectl("promote", "--kubernetes", FAIL_ON="rollout")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "rollout status deployment/automation-stable" in done.stderr
    assert "credentials" in done.stderr and "Traceback" not in done.stderr
    assert [applied(c)["data"]["routing.automation.canary"] for c in calls if "apply" in c["argv"]] == ["100"]


def test_kubectl_failing_or_missing_is_one_line_with_its_exit_code(kubectl, tmp_path):
    done, _ = kubectl("set", "20", "--kubernetes", FAIL_ON="apply")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "credentials" in done.stderr
    done, _ = kubectl("set", "20", "--kubernetes", PATH=str(tmp_path / "empty"))
    assert done.returncode == 4 and "kubectl is not installed" in done.stderr


@pytest.mark.parametrize("flag, value", [("--namespace", "Not_A_Namespace"), ("--namespace", "a" * 64),
                                         ("--context", "--kubeconfig=/etc/passwd")])
def test_hostile_cluster_flags_are_refused_before_kubectl_runs(kubectl, flag, value):
    done, calls = kubectl("set", "20", "--kubernetes", f"{flag}={value}")
    assert done.returncode == 2 and calls == [] and done.stderr.count("\n") == 1


def test_the_committed_configmap_is_the_default_split_and_every_gateway_pod_mounts_it_whole():
    assert COMMITTED.read_text() == kubernetes.configmap_yaml()
    assert yaml.safe_load(COMMITTED.read_text())["data"] == runtime.layer_files(Weights(90, 10))
    pod = next(doc for doc in yaml.safe_load_all(GATEWAY.read_text()) if doc["kind"] == "Deployment")
    spec = pod["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v.get("configMap", {}).get("name") == kubernetes.CONFIGMAP_NAME)
    (mount,) = [m for c in spec["containers"] for m in c["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["mountPath"] == "/etc/envoy/runtime" and "subPath" not in mount
