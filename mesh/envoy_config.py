"""The gateway's Envoy configuration: one renderer for every deployment (local, compose, k8s)."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from mesh import yamltext

_LOGGER = logging.getLogger(__name__)

POOLS = ("stable", "canary")
AUTOMATION_SERVICE = "opsconductor.automation.v1.AutomationService"
# Route-level clusters are named after the pools; the runtime key of a pool's weight is
# "<RUNTIME_KEY_PREFIX>.<pool>", which is what `POST /runtime_modify` on the admin port sets.
RUNTIME_KEY_PREFIX = "routing.automation"
CANARY_HEADER = "x-canary"
RATE_LIMITED_HEADER = "x-ratelimited"
ENDPOINT_METADATA = "opsconductor"  # filter_metadata namespace carrying each host's pool

_TYPE = "type.googleapis.com/envoy."
_AUTOMATION_PREFIX = f"/{AUTOMATION_SERVICE}/"
# Everything else the gateway forwards: health through the gateway, and reflection so
# `grpcurl -plaintext GATEWAY list/describe` works without proto files.
_OPEN_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
_STATS_METHODS = {
    AUTOMATION_SERVICE: ["Execute", "ListTools"],
    "grpc.health.v1.Health": ["Check", "Watch"],
}
_ALLOW_HEADERS = (
    "content-type,x-grpc-web,x-user-agent,grpc-timeout,x-trace-id,x-canary,authorization"
)
_EXPOSE_HEADERS = (
    f"grpc-status,grpc-message,grpc-status-details-bin,x-trace-id,{RATE_LIMITED_HEADER}"
)

Host = tuple[str, int]


@dataclass(frozen=True)
class JwtSettings:
    """Bearer-token check on AutomationService calls (health, reflection and stats stay open)."""

    issuer: str
    audiences: tuple[str, ...]
    jwks_path: str  # a local JWKS file (mounted from a Secret in Kubernetes)


@dataclass(frozen=True)
class EnvoySettings:
    """Everything that differs between deployments; defaults are the local stack's."""

    stable_hosts: tuple[Host, ...] = (("127.0.0.1", 3010),)
    canary_hosts: tuple[Host, ...] = (("127.0.0.1", 3030),)
    # STATIC for IP literals; STRICT_DNS for container and Service names (headless Services
    # resolve to every pod IP, so Envoy balances across pods itself).
    discovery: Literal["STATIC", "STRICT_DNS"] = "STATIC"
    listen_address: str = "127.0.0.1"
    listen_port: int = 3000
    admin_port: int = 9901
    admin_address: str = "127.0.0.1"  # loopback only: the admin can change routing
    stats_address: str = "127.0.0.1"
    stats_port: int = 9902
    cors_origins: tuple[str, ...] = ("http://127.0.0.1:3100", "http://localhost:3100")
    canary_weight: int = 10
    # Above the services' own 30 s deadline, so their TIMEOUT reaches the caller and a slow
    # call is never cut by Envoy and re-run on another host.
    route_timeout_s: int = 35
    per_try_timeout_s: int = 31
    num_retries: int = 3
    health_check_interval_s: float = 1.0
    # Far above what this mesh can serve, so only a deliberate setting ever limits anything.
    max_connections: int = 10_000
    max_pending_requests: int = 100_000
    max_requests: int = 100_000
    max_retries: int = 10_000
    max_downstream_connections: int = 50_000
    rate_limit_per_s: int = 100_000
    access_log_path: str = "/dev/stdout"
    jwt: JwtSettings | None = field(default=None)

    def __post_init__(self) -> None:
        for name in ("listen_address", "admin_address", "stats_address"):
            try:
                ipaddress.ip_address(getattr(self, name))
            except ValueError:
                raise ValueError(f"{name} must be an IP address, got {getattr(self, name)!r}")
        if not ipaddress.ip_address(self.admin_address).is_loopback:
            raise ValueError(f"admin_address must be loopback, got {self.admin_address!r}")
        for name in ("listen_port", "admin_port", "stats_port"):
            if not 0 < getattr(self, name) < 65536:
                raise ValueError(f"{name} must be 1-65535, got {getattr(self, name)}")
        if len({self.listen_port, self.admin_port, self.stats_port}) != 3:
            raise ValueError("listen_port, admin_port and stats_port must differ")
        if not self.stable_hosts or not self.canary_hosts:
            raise ValueError("each pool needs at least one host")
        for host, port in (*self.stable_hosts, *self.canary_hosts):
            if not 0 < port < 65536:
                raise ValueError(f"bad upstream port {host}:{port}")
            if self.discovery == "STATIC":
                ipaddress.ip_address(host)  # STATIC clusters take IP literals only
        if not 0 <= self.canary_weight <= 100:
            raise ValueError(f"canary_weight must be 0-100, got {self.canary_weight}")
        if self.per_try_timeout_s > self.route_timeout_s:
            raise ValueError("per_try_timeout_s must not exceed route_timeout_s")
        if self.rate_limit_per_s < 1:
            raise ValueError("rate_limit_per_s must be at least 1")


