"""The SLO queries the release gate and the canary analysis share: gRPC error ratio (codes
that spend error budget, never caller mistakes), latency quantiles and request rate of the
automation service's public calls."""

from __future__ import annotations

from services.common.names import AUTOMATION_SERVICE

# Server-side faults: these spend error budget. INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED…
# are the caller's mistakes and do not.
BUDGET_CODES = "UNKNOWN|DEADLINE_EXCEEDED|UNIMPLEMENTED|INTERNAL|UNAVAILABLE|DATA_LOSS"
# Every call of the public service (Execute and ListTools), as the SLO rules count them;
# health checks are another service and never count.
_EXECUTE = f'job="automation",grpc_service="{AUTOMATION_SERVICE}"'

# Thresholds of the original release gate.
MAX_ERROR_RATIO = 0.01
MAX_P95_S = 1.0
MAX_P99_S = 2.0


def _selector(pool: str | None) -> str:
    return _EXECUTE + (f',pool="{pool}"' if pool else "")


def request_rate(window: str, pool: str | None = None) -> str:
    return f"sum(rate(grpc_server_handled_total{{{_selector(pool)}}}[{window}]))"


def calls(window: str, pool: str | None = None) -> str:
    return f"sum(increase(grpc_server_handled_total{{{_selector(pool)}}}[{window}]))"


def error_ratio(window: str, pool: str | None = None) -> str:
    selector = _selector(pool)
    return (f'sum(rate(grpc_server_handled_total{{{selector},grpc_code=~"{BUDGET_CODES}"}}[{window}]))'
            f" / sum(rate(grpc_server_handled_total{{{selector}}}[{window}]))")


def latency_quantile(quantile: float, window: str, pool: str | None = None) -> str:
    pool_filter = f',pool="{pool}"' if pool else ""
    return (f"histogram_quantile({quantile}, sum by (le) "
            f'(rate(ai_request_duration_seconds_bucket{{job="automation"{pool_filter}}}[{window}])))')
