"""One analysis for the release gate and the canary rollout: readings of the SLO signals, the
verdicts each command gives them, and how they are shown. Plain Python over a query function,
so it is tested without a Prometheus."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from opsconductor.observability import queries as definitions
from opsconductor.observability.queries import pool_scope

# An instant query's single value, or None when it has no data.
Query = Callable[[str], float | None]

# Thresholds of the original release gate.
MAX_ERROR_RATIO = 0.01
MAX_P95_S = 1.0
MAX_P99_S = 2.0


@dataclass(frozen=True)
class Slo:
    """The thresholds a deployment must stay under."""

    max_error_ratio: float = MAX_ERROR_RATIO
    max_p95_s: float = MAX_P95_S
    max_p99_s: float = MAX_P99_S


@dataclass(frozen=True)
class Reading:
    """One window of a pool's (or the whole service's) calls. None means "no data", never 0."""

    calls: float
    rps: float | None
    error_ratio: float | None
    p95_s: float | None
    p99_s: float | None
    at: float = 0.0


@dataclass(frozen=True)
class CanaryCriteria:
    """What a canary step must show: enough calls, the SLO, and no worse than stable."""

    min_calls: int = 50
    slo: Slo = field(default_factory=Slo)
    # Canary against stable: at most this much worse in error ratio (absolute) and latency (ratio).
    max_error_delta: float = 0.005
    max_latency_ratio: float = 1.5
    latency_floor_s: float = 0.025  # below this, latency differences are noise


def queries(window: str, pool: str | None = None) -> dict[str, str]:
    """The PromQL behind each field of a Reading: the mesh's shared query definitions for one
    pool (or, without one, the whole service)."""
    scope = pool_scope(pool)
    return {"calls": definitions.calls(window, scope), "rps": definitions.request_rate(window, scope),
            "error_ratio": definitions.error_ratio(window, scope),
            "p95_s": definitions.latency_quantile(0.95, window, scope),
            "p99_s": definitions.latency_quantile(0.99, window, scope)}


def known(value: float | None) -> float | None:
    """NaN (a 0/0 ratio, a quantile of nothing) is no data."""
    return None if value is None or math.isnan(value) else value


def read(query: Query, window: str, pool: str | None = None) -> Reading:
    values = {name: known(query(expr)) for name, expr in queries(window, pool).items()}
    return Reading(calls=values["calls"] or 0.0, rps=values["rps"], error_ratio=values["error_ratio"],
                   p95_s=values["p95_s"], p99_s=values["p99_s"], at=time.time())


def slo_problems(reading: Reading, thresholds: Slo) -> list[str]:
    """Each SLO the reading breaks, as a reason a person reads."""
    problems = []
    if reading.error_ratio is not None and reading.error_ratio >= thresholds.max_error_ratio:
        problems.append(f"error rate {percent(reading.error_ratio)} ≥ SLO {percent(thresholds.max_error_ratio)}")
    if reading.p95_s is not None and reading.p95_s >= thresholds.max_p95_s:
        problems.append(f"p95 {millis(reading.p95_s, 0)} ≥ SLO {millis(thresholds.max_p95_s, 0)}")
    if reading.p99_s is not None and reading.p99_s >= thresholds.max_p99_s:
        problems.append(f"p99 {millis(reading.p99_s, 0)} ≥ SLO {millis(thresholds.max_p99_s, 0)}")
    return problems


def gate_verdict(reading: Reading, thresholds: Slo) -> tuple[str, list[str]]:
    """"OK", "FAIL" or "NO TRAFFIC" (which proves nothing), with the problems found."""
    if not reading.rps:
        return "NO TRAFFIC", []
    problems = slo_problems(reading, thresholds)
    return ("FAIL" if problems else "OK"), problems


def step_verdict(weight: int, canary: Reading, stable: Reading | None,
                 criteria: CanaryCriteria) -> tuple[str, list[str]]:
    """"hold" (too few canary calls to judge), "fail" or "pass", with the reasons."""
    if canary.calls < criteria.min_calls:
        return "hold", [f"{canary.calls:.0f} canary calls < {criteria.min_calls}"]
    reasons = slo_problems(canary, criteria.slo)
    # At 100 % stable takes no calls: there is nothing left to compare with.
    if stable is not None and stable.calls >= criteria.min_calls and weight < 100:
        error, stable_error = canary.error_ratio or 0.0, stable.error_ratio or 0.0
        if error > stable_error + criteria.max_error_delta:
            reasons.append(f"error rate {percent(error)} vs stable {percent(stable_error)}")
        if canary.p99_s is not None and stable.p99_s is not None:
            limit = max(stable.p99_s * criteria.max_latency_ratio, criteria.latency_floor_s)
            if canary.p99_s > limit:
                reasons.append(f"p99 {millis(canary.p99_s, 0)} vs stable {millis(stable.p99_s, 0)}")
    return ("fail" if reasons else "pass"), reasons


# --- how figures are shown ----------------------------------------------------------------------

def millis(seconds: float | None, digits: int = 1) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.{digits}f} ms"


def percent(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio * 100:.2f} %"


def success(reading: Reading) -> str:
    return "—" if reading.error_ratio is None else f"{(1 - reading.error_ratio) * 100:.2f} %"


def per_second(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.1f}/s"