def render(settings: EnvoySettings) -> dict[str, Any]:
    """The bootstrap config as plain data (write it with `to_yaml`)."""
    s = settings
    return {
        "admin": {"address": _address(s.admin_address, s.admin_port)},
        "layered_runtime": {
            "layers": [
                # The static layer makes the weights visible in GET /runtime from the start;
                # the admin layer is what POST /runtime_modify writes (memory only: a restart
                # goes back to these values).
                {"name": "static", "static_layer": _default_weights(s)},
                {"name": "admin", "admin_layer": {}},
            ]
        },
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": _TYPE + "extensions.resource_monitors.downstream_connections"
                        ".v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": s.max_downstream_connections,
                    },
                }
            ]
        },
        "static_resources": {
            "listeners": [_gateway_listener(s), _stats_listener(s)],
            "clusters": [
                _pool_cluster(s, "stable", s.stable_hosts),
                _pool_cluster(s, "canary", s.canary_hosts),
                _aggregate_cluster(s, "stable", ("stable_pool", "canary_pool")),
                _aggregate_cluster(s, "canary", ("canary_pool", "stable_pool")),
                _admin_cluster(s),
            ],
        },
    }


def to_yaml(config: dict[str, Any], header: str = "") -> str:
    """YAML text of a rendered config."""
    return yamltext.dump(config, header=header)


def _default_weights(s: EnvoySettings) -> dict[str, int]:
    return {
        f"{RUNTIME_KEY_PREFIX}.stable": 100 - s.canary_weight,
        f"{RUNTIME_KEY_PREFIX}.canary": s.canary_weight,
    }


