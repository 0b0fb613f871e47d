"""The gateway's listeners: filters, CORS, rate limit, JWT, access logs and routes."""

from __future__ import annotations

import re
from typing import Any

from opsconductor.gateway.settings import (CANARY_HEADER, ENDPOINT_METADATA, MIRROR_RUNTIME_KEY,
                                          RATE_LIMITED_HEADER, RUNTIME_KEY_PREFIX, TYPE_PREFIX, EnvoySettings,
                                          JwtSettings, duration, socket_address)
from opsconductor.gateway.tls import edge_transport_socket, stats_transport_socket
from opsconductor.gateway.tracing import hcm_tracing, name_spans_after_routes
from services.common.names import AUTOMATION_METHODS, AUTOMATION_SERVICE, MIRRORED_HEADER

_AUTOMATION_PREFIX = f"/{AUTOMATION_SERVICE}/"
_HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
# Routes name every method, so an unknown method gets UNIMPLEMENTED from Envoy and callers
# cannot mint new per-method stat names. Besides the public service: health through the
# gateway, and reflection so `grpcurl -plaintext GATEWAY list/describe` needs no proto files.
_OPEN_METHODS = {
    "grpc.health.v1.Health": ("Check", "Watch"),
    "grpc.reflection.v1alpha.ServerReflection": ("ServerReflectionInfo",),
    "grpc.reflection.v1.ServerReflection": ("ServerReflectionInfo",),
}
_ALLOW_HEADERS = (
    "content-type,x-grpc-web,x-user-agent,grpc-timeout,x-trace-id,x-canary,authorization,traceparent,tracestate"
)
# gRPC and gRPC-Web (binary or base64 text) carrying protobuf: what the services speak, as the
# gRPC and gRPC-Web specs write them, with no parameters. Envoy's gRPC-Web filter translates
# exactly these four gRPC-Web forms; any other (with "; charset=utf-8", say) would pass through
# untranslated, and the gRPC server would reset it.
_GRPC_CONTENT_TYPE = r"application/grpc(\+proto)?|application/grpc-web(-text)?(\+proto)?"
_EXPOSE_HEADERS = (
    f"grpc-status,grpc-message,grpc-status-details-bin,x-trace-id,{RATE_LIMITED_HEADER}"
)


def gateway_listener(s: EnvoySettings) -> dict[str, Any]:
    """The public listener: gRPC and gRPC-Web on one port."""
    virtual_host = {
        "name": "opsconductor",
        "domains": ["*"],
        "routes": _gateway_routes(s),
        # Only the gateway marks a call as mirrored (see _mirror_to_canary).
        "request_headers_to_remove": [MIRRORED_HEADER],
        "typed_per_filter_config": {"envoy.filters.http.cors": _cors_policy(s)},
    }
    hcm = _hcm("gateway", virtual_host, _http_filters(s), [_access_log(s, "request")])
    # One caller connection holds at most this many calls at once (HTTP/2 SETTINGS; a client
    # queues the rest itself), so one connection cannot take a whole pool's share.
    hcm["typed_config"]["http2_protocol_options"] = {"max_concurrent_streams": s.max_streams_per_connection}
    if s.tracing is not None:
        hcm["typed_config"].update(hcm_tracing(s.tracing))
        name_spans_after_routes(virtual_host["routes"])
    return _listener("gateway", s.listen_address, s.listen_port, hcm, edge_transport_socket(s.edge_tls))


def stats_listener(s: EnvoySettings) -> dict[str, Any]:
    """The listener serving only /stats/prometheus, proxied from the admin."""
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
                     _hcm("stats", virtual_host, [router]), stats_transport_socket(s.mesh_tls))


def _hcm(stat_prefix: str, virtual_host: dict[str, Any], http_filters: list[dict[str, Any]],
         access_log: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    hcm: dict[str, Any] = {
        "@type": TYPE_PREFIX + "extensions.filters.network.http_connection_manager.v3"
        ".HttpConnectionManager",
        "stat_prefix": stat_prefix,
        # AUTO: HTTP/1.1 (gRPC-Web from the browser) and h2c (native gRPC) on one port.
        "codec_type": "AUTO",
        "route_config": {"name": stat_prefix, "virtual_hosts": [virtual_host]},
        "http_filters": http_filters,
        # Calls carry our own x-trace-id; an x-request-id on every call would only be one more
        # header for the Python services to parse (measured: ~10 % of the gateway's throughput).
        "generate_request_id": False,
        # A client that never finishes its request headers is cut off, not left holding a
        # connection until the idle timeout.
        "request_headers_timeout": "10s",
    }
    if access_log:
        hcm["access_log"] = access_log
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": hcm,
    }


