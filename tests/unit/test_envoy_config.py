"""The gateway's Envoy config as data: the routing, failover and weight rules hold in every
variant, and the admin client reads and sets what Envoy reports. (Envoy's own validation of
each variant is in tests/static/test_envoy_validate.py.)"""

from __future__ import annotations

import json
from dataclasses import replace
import re
from pathlib import Path

import pytest
import yaml

from opsconductor import yamltext
from opsconductor.gateway import runtime
from opsconductor.gateway import variants as envoy_variants
from opsconductor.gateway.admin import EnvoyAdmin, PoolCalls, PoolHealth, Weights, validate_weights
from opsconductor.gateway.config import render, to_yaml
from opsconductor.gateway.settings import EnvoySettings, JwtSettings, TracingSettings

ROOT = Path(__file__).resolve().parents[2]
AUTOMATION = "/opsconductor.automation.v1.AutomationService/"


def routes(config: dict) -> list[dict]:
    listener = config["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["route_config"]["virtual_hosts"][0]["routes"]


def http_filters(config: dict) -> list[str]:
    listener = config["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return [f["name"].rsplit(".", 1)[-1] for f in hcm["http_filters"]]


def clusters(config: dict) -> dict[str, dict]:
    return {c["name"]: c for c in config["static_resources"]["clusters"]}


def route_for(config: dict, path: str, headers: dict[str, str] | None = None) -> dict:
    """The first route matching like Envoy would (regex path, exact header values)."""
    for route in routes(config):
        match = route["match"]
        if route["name"].startswith("not_grpc"):  # a gRPC call's method and content type never match them
            continue
        if not re.fullmatch(match["safe_regex"]["regex"], path):
            continue
        wanted = {h["name"]: h["string_match"]["exact"] for h in match.get("headers", [])}
        if all((headers or {}).get(name) == value for name, value in wanted.items()):
            return route
    raise AssertionError(f"no route for {path}")


# --- Envoy itself accepts every variant -----------------------------------------------------


def test_configmaps_carry_the_variant_config_verbatim():
    for path, variant in (("deploy/k8s/base/envoy-config.yaml", "k8s"),
                          ("deploy/k8s/production/envoy-config.yaml", "production")):
        configmap = yaml.safe_load((ROOT / path).read_text())
        assert configmap["kind"] == "ConfigMap"
        assert configmap["data"]["envoy.yaml"] == envoy_variants.envoy_yaml(variant)


@pytest.mark.parametrize("variant", sorted(envoy_variants.VARIANTS))
def test_yaml_text_reads_back_as_the_rendered_data(variant):
    config = render(envoy_variants.VARIANTS[variant]())
    assert yaml.safe_load(to_yaml(config)) == config


def test_yaml_writer_keeps_ambiguous_strings_strings():
    data = {"on": "yes", "list": ["10s", "0.0.0.0", "%START_TIME%", "*", "a: b", "", "x#y"],
            "empty": {}, "none": [], "n": 3, "f": 0.5, "t": True, "block": yamltext.Literal("a\nb\n")}
    assert yaml.safe_load(yamltext.dump(data)) == data


# --- what the gateway does ------------------------------------------------------------------

def test_filter_order_puts_cors_first_and_router_last():
    assert http_filters(render(EnvoySettings())) == [
        "cors", "grpc_web", "grpc_stats", "local_ratelimit", "router"]
    jwt = JwtSettings(issuer="https://issuer", audiences=("a",), jwks_path="/j.json")
    assert http_filters(render(EnvoySettings(jwt=jwt))) == [
        "cors", "grpc_web", "grpc_stats", "local_ratelimit", "jwt_authn", "router"]


def test_jwt_is_required_on_automation_calls_and_health_watch_streams_only():
    jwt = JwtSettings(issuer="https://issuer", audiences=("a",), jwks_path="/j.json")
    listener = render(EnvoySettings(jwt=jwt))["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (jwt_filter,) = [f for f in hcm["http_filters"] if f["name"].endswith("jwt_authn")]
    rules = jwt_filter["typed_config"]["rules"]
    assert [rule["match"] for rule in rules] == [{"prefix": AUTOMATION}, {"path": "/grpc.health.v1.Health/Watch"}]
    assert jwt_filter["typed_config"]["providers"]["opsconductor"]["local_jwks"] == {
        "filename": "/j.json"}


def test_weighted_route_splits_90_10_by_default_under_runtime_keys():
    config = render(EnvoySettings())
    weighted = route_for(config, AUTOMATION + "Execute")["route"]["weighted_clusters"]
    assert weighted["runtime_key_prefix"] == "routing.automation"
    assert weighted["clusters"] == [{"name": "stable", "weight": 90},
                                    {"name": "canary", "weight": 10}]
    static = config["layered_runtime"]["layers"]
    assert {k: v for k, v in static[0]["static_layer"].items() if k.startswith("routing.")} == {
        "routing.automation.stable": 90, "routing.automation.canary": 10, "routing.automation.mirror": 0}
    assert not any("admin_layer" in layer for layer in static), "one process's override would split replicas"


def test_canary_header_pins_a_pool_whatever_the_weights():
    config = render(EnvoySettings(canary_weight=0))
    assert route_for(config, AUTOMATION + "Execute", {"x-canary": "always"})["route"][
        "cluster"] == "canary_pool"
    assert route_for(config, AUTOMATION + "ListTools", {"x-canary": "never"})["route"][
        "cluster"] == "stable_pool"
    assert "weighted_clusters" in route_for(config, AUTOMATION + "Execute",
                                            {"x-canary": "sometimes"})["route"]


def test_only_known_methods_are_routed():
    config = render(EnvoySettings())
    for path in (AUTOMATION + "Execute", AUTOMATION + "ListTools", "/grpc.health.v1.Health/Check",
                 "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                 "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"):
        route_for(config, path)
    for path in (AUTOMATION + "Nope", AUTOMATION, "/opsconductor.pipeline.v1.PipelineService/Run",
                 AUTOMATION + "Execute/x"):
        with pytest.raises(AssertionError, match="no route"):
            route_for(config, path)


def test_what_is_not_grpc_is_refused_with_415_before_any_other_route():
    method_route, options_route, type_route = routes(render(EnvoySettings()))[:3]
    for route in (method_route, options_route, type_route):
        assert route["name"].startswith("not_grpc") and route["direct_response"] == {"status": 415}
        # Envoy answers application/grpc requests in gRPC's form: INVALID_ARGUMENT, not UNKNOWN.
        added = {h["header"]["key"]: h["header"]["value"] for h in route["response_headers_to_add"]}
        assert added["grpc-status"] == "3" and "POST" in added["grpc-message"]
    (method,) = method_route["match"]["headers"]
    assert method["name"] == ":method" and method["invert_match"]
    assert method["string_match"] == {"safe_regex": {"regex": "POST|OPTIONS"}}
    # An OPTIONS that is no CORS preflight is refused too; a preflight goes on to the CORS filter.
    assert options_route["match"]["headers"] == [
        {"name": ":method", "string_match": {"exact": "OPTIONS"}},
        {"name": "access-control-request-method", "present_match": False}]
    post, content_type = type_route["match"]["headers"]
    assert post == {"name": ":method", "string_match": {"exact": "POST"}}
    assert content_type["invert_match"] is True and content_type["treat_missing_header_as_empty"] is True
    regex = content_type["string_match"]["safe_regex"]["regex"]  # Envoy matches the whole value
    for spoken in ("application/grpc", "application/grpc+proto", "application/grpc-web",
                   "application/grpc-web+proto", "application/grpc-web-text", "application/grpc-web-text+proto"):
        assert re.fullmatch(regex, spoken), spoken
    # Parameters too: neither spec writes any, and Envoy's gRPC-Web filter would not translate them.
    for refused in ("text/plain", "application/json", "application/grpc-web+json", "application/grpc+json",
                    "application/x-www-form-urlencoded", "application/grpcx", "application/grpc; charset=utf-8",
                    "application/grpc-web+proto; charset=utf-8", "Application/GRPC", "application/grpc-web ", ""):
        assert not re.fullmatch(regex, refused), refused


def test_admission_is_bounded_per_pool_and_per_caller_connection():
    config = render(EnvoySettings())
    for name in ("stable_pool", "canary_pool", "stable", "canary"):
        (thresholds,) = clusters(config)[name]["circuit_breakers"]["thresholds"]
        assert thresholds == {"priority": "DEFAULT", "max_connections": 32, "max_pending_requests": 128,
                              "max_requests": 512, "max_retries": 64}
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["http2_protocol_options"] == {"max_concurrent_streams": 256}
    monitor = config["overload_manager"]["resource_monitors"][0]["typed_config"]
    assert monitor["max_active_downstream_connections"] == 4096
    with pytest.raises(ValueError, match="max_requests"):
        EnvoySettings(max_requests=0)


def test_only_hosts_that_fail_to_answer_are_ejected_never_for_their_replies():
    detection = clusters(render(EnvoySettings()))["stable_pool"]["outlier_detection"]
    assert detection["split_external_local_origin_errors"] is True
    assert detection["consecutive_local_origin_failure"] == 3
    assert detection["enforcing_consecutive_local_origin_failure"] == 100
    for enforcing in ("enforcing_consecutive_5xx", "enforcing_consecutive_gateway_failure", "enforcing_success_rate",
                      "enforcing_local_origin_success_rate"):
        assert detection[enforcing] == 0, enforcing


def test_each_pool_fails_over_to_the_other_through_its_aggregate():
    config = render(EnvoySettings())
    by_name = clusters(config)
    for pool, other in (("stable", "canary"), ("canary", "stable")):
        aggregate = by_name[pool]["cluster_type"]
        assert aggregate["name"] == "envoy.clusters.aggregate"
        assert aggregate["typed_config"]["clusters"] == [f"{pool}_pool", f"{other}_pool"]
        real = by_name[f"{pool}_pool"]
        # A pool whose hosts are all down must get nothing (not the 50 % panic default).
        assert real["common_lb_config"]["healthy_panic_threshold"] == {"value": 0}
        (check,) = real["health_checks"]
        assert check["grpc_health_check"] == {
            "service_name": "opsconductor.automation.v1.AutomationService"}
        assert check["no_traffic_interval"] == "1s"
        assert "http2_protocol_options" in real["typed_extension_protocol_options"][
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]
    retry = route_for(config, AUTOMATION + "Execute")["route"]["retry_policy"]
    assert retry["retry_priority"]["name"] == "envoy.retry_priorities.previous_priorities"
    assert set(retry["retry_on"].split(",")) == {"cancelled", "unavailable", "reset", "connect-failure",
                                                 "refused-stream"}


def test_timeouts_stay_above_the_services_30_s_deadline_and_bound_streams_too():
    config = render(EnvoySettings())
    for path in (AUTOMATION + "Execute", "/grpc.health.v1.Health/Watch",
                 "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"):
        action = route_for(config, path)["route"]
        assert action["timeout"] == "35s"
        # Both: a call without grpc-timeout is bounded too (Envoy ignores `timeout` for gRPC here).
        assert action["max_stream_duration"] == {"max_stream_duration": "35s"}, path
        assert int(action["retry_policy"]["per_try_timeout"].rstrip("s")) >= 30


def test_admin_is_loopback_and_stats_listener_serves_one_path():
    for variant in envoy_variants.VARIANTS:
        config = render(envoy_variants.VARIANTS[variant]())
        assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
        for listener in config["static_resources"]["listeners"]:
            assert listener["enable_reuse_port"] is False
    stats = render(envoy_variants.compose_settings())["static_resources"]["listeners"][1]
    assert stats["address"]["socket_address"]["address"] == "0.0.0.0"
    vhost = stats["filter_chains"][0]["filters"][0]["typed_config"]["route_config"][
        "virtual_hosts"][0]
    assert [r["match"] for r in vhost["routes"]][0]["path"] == "/stats/prometheus"
    assert vhost["routes"][-1] == {"match": {"prefix": "/"}, "direct_response": {"status": 404}}


def test_container_variants_use_dns_names():
    compose = clusters(render(envoy_variants.compose_settings()))
    assert compose["stable_pool"]["type"] == "STRICT_DNS"
    endpoint = compose["canary_pool"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert endpoint["endpoint"]["address"]["socket_address"] == {"address": "automation-canary",
                                                                 "port_value": 3003}
    assert clusters(render(envoy_variants.local_settings(stable_replicas=2)))["stable_pool"][
        "type"] == "STATIC"


def test_settings_reject_what_envoy_would_run_badly():
    with pytest.raises(ValueError, match="loopback"):
        EnvoySettings(admin_address="0.0.0.0")
    with pytest.raises(ValueError, match="STRICT_DNS"):
        EnvoySettings(stable_hosts=(("automation-stable", 3003),))
    with pytest.raises(ValueError, match="per_try_timeout_s"):
        EnvoySettings(per_try_timeout_s=40)
    with pytest.raises(ValueError, match="differ"):
        EnvoySettings(listen_port=9901)
    with pytest.raises(ValueError, match="canary_weight"):
        EnvoySettings(canary_weight=101)


def test_local_settings_follow_the_port_table():
    settings = envoy_variants.local_settings(stable_replicas=2, canary_replicas=3, listen_port=4000)
    assert settings.stable_hosts == (("127.0.0.1", 3010), ("127.0.0.1", 3011))
    assert settings.canary_hosts == (("127.0.0.1", 3030), ("127.0.0.1", 3031), ("127.0.0.1", 3032))
    assert settings.listen_port == 4000


# --- the admin client -----------------------------------------------------------------------

@pytest.mark.parametrize("stable,canary", [(0, 100), (100, 0), (90, 10), ("50", "50")])
def test_weights_that_add_up_to_100_are_accepted(stable, canary):
    assert validate_weights(stable, canary) == Weights(int(stable), int(canary))


@pytest.mark.parametrize("stable,canary,message", [
    (0, 0, "both be 0"),
    (50.0, 50, "whole number"),
    ("5O", 95, "whole number"),
    (None, 100, "whole number"),
    (True, 99, "whole number"),
    (101, -1, "0 to 100"),
    (-10, 110, "0 to 100"),
    (60, 50, "add up to 100"),
    (10, 10, "add up to 100"),
])
def test_bad_weights_are_rejected_with_a_clear_message(stable, canary, message):
    with pytest.raises(ValueError, match=message):
        validate_weights(stable, canary)


class CannedAdmin(EnvoyAdmin):
    """The admin client with canned answers instead of HTTP (no sockets in unit tests)."""

    def __init__(self, answers: dict[str, object]) -> None:
        super().__init__("http://127.0.0.1:1")
        self.answers = answers
        self.sent: list[tuple[str, str]] = []

    def _request(self, path: str, method: str = "GET") -> str:
        self.sent.append((method, path))
        for prefix, answer in self.answers.items():
            if path.startswith(prefix):
                return answer if isinstance(answer, str) else json.dumps(answer)
        raise AssertionError(f"unexpected {method} {path}")


def test_the_weights_layer_is_swapped_whole_and_holds_one_generation(tmp_path):
    runtime.publish(tmp_path, Weights(25, 75))
    assert runtime.read(tmp_path) == Weights(25, 75)
    first = (tmp_path / runtime.DATA_LINK).resolve()
    runtime.publish(tmp_path, Weights(100, 0))
    assert runtime.read(tmp_path) == Weights(100, 0)
    assert (tmp_path / runtime.DATA_LINK).is_symlink() and not first.exists()
    assert sorted(p.name for p in (tmp_path / runtime.DATA_LINK).iterdir()) == [
        "routing.automation.canary", "routing.automation.mirror", "routing.automation.stable"]
    assert [p for p in tmp_path.iterdir() if p.name.startswith("..") and p.is_dir()
            and not p.is_symlink()] == [(tmp_path / runtime.DATA_LINK).resolve()]


@pytest.mark.parametrize("stable, canary", [(0, 0), (60, 60), (101, -1)])
def test_bad_weights_never_reach_the_layer(tmp_path, stable, canary):
    runtime.publish(tmp_path, Weights(90, 10))
    with pytest.raises(ValueError):
        runtime.publish(tmp_path, Weights(stable, canary))
    assert runtime.read(tmp_path) == Weights(90, 10)


@pytest.mark.parametrize("content", ["ten", "9" * 40, "50.5"])
def test_a_layer_value_that_is_not_a_weight_reads_as_none(tmp_path, content):
    runtime.publish(tmp_path, Weights(50, 50))
    (tmp_path / runtime.DATA_LINK / "routing.automation.canary").write_text(content)
    assert runtime.read(tmp_path) is None


def test_a_gateway_reads_the_shared_layer_and_has_no_admin_layer():
    layers = render(replace(EnvoySettings(), runtime_dir="/srv/weights"))["layered_runtime"]["layers"]
    assert [next(iter(set(layer) - {"name"})) for layer in layers] == ["static_layer", "disk_layer"]
    assert layers[1]["disk_layer"] == {"symlink_root": "/srv/weights/..data", "subdirectory": "."}
    assert [list(layer) for layer in render(EnvoySettings())["layered_runtime"]["layers"]] == [["name", "static_layer"]]
    for variant in ("compose", "k8s", "production"):
        layers = render(envoy_variants.VARIANTS[variant]())["layered_runtime"]["layers"]
        assert layers[-1]["disk_layer"]["symlink_root"] == f"{envoy_variants.RUNTIME_DIR}/..data", variant


def test_weights_read_the_final_runtime_values():
    admin = CannedAdmin({"/runtime": {"layers": ["static", "admin"], "entries": {
        "routing.automation.stable": {"final_value": "30", "layer_values": ["90", "30"]},
        "routing.automation.canary": {"final_value": "70", "layer_values": ["10", "70"]}}}})
    assert admin.weights() == Weights(30, 70)


def test_pool_health_counts_hosts_without_failure_flags():
    def host(**status):
        return {"address": {}, "health_status": {"eds_health_status": "HEALTHY", **status}}
    admin = CannedAdmin({"/clusters": {"cluster_statuses": [
        {"name": "stable_pool", "host_statuses": [host(), host(failed_active_health_check=True)]},
        {"name": "canary_pool", "host_statuses": [host(failed_outlier_check=True)]},
        {"name": "stable", "host_statuses": []},
        {"name": "envoy_admin", "host_statuses": [host()]},
    ]}})
    assert admin.pool_health() == {"stable": PoolHealth(healthy=1, total=2),
                                   "canary": PoolHealth(healthy=0, total=1)}


def test_pool_calls_add_up_grpc_and_grpc_web_by_status():
    svc = "opsconductor_automation_v1_AutomationService"
    admin = CannedAdmin({"/stats": {"stats": [
        {"name": f"cluster.stable.grpc.{svc}.Execute.0", "value": 90},
        {"name": f"cluster.stable.grpc.{svc}.Execute.5", "value": 2},
        {"name": f"cluster.stable.grpc.{svc}.Execute.total", "value": 92},
        {"name": f"cluster.stable.grpc.{svc}.Execute.success", "value": 90},
        {"name": "cluster.stable_pool.grpc.opsconductor.automation.v1.AutomationService"
                 ".Execute.0", "value": 3},
        {"name": "cluster.stable_pool.grpc.opsconductor.automation.v1.AutomationService"
                 ".Execute.total", "value": 3},
        {"name": "cluster.canary.grpc-web.opsconductor.automation.v1.AutomationService"
                 ".Execute.14", "value": 4},
        {"name": "cluster.canary.grpc-web.opsconductor.automation.v1.AutomationService"
                 ".Execute.total", "value": 4},
        {"name": "cluster.stable.grpc.grpc_health_v1_Health.Check.0", "value": 50},
        {"name": "cluster.stable.grpc.grpc_health_v1_Health.Check.total", "value": 50},
        {"histograms": {}},
    ]}})
    calls = admin.pool_calls()
    assert calls["stable"] == PoolCalls(total=95, by_status={0: 93, 5: 2})
    assert calls["canary"] == PoolCalls(total=4, by_status={14: 4})
    assert calls["canary"].errors == 4 and calls["stable"].errors == 2


def test_up_runs_the_committed_local_render_with_its_own_access_log(tmp_path):
    # envoy/envoy.local.yaml is what `up` runs on the default ports; only the log path and the
    # weights layer's directory (the committed one is the default state directory's) differ.
    from opsconductor.stack import state
    from opsconductor.stack.spec import StackSpec
    from opsconductor.stack.supervisor import Stack

    settings = Stack(StackSpec(state_dir=tmp_path)).envoy_settings()
    assert settings.access_log_path == str(tmp_path / "logs" / "envoy-access.log")
    assert settings.runtime_dir == str(tmp_path.resolve() / state.RUNTIME_DIR)
    assert envoy_variants.LOCAL_RUNTIME_DIR == f".opsconductor/{state.RUNTIME_DIR}"
    assert replace(settings, access_log_path="/dev/stdout", runtime_dir=envoy_variants.LOCAL_RUNTIME_DIR) == \
        envoy_variants.local_settings()


# --- traces ------------------------------------------------------------------------------------


def hcm(config: dict) -> dict:
    return config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def test_the_gateway_traces_every_call_and_samples_at_the_edge_honouring_a_callers_decision():
    config = render(EnvoySettings(tracing=TracingSettings(sample_percent=2.5)))
    tracing = hcm(config)["tracing"]
    provider = tracing["provider"]["typed_config"]
    assert tracing["provider"]["name"] == "envoy.tracers.opentelemetry" and provider["service_name"] == "gateway"
    sampler = provider["sampler"]
    assert sampler["name"].endswith(".parent_based")  # a caller's sampled flag wins
    ratio = sampler["typed_config"]["wrapped_sampler"]["typed_config"]["sampling_percentage"]
    assert ratio == {"numerator": 25_000, "denominator": "MILLION"}
    # Without this Envoy, which makes no request ids here, would trace nothing.
    assert hcm(config)["request_id_extension"]["typed_config"]["use_request_id_for_trace_sampling"] is False
    assert tracing["spawn_upstream_span"] is True  # one client span per attempt: retries show
    tags = {tag["tag"] for tag in tracing["custom_tags"]}
    assert {"route", "opsconductor.pool", "upstream_attempts"} <= tags
    collector = clusters(config)["otlp_collector"]
    assert provider["grpc_service"]["envoy_grpc"]["cluster_name"] == "otlp_collector"
    assert "http2_protocol_options" in json.dumps(collector)


def test_every_access_log_line_carries_the_calls_trace_id_and_the_page_may_send_traceparent():
    config = render(EnvoySettings(tracing=TracingSettings()))
    logs = [hcm(config)["access_log"][0]] + [f["typed_config"]["upstream_log"][0] for f in hcm(config)["http_filters"]
                                             if f["name"].endswith("router")]
    for log in logs:
        fields = log["typed_config"]["log_format"]["json_format"]
        assert fields["trace_id"] == "%TRACE_ID%" and fields["caller_trace_id"] == "%REQ(X-TRACE-ID)%"
    cors = hcm(config)["route_config"]["virtual_hosts"][0]["typed_per_filter_config"]["envoy.filters.http.cors"]
    assert {"traceparent", "tracestate"} <= set(cors["allow_headers"].split(","))


def test_gateway_spans_are_named_after_their_route():
    config = render(envoy_variants.local_settings())
    for route in routes(config):
        if "route" in route:
            assert route["decorator"]["operation"] == route["name"]


def test_without_tracing_there_is_no_tracer_and_no_collector():
    config = render(EnvoySettings(tracing=None))
    assert "tracing" not in hcm(config) and "otlp_collector" not in clusters(config)


def test_the_local_variant_sends_spans_to_the_local_store():
    assert envoy_variants.local_settings().tracing.collector == ("127.0.0.1", 4317)


@pytest.mark.parametrize("variant", ["compose", "k8s", "production"])
def test_container_variants_send_spans_to_the_collector_by_name(variant):
    settings = envoy_variants.VARIANTS[variant]()
    assert settings.tracing.discovery == "STRICT_DNS" and settings.tracing.collector[0].startswith("otel-collector")


@pytest.mark.parametrize("kwargs", [{"sample_percent": 101}, {"sample_percent": -1},
                                    {"collector": ("otel-collector", 4317)}, {"collector": ("127.0.0.1", 0)}])
def test_tracing_settings_refuse_what_envoy_would_run_badly(kwargs):
    with pytest.raises(ValueError):
        TracingSettings(**kwargs)


@pytest.mark.parametrize("canary_weight", [0, 10, 100])
def test_weighted_and_stable_pinned_calls_are_mirrored_to_the_canary_hosts_by_the_layers_share(canary_weight):
    config = render(EnvoySettings(canary_weight=canary_weight))
    for method, pin in [(m, p) for m in ("Execute", "ListTools") for p in (None, "never")]:
        route = route_for(config, AUTOMATION + method, {"x-canary": pin} if pin else None)["route"]
        (mirror,) = route["request_mirror_policies"]
        # The canary's own hosts: an aggregate would fail a copy over to stable, running it twice there.
        assert mirror["cluster"] == "canary_pool"
        assert mirror["runtime_fraction"] == {"default_value": {"numerator": 0, "denominator": "HUNDRED"},
                                              "runtime_key": "routing.automation.mirror"}
        assert mirror["request_headers_mutations"] == [{"append": {
            "header": {"key": "x-opsconductor-mirrored", "value": "1"},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}]
        # A call pinned to the canary runs there once: a copy would run it twice.
        assert "request_mirror_policies" not in route_for(config, AUTOMATION + method, {"x-canary": "always"})["route"]
    listener = config["static_resources"]["listeners"][0]
    vhost = listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]
    assert vhost["request_headers_to_remove"] == ["x-opsconductor-mirrored"], "a caller cannot mark its call"


def test_the_layer_carries_the_mirrored_share_and_an_older_layer_reads_as_none_mirrored(tmp_path):
    runtime.publish(tmp_path, Weights(100, 0, mirror=20))
    assert (tmp_path / runtime.DATA_LINK / "routing.automation.mirror").read_text() == "20"
    assert runtime.read(tmp_path) == Weights(100, 0, 20)
    (tmp_path / runtime.DATA_LINK / "routing.automation.mirror").unlink()
    assert runtime.read(tmp_path) == Weights(100, 0, 0)
    (tmp_path / runtime.DATA_LINK / "routing.automation.canary").unlink()
    assert runtime.read(tmp_path) is None, "a missing weight is no split"


@pytest.mark.parametrize(("weights", "mirror"), [((100, 0), -1), ((100, 0), 101), ((100, 0), "half"),
                                               ((100, 0), True), ((100, 0), 12.5), ((90, 10), 5), ((0, 100), 100)])
def test_a_bad_mirrored_share_never_reaches_the_layer(tmp_path, weights, mirror):
    runtime.publish(tmp_path, Weights(100, 0, 5))
    with pytest.raises(ValueError, match="mirrored share"):  # a canary with a weight would run copies twice
        runtime.publish(tmp_path, Weights(*weights, mirror))  # type: ignore[arg-type]
    assert runtime.read(tmp_path) == Weights(100, 0, 5)


def test_the_admin_reads_the_mirrored_share_the_gateway_applies():
    entries = {"routing.automation.stable": {"final_value": "100"}, "routing.automation.canary": {"final_value": "0"}}
    assert CannedAdmin({"/runtime": {"entries": entries}}).weights() == Weights(100, 0, 0)
    entries["routing.automation.mirror"] = {"final_value": "35"}
    assert CannedAdmin({"/runtime": {"entries": entries}}).weights() == Weights(100, 0, 35)