def _address(address: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": address, "port_value": port}}


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


def _hcm(stat_prefix: str, virtual_host: dict[str, Any], http_filters: list[dict[str, Any]],
         access_log: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    hcm: dict[str, Any] = {
        "@type": _TYPE + "extensions.filters.network.http_connection_manager.v3"
        ".HttpConnectionManager",
        "stat_prefix": stat_prefix,
        # AUTO: HTTP/1.1 (gRPC-Web from the browser) and h2c (native gRPC) on one port.
        "codec_type": "AUTO",
        "route_config": {"name": stat_prefix, "virtual_hosts": [virtual_host]},
        "http_filters": http_filters,
    }
    if access_log:
        hcm["access_log"] = access_log
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": hcm,
    }


def _listener(name: str, address: str, port: int, hcm: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "address": _address(address, port),
        # Without this a second Envoy on the same port starts fine and silently takes half
        # the connections; with it the clash fails at start.
        "enable_reuse_port": False,
        "filter_chains": [{"filters": [hcm]}],
    }


def _gateway_listener(s: EnvoySettings) -> dict[str, Any]:
    virtual_host = {
        "name": "opsconductor",
        "domains": ["*"],
        "routes": _gateway_routes(s),
        "typed_per_filter_config": {"envoy.filters.http.cors": _cors_policy(s)},
    }
    return _listener("gateway", s.listen_address, s.listen_port,
                     _hcm("gateway", virtual_host, _http_filters(s), [_access_log(s, "request")]))


def _http_filters(s: EnvoySettings) -> list[dict[str, Any]]:
    # CORS first, so Envoy's own replies (rate limited, unauthenticated, no route) carry CORS
    # headers too: otherwise the browser reports a CORS failure instead of the gRPC status.
    filters = [
        _filter("cors", "extensions.filters.http.cors.v3.Cors", {}),
        _filter("grpc_web", "extensions.filters.http.grpc_web.v3.GrpcWeb", {}),
        _filter("grpc_stats", "extensions.filters.http.grpc_stats.v3.FilterConfig", {
            "emit_filter_state": True,
            "enable_upstream_stats": True,
            # Dotted service names would split the stat name; underscores keep the tags clean.
            "replace_dots_in_grpc_service_name": True,
            # An allow list, not stats_for_all_methods: callers cannot mint new stat names.
            "individual_method_stats_allowlist": {
                "services": [{"name": name, "method_names": methods}
                             for name, methods in _STATS_METHODS.items()]
            },
        }),
        _filter("local_ratelimit", "extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                _rate_limit(s)),
    ]
    if s.jwt is not None:
        filters.append(_filter("jwt_authn", "extensions.filters.http.jwt_authn.v3"
                               ".JwtAuthentication", _jwt(s.jwt)))
    filters.append(_filter("router", "extensions.filters.http.router.v3.Router",
                           {"upstream_log": [_access_log(s, "upstream")]}))
    return filters


def _filter(short: str, type_name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"name": f"envoy.filters.http.{short}", "typed_config": {"@type": _TYPE + type_name,
                                                                    **config}}


def _cors_policy(s: EnvoySettings) -> dict[str, Any]:
    return {
        "@type": _TYPE + "extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": [{"exact": origin} for origin in s.cors_origins],
        "allow_methods": "POST, OPTIONS",
        "allow_headers": _ALLOW_HEADERS,
        "expose_headers": _EXPOSE_HEADERS,
        "max_age": "86400",
        # Envoy answers every preflight itself; forwarded, a bad-origin preflight would reach
        # a gRPC server, which answers it with INTERNAL.
        "forward_not_matching_preflights": False,
    }


def _rate_limit(s: EnvoySettings) -> dict[str, Any]:
    always = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    return {
        "stat_prefix": "gateway_ratelimit",
        "token_bucket": {
            "max_tokens": s.rate_limit_per_s,
            "tokens_per_fill": s.rate_limit_per_s,
            "fill_interval": "1s",
        },
        "filter_enabled": {**always, "runtime_key": "gateway_ratelimit.enabled"},
        "filter_enforced": {**always, "runtime_key": "gateway_ratelimit.enforced"},
        # Native gRPC then sees RESOURCE_EXHAUSTED; gRPC-Web still gets HTTP 429, which its
        # clients read as UNAVAILABLE, so the page needs this header to tell the two apart.
        "rate_limited_as_resource_exhausted": True,
        "response_headers_to_add": [{
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            "header": {"key": RATE_LIMITED_HEADER, "value": "true"},
        }],
    }


def _jwt(jwt: JwtSettings) -> dict[str, Any]:
    return {
        "providers": {
            "opsconductor": {
                "issuer": jwt.issuer,
                "audiences": list(jwt.audiences),
                "local_jwks": {"filename": jwt.jwks_path},
                "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
                "forward": False,
            }
        },
        # Only tool runs need a token: health, reflection and the stats listener stay open.
        "rules": [{"match": {"prefix": _AUTOMATION_PREFIX},
                   "requires": {"provider_name": "opsconductor"}}],
        "bypass_cors_preflight": True,
    }


def _access_log(s: EnvoySettings, kind: str) -> dict[str, Any]:
    # "request" lines come from the connection manager (one per call, Envoy's own replies
    # included); "upstream" lines from the router (one per attempt, so retries and failovers
    # show, with the pool and host that answered and the gRPC status from the trailers).
    fields = {
        "log": kind,
        "start_time": "%START_TIME%",
        "trace_id": "%REQ(X-TRACE-ID)%",
        "method": "%REQ(:METHOD)%",
        "path": "%REQ(:PATH)%",
        "protocol": "%PROTOCOL%",
        "content_type": "%REQ(CONTENT-TYPE)%",
        "canary_pin": "%REQ(X-CANARY)%",
        "response_code": "%RESPONSE_CODE%",
        "grpc_status": "%GRPC_STATUS_NUMBER%",
        "response_flags": "%RESPONSE_FLAGS%",
        "route_cluster": "%UPSTREAM_CLUSTER%",
        "pool": f"%METADATA(UPSTREAM_HOST:{ENDPOINT_METADATA}:pool)%",
        "upstream_host": "%UPSTREAM_HOST%",
        "attempts": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
        "duration_ms": "%DURATION%",
    }
    return {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": _TYPE + "extensions.access_loggers.file.v3.FileAccessLog",
            "path": s.access_log_path,
            "log_format": {"json_format": fields},
        },
    }


def _gateway_routes(s: EnvoySettings) -> list[dict[str, Any]]:
    routes = []
    # A tester's pin wins over the weights: it goes straight to the pool cluster, with no
    # failover, so a pinned call really ran on the pool it names (or fails saying so).
    for value, pool in (("always", "canary"), ("never", "stable")):
        routes.append({
            "name": f"automation_pinned_{pool}",
            "match": {"prefix": _AUTOMATION_PREFIX, "headers": [
                {"name": CANARY_HEADER, "string_match": {"exact": value}}]},
            "route": _route_action(s, {"cluster": f"{pool}_pool"}, failover=False),
        })
    routes.append({
        "name": "automation",
        "match": {"prefix": _AUTOMATION_PREFIX},
        "route": _route_action(s, {"weighted_clusters": {
            "runtime_key_prefix": RUNTIME_KEY_PREFIX,
            "clusters": [{"name": pool, "weight": weight} for pool, weight in
                         (("stable", 100 - s.canary_weight), ("canary", s.canary_weight))],
        }}, failover=True),
    })
    for prefix in _OPEN_PREFIXES:
        routes.append({
            "name": prefix.strip("/").rsplit(".", 1)[-1].lower(),
            "match": {"prefix": prefix},
            "route": _route_action(s, {"cluster": "stable"}, failover=True),
        })
    return routes


def _route_action(s: EnvoySettings, target: dict[str, Any], failover: bool) -> dict[str, Any]:
    retry: dict[str, Any] = {
        # gRPC UNAVAILABLE and connection-level failures only: never DEADLINE_EXCEEDED or
        # INTERNAL, which would re-run a tool that may have done its work.
        "retry_on": "unavailable,reset,connect-failure,refused-stream",
        "num_retries": s.num_retries,
        "per_try_timeout": _duration(s.per_try_timeout_s),
        "retry_host_predicate": [{
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": _TYPE + "extensions.retry.host.previous_hosts.v3"
                             ".PreviousHostsPredicate"},
        }],
        "host_selection_retry_max_attempts": 5,
    }
    if failover:
        # The aggregate cluster puts the other pool at the next priority; a retry skips the
        # priority that just failed, so a dead pool's share moves to the other pool at once.
        retry["retry_priority"] = {
            "name": "envoy.retry_priorities.previous_priorities",
            "typed_config": {"@type": _TYPE + "extensions.retry.priority.previous_priorities"
                             ".v3.PreviousPrioritiesConfig", "update_frequency": 1},
        }
    return {
        **target,
        "timeout": _duration(s.route_timeout_s),
        # A caller's grpc-timeout shortens the route timeout (never lengthens it).
        "max_stream_duration": {"grpc_timeout_header_max": _duration(s.route_timeout_s)},
        "retry_policy": retry,
    }