def _listener(name: str, address: str, port: int, hcm: dict[str, Any],
              tls: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "address": socket_address(address, port),
        # Without this a second Envoy on the same port starts fine and silently takes half
        # the connections; with it the clash fails at start.
        "enable_reuse_port": False,
        "filter_chains": [{"filters": [hcm], **tls}],
    }


def _http_filters(s: EnvoySettings) -> list[dict[str, Any]]:
    # CORS first, so Envoy's own replies (rate limited, unauthenticated, no route) carry CORS
    # headers too: otherwise the browser reports a CORS failure instead of the gRPC status.
    filters = [
        _filter("cors", "extensions.filters.http.cors.v3.Cors", {}),
        _filter("grpc_web", "extensions.filters.http.grpc_web.v3.GrpcWeb", {}),
        _filter("grpc_stats", "extensions.filters.http.grpc_stats.v3.FilterConfig", {
            "emit_filter_state": True,
            "enable_upstream_stats": True,
            # Safe here: only the methods the routes name reach a cluster. (An allow list
            # would keep the dots, which split Envoy's service/method stat tags.)
            "stats_for_all_methods": True,
            "replace_dots_in_grpc_service_name": True,
        }),
        _filter("local_ratelimit", "extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                _rate_limit(s)),
    ]
    if s.jwt is not None:
        filters.append(_filter("jwt_authn", "extensions.filters.http.jwt_authn.v3"
                               ".JwtAuthentication", _jwt(s.jwt)))
    filters.append(_filter("router", "extensions.filters.http.router.v3.Router", {
        "upstream_log": [_access_log(s, "upstream")],
        # No x-envoy-* headers upstream: the services read none, and each costs them parsing.
        "suppress_envoy_headers": True,
    }))
    return filters


def _filter(short: str, type_name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"name": f"envoy.filters.http.{short}",
            "typed_config": {"@type": TYPE_PREFIX + type_name, **config}}


def _cors_policy(s: EnvoySettings) -> dict[str, Any]:
    return {
        "@type": TYPE_PREFIX + "extensions.filters.http.cors.v3.CorsPolicy",
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
        # Tool runs need a token, and so do health Watch streams, which hold a connection's
        # place for as long as the route allows. Health Check (probes), reflection and the
        # stats listener stay open.
        "rules": [{"match": {"prefix": _AUTOMATION_PREFIX}, "requires": {"provider_name": "opsconductor"}},
                  {"match": {"path": _HEALTH_WATCH}, "requires": {"provider_name": "opsconductor"}}],
        "bypass_cors_preflight": True,
    }


def _access_log(s: EnvoySettings, kind: str) -> dict[str, Any]:
    # "request" lines come from the connection manager: one per call, Envoy's own replies
    # (rate limited, unauthenticated, no route) included. "upstream" lines come from the
    # router: one per attempt, so retries and failovers show, with the gRPC status read from
    # the upstream's trailers. (The request line has no gRPC status: for gRPC-Web the
    # trailers are already folded into the body there, and Envoy would log UNKNOWN.)
    fields: dict[str, Any] = {
        "log": kind,
        "start_time": "%START_TIME%",
        # The call's OpenTelemetry trace id (the gateway makes one for every call it traces,
        # sampled or not), and the caller's own x-trace-id if it sent one.
        "trace_id": "%TRACE_ID%",
        "caller_trace_id": "%REQ(X-TRACE-ID)%",
        "method": "%REQ(:METHOD)%",
        "path": "%REQ(:PATH)%",
        "protocol": "%PROTOCOL%",
        "response_code": "%RESPONSE_CODE%",
        "response_flags": "%RESPONSE_FLAGS%",
        # The route's cluster: a pool's aggregate, or "<pool>_pool" for a pinned call.
        "route_cluster": "%UPSTREAM_CLUSTER%",
        # The pool of the host that answered, from its endpoint metadata: after a failover
        # it differs from the route's cluster.
        "pool": f"%METADATA(UPSTREAM_HOST:{ENDPOINT_METADATA}:pool)%",
        "upstream_host": "%UPSTREAM_HOST%",
        "duration_ms": "%DURATION%",
    }
    if kind == "upstream":
        fields["grpc_status"] = "%GRPC_STATUS_NUMBER%"
    else:
        fields.update({
            "attempts": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
            "canary_pin": f"%REQ({CANARY_HEADER.upper()})%",
            "user_agent": "%REQ(USER-AGENT)%",
        })
    return {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": TYPE_PREFIX + "extensions.access_loggers.file.v3.FileAccessLog",
            "path": s.access_log_path,
            "log_format": {"json_format": fields},
        },
    }


