"""The release smoke test: is a deployment alive end to end? Health of every component,
metrics endpoints, echo through the gateway over native gRPC and gRPC-Web, counters that move,
and a Prometheus query; each check says exactly what it found or what failed."""

from __future__ import annotations

import secrets
import ssl
import urllib.request

import grpc

from opsconductor import auth
from opsconductor.automation.v1 import automation_pb2, automation_pb2_grpc
from opsconductor.gateway.settings import CANARY_HEADER
from opsconductor.load import grpcweb
from opsconductor.observability import prometheus
from opsconductor.release import environments
from opsconductor.release.checks import Check
from opsconductor.stack.processes import SERVING, health_status, wait_for
from services.common.names import AUTOMATION_EXECUTE, AUTOMATION_SERVICE
SERVICE_FAMILIES = ("grpc_server_handled_total", "opsconductor_build_info")


def _http_get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        return response.status, response.read().decode(errors="replace")


def checks(env: environments.Environment) -> list[Check]:
    """(name, check) pairs; a check returns a detail or raises with what went wrong."""
    checks: list[Check] = []

    def gateway_health() -> str:
        for service in ("", AUTOMATION_SERVICE):
            status = health_status(env.gateway, service, timeout=5)
            assert status == SERVING, f"health of {service or 'the gateway'} is {status} at {env.gateway}"
        return f"{env.gateway} SERVING"

    checks.append(("gateway health", gateway_health))
    for name, target, service in env.services:
        def service_health(target=target, service=service) -> str:
            status = health_status(target, service, timeout=5)
            assert status == SERVING, f"readiness is {status}"
            return f"{target} SERVING"
        checks.append((f"{name} health", service_health))
    if env.envoy_admin_url:
        checks.append(("envoy ready", lambda: _expect_200(f"{env.envoy_admin_url}/ready")))
    if env.page_url:
        checks.append(("page served", lambda: _expect_200(env.page_url + "/")))
    if env.prometheus_url:
        checks.append(("prometheus ready", lambda: _expect_200(f"{env.prometheus_url}/-/ready")))
    for url in env.metrics_urls:
        def metrics_up(url=url) -> str:
            status, text = _http_get(url, env.ssl_context)
            families = ("envoy_",) if "/stats/prometheus" in url else SERVICE_FAMILIES
            missing = [family for family in families if family not in text]
            assert status == 200 and not missing, f"HTTP {status}, missing {missing}"
            return f"{url} ({len(text.splitlines())} lines)"
        checks.append((f"metrics {url.split('//')[1].split('/')[0]}", metrics_up))

    before: dict[str, float] = {}
    checks.append(("counters read", lambda: _read_counters(env, before)))
    checks.append(("echo over native gRPC", lambda: _echo_native(env)))
    checks.append(("echo over gRPC-Web", lambda: _echo_web(env)))
    checks.append(("counters increased", lambda: _counters_increased(env, before)))
    if env.prometheus_url:
        checks.append(("prometheus query answered", lambda: _prometheus_query(env)))
    return checks


def _expect_200(url: str) -> str:
    status, _ = _http_get(url)
    assert status == 200, f"HTTP {status}"
    return url


def pinned_checks(gateway: str, pool: str = "canary") -> list[Check]:
    """Echo through the gateway pinned to one pool (x-canary: always|never), whatever the
    weights: the canary rollout's smoke test before its first step and after each. A reply
    from the other pool (the gateway failed over) fails it."""
    header = {CANARY_HEADER: "always" if pool == "canary" else "never"}
    return [(f"echo pinned to the {pool} (native gRPC)", lambda: _echo_native(gateway, header, pool)),
            (f"echo pinned to the {pool} (gRPC-Web)", lambda: _echo_web(gateway, header, pool))]


def _echo_native(env: environments.Environment | str, pin: dict[str, str] | None = None,
                 pool: str | None = None) -> str:
    gateway = env if isinstance(env, str) else env.gateway
    # The trace is named by a W3C traceparent, and its id must come back in the reply.
    trace_id = secrets.token_hex(16)
    with grpc.insecure_channel(gateway) as channel:
        reply = automation_pb2_grpc.AutomationServiceStub(channel).Execute(
            automation_pb2.ExecuteRequest(input="ping", tool="echo"), timeout=10,
            metadata=(*auth.metadata(), ("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"),
                      *(pin or {}).items()))
    assert reply.output == "pong" and reply.success, f"got output {reply.output!r}"
    assert reply.trace_id == trace_id, f"trace id {reply.trace_id!r} came back for {trace_id!r}"
    assert pool is None or reply.pool == pool, f"answered by {reply.pool}/{reply.instance}, not the {pool}"
    return f"pong from {reply.pool}/{reply.instance} in {reply.duration_ms:.1f} ms, trace id kept"


def _echo_web(env: environments.Environment | str, pin: dict[str, str] | None = None,
              pool: str | None = None) -> str:
    host, _, port = (env if isinstance(env, str) else env.gateway).rpartition(":")
    request = automation_pb2.ExecuteRequest(input="ping", tool="echo").SerializeToString()
    reply = grpcweb.call(host, int(port), AUTOMATION_EXECUTE, request,
                         headers={"x-trace-id": "smoke-web", **auth.headers(), **(pin or {})})
    assert reply.http_status == 200, f"HTTP {reply.http_status}"
    assert reply.grpc_status == 0, f"grpc-status {reply.grpc_status}: {reply.grpc_message}"
    message = automation_pb2.ExecuteResponse.FromString(reply.messages[0])
    assert message.output == "pong", f"got output {message.output!r}"
    assert pool is None or message.pool == pool, f"answered by {message.pool}/{message.instance}, not the {pool}"
    return f"pong from {message.pool}/{message.instance}"


def _echo_count(env: environments.Environment) -> float:
    if env.automation_metrics_urls:
        return sum(prometheus.scrape_sum(url, "ai_requests_total", env.ssl_context, tool="echo", status="OK")
                   for url in env.automation_metrics_urls)
    value = prometheus.scalar(env.prometheus_url, 'sum(ai_requests_total{tool="echo",status="OK"})')
    return value or 0.0


def _read_counters(env: environments.Environment, before: dict[str, float]) -> str:
    assert env.automation_metrics_urls or env.prometheus_url, "no metrics endpoint or Prometheus configured"
    before["echo"] = _echo_count(env)
    return f"ai_requests_total echo/OK = {before['echo']:g}"


def _counters_increased(env: environments.Environment, before: dict[str, float]) -> str:
    assert "echo" in before, "the counters could not be read before the calls"
    # Read straight from the services this is immediate; through Prometheus it takes a scrape.
    timeout = 1 if env.automation_metrics_urls else 90
    wait_for(lambda: _echo_count(env) >= before["echo"] + 2, timeout, "ai_requests_total to count the two echoes",
             interval=0.5)
    return f"ai_requests_total echo/OK {before['echo']:g} → {_echo_count(env):g}"


def _prometheus_query(env: environments.Environment) -> str:
    expr = 'up{job=~"automation|pipeline|envoy"}'
    # A freshly started Prometheus answers with no data until its first scrapes.
    wait_for(lambda: bool(prometheus.query(env.prometheus_url, 'up{job="automation"}')), 60,
             "Prometheus to scrape the automation service", interval=1)
    samples = prometheus.query(env.prometheus_url, expr)
    up = sum(1 for sample in samples if sample.value == 1)
    return f"{up}/{len(samples)} targets up"