def _circuit_breakers(s: EnvoySettings) -> dict[str, Any]:
    # Envoy's defaults (1,024 requests, 3 concurrent retries) sit below what a benchmark
    # drives through the mesh; these are far above it, so they guard only against runaways.
    return {"thresholds": [{
        "priority": "DEFAULT",
        "max_connections": s.max_connections,
        "max_pending_requests": s.max_pending_requests,
        "max_requests": s.max_requests,
        "max_retries": s.max_retries,
    }]}


def _pool_cluster(s: EnvoySettings, pool: str, hosts: tuple[Host, ...]) -> dict[str, Any]:
    name = f"{pool}_pool"
    return {
        "name": name,
        "type": s.discovery,
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {
                "endpoint": {"address": _address(host, port)},
                "metadata": {"filter_metadata": {ENDPOINT_METADATA: {"pool": pool}}},
            }
            for host, port in hosts
        ]}]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _TYPE + "extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "health_checks": [{
            "timeout": "1s",
            "interval": _duration(s.health_check_interval_s),
            # The default (60 s) applies until a cluster has seen traffic: a new canary
            # would wait a minute to be found healthy.
            "no_traffic_interval": _duration(s.health_check_interval_s),
            "unhealthy_threshold": 2,
            "healthy_threshold": 1,
            # Readiness, not liveness: NOT_SERVING while the pool's pipeline is down.
            "grpc_health_check": {"service_name": AUTOMATION_SERVICE},
        }],
        "outlier_detection": {
            "consecutive_5xx": 5,
            "consecutive_gateway_failure": 3,
            "split_external_local_origin_errors": True,
            "consecutive_local_origin_failure": 3,
            "interval": "1s",
            "base_ejection_time": "5s",
            "max_ejection_percent": 100,
        },
        # The panic threshold is per cluster: at the default 50 % a pool whose only host is
        # down would still get its share. At 0 it gets none and the aggregate fails over.
        "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
        "circuit_breakers": _circuit_breakers(s),
    }