def _methods_regex(service: str, methods: tuple[str, ...]) -> dict[str, Any]:
    alternatives = "|".join(re.escape(method) for method in sorted(methods))
    return {"safe_regex": {"regex": f"^/{re.escape(service)}/(?:{alternatives})$"}}


def _gateway_routes(s: EnvoySettings) -> list[dict[str, Any]]:
    # The methods come from the generated stubs, so a new RPC is routed as soon as the stubs
    # are regenerated (and the committed renders' freshness test points at them).
    automation = _methods_regex(AUTOMATION_SERVICE, AUTOMATION_METHODS)
    # What is not a gRPC or gRPC-Web call in protobuf gets 415 here and never goes upstream:
    # another method than POST (GET, PUT, ...), or a POST of another content type (a form, JSON,
    # plain text, grpc-web+json, a type with parameters). Forwarded, the gRPC server resets the
    # stream, Envoy retries the reset on every host in turn and finally answers 503 as if the
    # service were down. A CORS preflight (OPTIONS with Access-Control-Request-Method) goes on
    # to the method routes, where the CORS filter answers it from the virtual host's policy.
    routes: list[dict[str, Any]] = [
        {"name": "not_grpc_method",
         "match": {"prefix": "/", "headers": [
             {"name": ":method", "string_match": {"safe_regex": {"regex": "POST|OPTIONS"}}, "invert_match": True}]},
         **_NOT_GRPC_REPLY},
        {"name": "not_grpc_options",
         "match": {"prefix": "/", "headers": [
             {"name": ":method", "string_match": {"exact": "OPTIONS"}},
             {"name": "access-control-request-method", "present_match": False}]},
         **_NOT_GRPC_REPLY},
        {"name": "not_grpc_content_type",
         "match": {"prefix": "/", "headers": [
             {"name": ":method", "string_match": {"exact": "POST"}},
             {"name": "content-type", "string_match": {"safe_regex": {"regex": _GRPC_CONTENT_TYPE}},
              "invert_match": True, "treat_missing_header_as_empty": True}]},
         **_NOT_GRPC_REPLY},
    ]
    # A tester's pin wins over the weights: it goes straight to the pool cluster, with no
    # failover, so a pinned call really ran on the pool it names (or fails saying so).
    # A call pinned to stable is mirrored like a weighted one (its reply still comes from
    # stable); one pinned to the canary is not: the copy would run it there twice.
    for value, pool in (("always", "canary"), ("never", "stable")):
        pinned = _route_action(s, {"cluster": f"{pool}_pool"}, failover=False)
        if pool == "stable":
            pinned["request_mirror_policies"] = [_mirror_to_canary()]
        routes.append({
            "name": f"automation_pinned_{pool}",
            "match": {**automation, "headers": [
                {"name": CANARY_HEADER, "string_match": {"exact": value}}]},
            "route": pinned,
        })
    weighted = _route_action(s, {"weighted_clusters": {
        "runtime_key_prefix": RUNTIME_KEY_PREFIX,
        "clusters": [{"name": pool, "weight": weight} for pool, weight in
                     (("stable", 100 - s.canary_weight), ("canary", s.canary_weight))],
    }}, failover=True)
    weighted["request_mirror_policies"] = [_mirror_to_canary()]
    routes.append({"name": "automation", "match": automation, "route": weighted})
    for service, methods in _OPEN_METHODS.items():
        routes.append({
            "name": service.lower().replace(".", "_"),
            "match": _methods_regex(service, methods),
            # Health Watch and reflection are streams, bounded like every call: a caller
            # watches again after the bound if it wants to.
            "route": _route_action(s, {"cluster": "stable"}, failover=True),
        })
    return routes


