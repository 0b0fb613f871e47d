"""One analysis for the release gate and the canary rollout: readings of the SLO signals, the
verdicts each command gives them, and how they are shown. Plain Python over a query function,
so it is tested without a Prometheus."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from opsconductor.observability import edge
from opsconductor.observability import queries as definitions
from opsconductor.observability.queries import pool_scope

# An instant query's single value, or None when it has no data.
Query = Callable[[str], float | None]

# A rate window must hold at least this many scrapes, or its increase() reads nothing.
MIN_SCRAPES = 4
# Failures at the gateway that make evidence on their own (below this, one unlucky call decides).
MIN_EDGE_FAILURES = 3

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


@dataclass(frozen=True)
class EdgeReading:
    """One window of a pool's share as the gateway saw it (Envoy's stats)."""

    calls: float  # calls routed to the pool's share
    failed_calls: float  # of those, ended with a server fault
    upstream_failures: float  # attempts on the pool's hosts with no answer (refused, reset, timed out)
    served: float  # requests sent to the pool's own hosts
    p99_s: float | None
    healthy_hosts: float | None
    at: float = 0.0

    @property
    def failovers(self) -> float:
        """Calls of the share another pool answered."""
        return max(self.calls - self.served, 0.0)

    @property
    def bad(self) -> float:
        return self.failed_calls + self.upstream_failures + self.failovers

    @property
    def error_ratio(self) -> float | None:
        attempts = self.calls + self.upstream_failures
        return None if attempts <= 0 else min(self.bad / attempts, 1.0)


def window_for(interval_s: float, scrape_interval_s: float) -> str:
    """The analysis window: the interval, and never fewer than MIN_SCRAPES scrapes."""
    return f"{math.ceil(max(interval_s, MIN_SCRAPES * scrape_interval_s, 1.0))}s"


def check_interval(interval_s: float, scrape_interval_s: float) -> None:
    """Refuses (ValueError, one line) an interval too short to hold MIN_SCRAPES scrapes."""
    if interval_s < MIN_SCRAPES * scrape_interval_s:
        raise ValueError(f"an interval of {interval_s:g} s is too short to judge: Prometheus scrapes every "
                         f"{scrape_interval_s:g} s and a window needs {MIN_SCRAPES} scrapes "
                         f"(--interval {MIN_SCRAPES * scrape_interval_s:g} or more)")


def read_edge(query: Query, window: str, pool: str) -> EdgeReading:
    values = {name: known(query(expr)) for name, expr in edge.queries(window, pool).items()}
    return EdgeReading(calls=values["calls"] or 0.0, failed_calls=values["failed_calls"] or 0.0,
                       upstream_failures=values["upstream_failures"] or 0.0, served=values["served"] or 0.0,
                       p99_s=values["p99_s"], healthy_hosts=values["healthy_hosts"], at=time.time())


def edge_problems(weight: int, reading: EdgeReading, criteria: CanaryCriteria) -> list[str]:
    """What the gateway saw go wrong with the canary's share: errors, failures before an
    answer, failovers, no healthy host; evidence even when too few calls reached the canary."""
    problems = []
    if weight > 0 and reading.healthy_hosts is not None and reading.healthy_hosts < 1:
        problems.append("at the gateway: no healthy canary host")
    ratio = reading.error_ratio
    if reading.bad >= MIN_EDGE_FAILURES and ratio is not None and ratio >= criteria.slo.max_error_ratio:
        problems.append(f"at the gateway: error rate {percent(ratio)} ≥ SLO {percent(criteria.slo.max_error_ratio)} "
                        f"({reading.bad:.0f} of {reading.calls + reading.upstream_failures:.0f} attempts: "
                        f"{reading.failed_calls:.0f} errors, {reading.upstream_failures:.0f} refused/reset/timed "
                        f"out, {reading.failovers:.0f} failed over)")
    if reading.calls >= criteria.min_calls and reading.p99_s is not None and reading.p99_s >= criteria.slo.max_p99_s:
        problems.append(f"at the gateway: p99 {millis(reading.p99_s, 0)} ≥ SLO {millis(criteria.slo.max_p99_s, 0)}")
    return problems


def comparison_notes(weight: int, stable: Reading | None, criteria: CanaryCriteria) -> list[str]:
    """Why the canary was not compared with stable, when it was not: said, never silent."""
    if weight >= 100:
        return ["stable takes no calls at 100 %: compared with the SLO only"]
    if stable is None or stable.calls < criteria.min_calls:
        calls = 0 if stable is None else stable.calls
        return [f"stable had too few calls to compare ({calls:.0f} < {criteria.min_calls})"]
    return []


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
