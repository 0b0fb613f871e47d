"""The gateway's spans: Envoy's OpenTelemetry tracer on the public listener, exporting OTLP/gRPC
to a collector cluster. Sampling is decided here, once, for the whole call: a caller's W3C
`traceparent` is honoured (its sampled flag forces a trace, or none), and a call without one is
sampled at `sample_percent` by its trace id; the services downstream follow that decision."""

from __future__ import annotations

from typing import Any

from opsconductor.gateway.settings import ENDPOINT_METADATA, TYPE_PREFIX, TracingSettings, socket_address

COLLECTOR_CLUSTER = "otlp_collector"
SERVICE_NAME = "gateway"
MIN_FLUSH_SPANS = 5000
_SAMPLERS = "extensions.tracers.opentelemetry.samplers.v3."


def hcm_tracing(t: TracingSettings) -> dict[str, Any]:
    """The connection manager's `tracing` block and the request-id setting it needs."""
    return {
        "tracing": {
            # A span per upstream attempt: retries and failovers show as sibling client spans,
            # each with the host and pool that answered it.
            "spawn_upstream_span": True,
            "custom_tags": [
                {"tag": "route", "value": "%ROUTE_NAME%"},
                {"tag": "opsconductor.pool", "metadata": {
                    "kind": {"host": {}}, "metadata_key": {"key": ENDPOINT_METADATA, "path": [{"key": "pool"}]}}},
                {"tag": "upstream_attempts", "value": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"},
                # Not the caller's x-trace-id: unvalidated here, it is put on the automation's
                # span (and its log lines) once checked.
            ],
            "provider": {
                "name": "envoy.tracers.opentelemetry",
                "typed_config": {
                    "@type": TYPE_PREFIX + "config.trace.v3.OpenTelemetryConfig",
                    "grpc_service": {"envoy_grpc": {"cluster_name": COLLECTOR_CLUSTER}, "timeout": "2s"},
                    "service_name": SERVICE_NAME,
                    "sampler": _parent_based(t.sample_percent),
                },
            },
        },
        # Without request ids (none are generated: see _hcm) Envoy would mark every call as not
        # traceable; this leaves the decision to the tracer's sampler above.
        "request_id_extension": {"typed_config": {
            "@type": TYPE_PREFIX + "extensions.request_id.uuid.v3.UuidRequestIdConfig",
            "use_request_id_for_trace_sampling": False,
        }},
    }


def name_spans_after_routes(routes: list[dict[str, Any]]) -> None:
    """A gateway span is named after the route that took the call ("automation",
    "automation_pinned_canary"), not Envoy's generic "ingress"; the gRPC path is its grpc.path tag."""
    for route in routes:
        if "route" in route:
            route["decorator"] = {"operation": route["name"]}


def _parent_based(percent: float) -> dict[str, Any]:
    # FractionalPercent in millionths, so fractional percentages (0.5 %) render exactly.
    ratio = {
        "name": "envoy.tracers.opentelemetry.samplers.trace_id_ratio_based",
        "typed_config": {"@type": TYPE_PREFIX + _SAMPLERS + "TraceIdRatioBasedSamplerConfig",
                         "sampling_percentage": {"numerator": round(percent * 10_000), "denominator": "MILLION"}},
    }
    return {
        "name": "envoy.tracers.opentelemetry.samplers.parent_based",
        "typed_config": {"@type": TYPE_PREFIX + _SAMPLERS + "ParentBasedSamplerConfig", "wrapped_sampler": ratio},
    }


def collector_cluster(t: TracingSettings) -> dict[str, Any]:
    """The OTLP/gRPC collector: the local trace store, or a real backend's collector."""
    host, port = t.collector
    return {
        "name": COLLECTOR_CLUSTER,
        "type": t.discovery,
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": COLLECTOR_CLUSTER, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": socket_address(host, port)}}]}]},
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": TYPE_PREFIX + "extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
    }


def runtime_defaults(t: TracingSettings) -> dict[str, int]:
    """Runtime keys of Envoy's OpenTelemetry tracer."""
    # Envoy also exports whenever 5 spans wait (its default): at 500 calls/s that was a hundred
    # exports a second. The timer alone sends them now, a batch a second.
    return {"tracing.opentelemetry.flush_interval_ms": t.flush_interval_ms,
            "tracing.opentelemetry.min_flush_spans": MIN_FLUSH_SPANS}