def _mirror_to_canary() -> dict[str, Any]:
    """A copy of the share of calls the mirror runtime key names (0 unless the weights layer
    says otherwise, and only while the canary's weight is 0: every call then goes to stable)
    goes to the canary's own hosts, never failing over to stable (the call already runs
    there); Envoy discards its reply. The copy carries MIRRORED_HEADER, so the canary runs it
    with read-only tools only."""
    return {
        "cluster": "canary_pool",
        "runtime_fraction": {"default_value": {"numerator": 0, "denominator": "HUNDRED"},
                             "runtime_key": MIRROR_RUNTIME_KEY},
        "trace_sampled": False,  # the caller's trace shows its own call, not the shadow
        "request_headers_mutations": [{"append": {
            "header": {"key": MIRRORED_HEADER, "value": "1"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}],
    }


# Envoy answers a request whose content type is application/grpc (with "+..." or ";...") in
# gRPC's own form: HTTP 200 with the 415 turned into grpc-status UNKNOWN. These headers make
# that INVALID_ARGUMENT with a message saying what is wrong; other requests get a plain 415.
_NOT_GRPC_REPLY: dict[str, Any] = {
    "direct_response": {"status": 415},
    "response_headers_to_add": [
        {"header": {"key": "grpc-status", "value": "3"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
        {"header": {"key": "grpc-message", "value": "not a gRPC call: the gateway takes POST with content type "
                    "application/grpc or application/grpc-web(-text), +proto or none, with no parameters"},
         "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
    ],
}


def _route_action(s: EnvoySettings, target: dict[str, Any], failover: bool) -> dict[str, Any]:
    retry: dict[str, Any] = {
        # gRPC UNAVAILABLE and connection-level failures only: never DEADLINE_EXCEEDED or
        # INTERNAL, which would re-run a tool that may have done its work. CANCELLED too: an
        # automation never answers it of its own accord, but a server that is stopping
        # cancels the calls it had accepted and not yet started.
        "retry_on": "cancelled,unavailable,reset,connect-failure,refused-stream",
        "num_retries": s.num_retries,
        "per_try_timeout": duration(s.per_try_timeout_s),
        "retry_host_predicate": [{
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {"@type": TYPE_PREFIX + "extensions.retry.host.previous_hosts.v3"
                             ".PreviousHostsPredicate"},
        }],
        "host_selection_retry_max_attempts": 5,
    }
    if failover:
        # The aggregate cluster puts the other pool at the next priority; a retry skips the
        # priority that just failed, so a dead pool's share moves to the other pool at once.
        retry["retry_priority"] = {
            "name": "envoy.retry_priorities.previous_priorities",
            "typed_config": {
                "@type": TYPE_PREFIX + "extensions.retry.priority.previous_priorities.v3"
                ".PreviousPrioritiesConfig",
                "update_frequency": 1,
            },
        }
    # Once max_stream_duration is set Envoy ignores the route `timeout` for gRPC calls, so a
    # call would have no bound at all: an upstream that never answers held it through every
    # per-try timeout and retry. This bounds the whole call, retries included, streams too.
    # A caller's shorter grpc-timeout goes upstream as it is, and the service ends the call at
    # that deadline (DEADLINE_EXCEEDED, for gRPC-Web too). Envoy does not time it itself
    # (grpc_timeout_header_max): its own reply would race the service's, and over gRPC-Web
    # it reads HTTP 504, UNAVAILABLE, which clients take for "the service is down".
    stream_limit = {"max_stream_duration": duration(s.route_timeout_s)}
    return {
        **target,
        "timeout": duration(s.route_timeout_s),
        "max_stream_duration": stream_limit,
        "retry_policy": retry,
    }
