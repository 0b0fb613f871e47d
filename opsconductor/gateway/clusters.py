"""The gateway's clusters: one per pool, an aggregate per pool for failover, and the admin."""

from __future__ import annotations

from typing import Any

from opsconductor.gateway.tls import upstream_transport_socket
from opsconductor.gateway.settings import ENDPOINT_METADATA, TYPE_PREFIX, EnvoySettings, Host, duration, socket_address
from opsconductor.gateway.tracing import collector_cluster
from services.common.names import AUTOMATION_SERVICE


def clusters(s: EnvoySettings) -> list[dict[str, Any]]:
    """Pool clusters, their aggregates (route targets named after the pools), the admin, and
    the trace collector when the gateway traces."""
    return [
        _pool_cluster(s, "stable", s.stable_hosts),
        _pool_cluster(s, "canary", s.canary_hosts),
        # Each pool's aggregate lists the other pool at the next priority: when a pool has no
        # healthy host, its share of calls goes to the other pool.
        _aggregate_cluster(s, "stable", ("stable_pool", "canary_pool")),
        _aggregate_cluster(s, "canary", ("canary_pool", "stable_pool")),
        _admin_cluster(s),
        *([collector_cluster(s.tracing)] if s.tracing is not None else []),
    ]


def _pool_cluster(s: EnvoySettings, pool: str, hosts: tuple[Host, ...]) -> dict[str, Any]:
    name = f"{pool}_pool"
    return {
        "name": name,
        "type": s.discovery,
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {
                "endpoint": {"address": socket_address(host, port)},
                "metadata": {"filter_metadata": {ENDPOINT_METADATA: {"pool": pool}}},
            }
            for host, port in hosts
        ]}]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": TYPE_PREFIX + "extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "health_checks": [{
            "timeout": "1s",
            "interval": duration(s.health_check_interval_s),
            # The default (60 s) applies until a cluster has seen traffic: a new canary
            # would wait a minute to be found healthy.
            "no_traffic_interval": duration(s.health_check_interval_s),
            "unhealthy_threshold": 2,
            "healthy_threshold": 1,
            # Readiness, not liveness: NOT_SERVING while the pool's pipeline is down.
            "grpc_health_check": {"service_name": AUTOMATION_SERVICE},
        }],
        "outlier_detection": _outlier_detection(),
        # The panic threshold is per cluster: at the default 50 % a pool whose only host is
        # down would still get its share. At 0 it gets none and the aggregate fails over.
        "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
        "circuit_breakers": _circuit_breakers(s),
        **upstream_transport_socket(s.mesh_tls, pool),
    }


def _outlier_detection() -> dict[str, Any]:
    # A host is ejected for failing to answer at all: connections refused or reset, or no
    # answer within Envoy's own timeouts ("local origin" failures). Replies are not counted:
    # for gRPC, Envoy judges a reply by the HTTP status its grpc-status maps to, and a caller
    # can earn 5xx ones from a healthy host (DEADLINE_EXCEEDED when the caller's own deadline
    # ends the call, INTERNAL from grpc itself for a frame flagged compressed with no encoding).
    # A host whose pipeline is down is found by the readiness health check instead, and its
    # UNAVAILABLE replies are retried on another host meanwhile.
    return {
        "split_external_local_origin_errors": True,
        "consecutive_local_origin_failure": 3,
        "enforcing_consecutive_local_origin_failure": 100,
        "consecutive_5xx": 5,
        "enforcing_consecutive_5xx": 0,
        "consecutive_gateway_failure": 3,
        "enforcing_consecutive_gateway_failure": 0,
        "enforcing_success_rate": 0,
        "enforcing_local_origin_success_rate": 0,
        "interval": "1s",
        "base_ejection_time": "5s",
        "max_ejection_percent": 100,
    }


def _aggregate_cluster(s: EnvoySettings, name: str, pools: tuple[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "connect_timeout": "1s",
        "lb_policy": "CLUSTER_PROVIDED",
        "cluster_type": {
            "name": "envoy.clusters.aggregate",
            "typed_config": {
                "@type": TYPE_PREFIX + "extensions.clusters.aggregate.v3.ClusterConfig",
                "clusters": list(pools),
            },
        },
        "circuit_breakers": _circuit_breakers(s),
    }


def _circuit_breakers(s: EnvoySettings) -> dict[str, Any]:
    # Sized in settings.py. Envoy's own default of 3 retries in flight would turn a pool
    # killed under load into errors; 64 lets every call in flight then fail over.
    return {"thresholds": [{
        "priority": "DEFAULT",
        "max_connections": s.max_connections,
        "max_pending_requests": s.max_pending_requests,
        "max_requests": s.max_requests,
        "max_retries": s.max_retries,
    }]}


def _admin_cluster(s: EnvoySettings) -> dict[str, Any]:
    return {
        "name": "envoy_admin",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "envoy_admin", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": socket_address(s.admin_address, s.admin_port)}}]}]},
    }
