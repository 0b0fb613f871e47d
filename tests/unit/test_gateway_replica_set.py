"""The gateway as a replica set, as data: each replica's ports (the table, or a block from a
base port), clashes refused naming both uses, one config per replica over the same weights
layer, each replica scraped, and `canary set --runtime-dir` writing the layer directly."""

from __future__ import annotations

import pytest

from opsconductor.cli.main import main
from opsconductor.gateway import runtime
from opsconductor.gateway.admin import Weights
from opsconductor.stack import ports, state, weights
from opsconductor.stack.spec import StackSpec
from opsconductor.stack.supervisor import Stack


def test_replica_one_keeps_the_fixed_ports_and_the_others_follow_the_table(tmp_path):
    spec = StackSpec(state_dir=tmp_path, gateway_replicas=3)
    assert spec.gateway_ports(0) == {"gateway": 3000, "envoy_admin": 9901, "envoy_stats": 9902}
    assert spec.gateway_ports(1) == {"gateway": 3050, "envoy_admin": 9950, "envoy_stats": 9970}
    assert spec.gateway_ports(2) == {"gateway": 3051, "envoy_admin": 9951, "envoy_stats": 9971}


@pytest.mark.parametrize("replicas", [2, 4])
def test_a_gateway_base_port_gives_replicas_a_contiguous_block(tmp_path, replicas):
    spec = StackSpec(state_dir=tmp_path, gateway_replicas=replicas, gateway_base_port=40000)
    used = sorted(port for i in range(1, replicas) for port in spec.gateway_ports(i).values())
    assert used == list(range(40000, 40000 + 3 * (replicas - 1)))


@pytest.mark.parametrize("extra, message", [
    ({"gateway_base_port": 3010}, "gateway-2 gateway and the stable-1 automation gRPC"),
    ({"gateway_base_port": 9901}, "Envoy admin and the gateway-2 gateway"),
    ({"gateway_base_port": 65534}, "outside 1-65535"),
    ({"gateway_replicas": 21}, "at most 20 gateway replicas"),
])
def test_gateway_ports_that_clash_or_overflow_are_refused(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        StackSpec(state_dir=tmp_path, **{"gateway_replicas": 2, **extra})


def test_each_replica_has_its_own_config_ports_and_log_over_one_layer(tmp_path):
    stack = Stack(StackSpec(state_dir=tmp_path, gateway_replicas=2, with_prometheus=False, with_page=False))
    specs = [stack.envoy_spec(gateway) for gateway in stack.gateways]
    assert [s.name for s in specs] == ["envoy", "envoy-2"] and {s.replica_set for s in specs} == {"gateway"}
    assert all(s.kind == "gateway" and s.essential for s in specs)
    assert specs[0].ports == {"gateway": 3000, "admin": 9901, "stats": 9902}
    assert specs[1].ports == {"gateway": 3050, "admin": 9950, "stats": 9970}
    configs = [s.argv[s.argv.index("-c") + 1] for s in specs]
    assert len(set(configs)) == 2
    settings = [stack.envoy_settings(gateway) for gateway in stack.gateways]
    assert {s.runtime_dir for s in settings} == {str(tmp_path.resolve() / state.RUNTIME_DIR)}
    assert len({s.access_log_path for s in settings}) == 2
    assert [a.base_url for a in stack.gateway_admins()] == ["http://127.0.0.1:9901", "http://127.0.0.1:9950"]
    required = stack.required_ports()
    assert required["gateway"] == 3000 and required["envoy-2 gateway"] == 3050


def test_every_replica_is_scraped_as_its_own_instance(tmp_path):
    stack = Stack(StackSpec(state_dir=tmp_path, gateway_replicas=2, with_page=False))
    stack.prometheus_spec()
    config = (tmp_path / "prometheus.yml").read_text()
    assert "127.0.0.1:9902" in config and "127.0.0.1:9970" in config and "gateway-2" in config


def test_the_layer_follows_weights_json_and_is_removed_without_it(tmp_path):
    assert weights.publish_saved(tmp_path) is None
    assert runtime.read(weights.runtime_dir(tmp_path)) is None
    assert weights.set_canary_share(tmp_path, 35) == Weights(65, 35)
    assert state.read_weights(tmp_path) == Weights(65, 35) == runtime.read(weights.runtime_dir(tmp_path))
    (tmp_path / state.WEIGHTS_FILE).unlink()
    weights.publish_saved(tmp_path)
    assert runtime.read(weights.runtime_dir(tmp_path)) is None  # the gateways fall back to their config


def test_disagreeing_gateways_are_named():
    same = {"envoy": {"stable": 50, "canary": 50}, "envoy-2": {"stable": 50, "canary": 50}}
    assert weights.disagreement(same) == ""
    apart = {**same, "envoy-2": {"stable": 90, "canary": 10}, "envoy-3": "unreachable"}
    assert weights.disagreement(apart) == ("the gateways do not apply the same weights: envoy 50/50, envoy-2 90/10, "
                                           "envoy-3 unknown (unreachable)")


@pytest.mark.parametrize("argv, expected, said", [
    (["set", "30"], Weights(70, 30), "weights: stable 70 % / canary 30 %"),
    (["rollback"], Weights(100, 0), "rolled back: every call goes to the stable pool")])
def test_canary_runtime_dir_writes_the_layer_a_gateway_reads(tmp_path, capsys, argv, expected, said):
    assert main(["canary", *argv, "--runtime-dir", str(tmp_path), "--state-dir", str(tmp_path / "none")]) == 0
    assert runtime.read(tmp_path) == expected
    assert said in capsys.readouterr().out


def test_the_port_table_lists_the_gateway_replicas():
    table = ports.markdown_table()
    assert "gateway replica *i* ≥ 1 (`--gateway-replicas`): gateway | 3050+*i*-1 | `--gateway-base-port`" in table
