"""PromQL for the gateway's view of each pool, from Envoy's own stats: the calls routed to a
pool's share (gRPC status and time per route cluster, whichever host answered them) and what
went wrong on the way to the pool's hosts (connections refused, resets, timeouts, ejections),
which the services' own metrics never see because the call failed over or never arrived."""

from __future__ import annotations

import grpc

from opsconductor.observability.queries import BUDGET_CODES
from services.common.names import AUTOMATION_SERVICE

# Envoy's grpc_stats filter replaces the dots of the service name (listeners.py).
_SERVICE = AUTOMATION_SERVICE.replace(".", "_")
# Attempts on a pool's hosts that failed before an answer; each was retried on another host
# or pool, or ended the call.
UPSTREAM_FAILURES = ("upstream_cx_connect_fail", "upstream_rq_timeout", "upstream_rq_rx_reset",
                     "upstream_rq_pending_failure_eject", "upstream_cx_destroy_remote_with_active_rq")


def _route(pool: str) -> str:
    """The route cluster (an aggregate) of the pool's share: the weights pick it."""
    return f'envoy_cluster_name="{pool}",envoy_grpc_bridge_service="{_SERVICE}",job="envoy"'


def calls(window: str, pool: str) -> str:
    """Calls the gateway routed to the pool's share within the window."""
    return f"sum(increase(envoy_cluster_grpc_total{{{_route(pool)}}}[{window}]))"


def _total(metrics: list[str], labels: str, window: str) -> str:
    # One sum per metric: increase() drops the names, and series of several would clash.
    return " + ".join(f"(sum(increase({metric}{{{labels}}}[{window}])) or vector(0))" for metric in metrics)


def failed_calls(window: str, pool: str) -> str:
    """Of those, the ones that ended with a server-fault status (0 while none did)."""
    metrics = [f"envoy_cluster_grpc_{_envoy_code(code)}" for code in BUDGET_CODES.split("|")]
    return _total(metrics, _route(pool), window)


def upstream_failures(window: str, pool: str) -> str:
    """Attempts on the pool's own hosts that got no answer (0 while none failed)."""
    return _total([f"envoy_cluster_{name}" for name in UPSTREAM_FAILURES],
                  f'envoy_cluster_name="{pool}_pool",job="envoy"', window)


def served(window: str, pool: str) -> str:
    """Requests sent to the pool's own hosts (answered or not): fewer than the share's calls
    when some failed over to the other pool without trying it (no healthy host)."""
    return (f'sum(increase(envoy_cluster_upstream_rq_total{{envoy_cluster_name="{pool}_pool",job="envoy"}}'
            f"[{window}])) or vector(0)")


def p99_s(window: str, pool: str) -> str:
    """p99 of the calls of the pool's share as the gateway timed them, in seconds."""
    return (f"histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_grpc_upstream_rq_time_bucket"
            f"{{{_route(pool)}}}[{window}]))) / 1000")


def healthy_hosts(pool: str) -> str:
    """Hosts of the pool Envoy sees healthy now."""
    return f'sum(envoy_cluster_membership_healthy{{envoy_cluster_name="{pool}_pool",job="envoy"}})'


def _envoy_code(name: str) -> str:
    """The number Envoy names a gRPC status stat by: UNAVAILABLE → 14."""
    return str(getattr(grpc.StatusCode, name).value[0])


def queries(window: str, pool: str) -> dict[str, str]:
    return {"calls": calls(window, pool), "failed_calls": failed_calls(window, pool),
            "upstream_failures": upstream_failures(window, pool), "served": served(window, pool),
            "p99_s": p99_s(window, pool),
            "healthy_hosts": healthy_hosts(pool)}