def _aggregate_cluster(s: EnvoySettings, name: str, pools: tuple[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "connect_timeout": "1s",
        "lb_policy": "CLUSTER_PROVIDED",
        "cluster_type": {
            "name": "envoy.clusters.aggregate",
            "typed_config": {"@type": _TYPE + "extensions.clusters.aggregate.v3.ClusterConfig",
                             "clusters": list(pools)},
        },
        "circuit_breakers": _circuit_breakers(s),
    }


def _admin_cluster(s: EnvoySettings) -> dict[str, Any]:
    return {
        "name": "envoy_admin",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "envoy_admin", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": _address(s.admin_address, s.admin_port)}}]}]},
    }


def _stats_listener(s: EnvoySettings) -> dict[str, Any]:
    # Prometheus may reach this port from another container or pod; the admin itself (which
    # can change routing and stop Envoy) stays on loopback. Only the scrape path goes through.
    virtual_host = {
        "name": "stats",
        "domains": ["*"],
        "routes": [
            {"match": {"path": "/stats/prometheus",
                       "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]},
             "route": {"cluster": "envoy_admin", "timeout": "10s"}},
            {"match": {"prefix": "/"}, "direct_response": {"status": 404}},
        ],
    }
    router = _filter("router", "extensions.filters.http.router.v3.Router", {})
    return _listener("stats", s.stats_address, s.stats_port,
                     _hcm("stats", virtual_host, [router]))
