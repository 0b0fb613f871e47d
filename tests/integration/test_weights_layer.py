"""Envoy reads the weights layer as kubelet mounts ConfigMap gateway-weights (a `..data`
symlink to a generation directory, one file per key, top-level links into it) and as `up`
publishes it, follows each atomic swap, and refuses a runtime override from its admin."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from opsconductor.gateway import runtime
from opsconductor.gateway.admin import EnvoyAdmin, Weights
from opsconductor.gateway.config import render, to_yaml
from opsconductor.gateway.settings import EnvoySettings
from opsconductor.release import kubernetes
from opsconductor.stack.weights import wait_applied
from tests.support.procs import BIN, Process, free_port, wait_for


def kubelet_mount(directory: Path, data: dict[str, str], generation: str) -> None:
    """What kubelet's atomic writer does with a ConfigMap volume update."""
    made = directory / f"..{generation}"
    made.mkdir()
    for key, value in data.items():
        (made / key).write_text(value)
        if not (directory / key).is_symlink():
            (directory / key).symlink_to(f"{runtime.DATA_LINK}/{key}")
    (directory / "..data_tmp").symlink_to(made.name)
    os.replace(directory / "..data_tmp", directory / runtime.DATA_LINK)


@pytest.fixture
def envoy(tmp_path):
    layer = tmp_path / "runtime"
    layer.mkdir()
    settings = replace(EnvoySettings(), listen_port=free_port(), admin_port=free_port(), stats_port=free_port(),
                       access_log_path=str(tmp_path / "access.log"), runtime_dir=str(layer))
    config = tmp_path / "envoy.yaml"
    config.write_text(to_yaml(render(settings)))
    process = Process("envoy", [str(BIN / "envoy"), "-c", str(config), "--disable-hot-restart", "--concurrency", "1",
                                "--log-level", "warn"], {}, tmp_path / "envoy.log").start()
    admin = EnvoyAdmin(f"http://127.0.0.1:{settings.admin_port}")
    try:
        wait_for(lambda: _answers(admin), 30, "envoy's admin to answer")
        yield layer, admin
    finally:
        process.stop()


def _answers(admin: EnvoyAdmin) -> bool:
    try:
        admin.weights()
    except Exception:  # noqa: BLE001 - not up yet
        return False
    return True


def test_envoy_follows_the_configmap_as_kubelet_mounts_it(envoy):
    layer, admin = envoy
    assert admin.weights() == Weights(90, 10)  # no layer yet: the configured split
    for generation, weights in enumerate((Weights(50, 50), Weights(100, 0), Weights(25, 75))):
        data = yaml.safe_load(kubernetes.configmap_yaml(weights))["data"]
        started = time.monotonic()
        kubelet_mount(layer, data, f"2026_12_01_{generation}")
        wait_applied([admin], weights, timeout_s=5)
        print(f"kubelet-style swap to {weights}: applied after {(time.monotonic() - started) * 1000:.1f} ms")


def test_envoy_follows_ups_layer_and_refuses_an_admin_override(envoy):
    layer, admin = envoy
    runtime.publish(layer, Weights(40, 60))
    wait_applied([admin], Weights(40, 60), timeout_s=5)
    request = urllib.request.Request(f"{admin.base_url}/runtime_modify?routing.automation.canary=0", method="POST")
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(request, timeout=5)
    entries = json.loads(urllib.request.urlopen(f"{admin.base_url}/runtime", timeout=5).read())
    assert entries["layers"] == ["static", runtime.LAYER_NAME]
    assert admin.weights() == Weights(40, 60)
