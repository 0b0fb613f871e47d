"""The release metrics gate: read a deployment's SLO signals once an interval for a while and
fail at the first violation. No traffic proves nothing: it is inconclusive, never a pass.

Exit codes: 0 passed, 1 an SLO was violated, 2 usage error, 3 inconclusive (no traffic or no
data), 4 Prometheus unreachable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from opsconductor.release.analysis import Query, Reading, Slo, gate_verdict, millis, per_second, percent, read

PASSED, VIOLATED, USAGE, INCONCLUSIVE, UNREACHABLE = 0, 1, 2, 3, 4
OUTCOMES = {PASSED: "PASSED: every interval met the SLOs",
            VIOLATED: "FAILED: an SLO was violated",
            INCONCLUSIVE: "INCONCLUSIVE: some intervals had no traffic, so nothing was proven"}


@dataclass(frozen=True)
class GatePlan:
    minutes: float
    interval_s: float
    window: str
    slo: Slo
    pool: str | None = None  # one pool's calls only (None: both, the whole service)

    @property
    def intervals(self) -> int:
        return max(1, round(self.minutes * 60 / self.interval_s))


def run_gate(query: Query, plan: GatePlan, echo: Callable[[str], None] = print,
             sleep: Callable[[float], None] = time.sleep, readings: list[tuple[Reading, str]] | None = None) -> int:
    """Reads once per interval, printing a line each and a table at the end; returns the exit
    code. Each (reading, verdict) is also appended to `readings` when given."""
    readings = [] if readings is None else readings
    outcome = PASSED
    for index in range(plan.intervals):
        sleep(plan.interval_s)  # the gate's own pacing: one reading per interval
        reading = read(query, plan.window, plan.pool)  # a PrometheusError ends the gate: the caller says so
        verdict, problems = gate_verdict(reading, plan.slo)
        readings.append((reading, verdict))
        echo(f"[{index + 1}/{plan.intervals}] {verdict:10} rate {per_second(reading.rps):>9}  errors "
             f"{percent(reading.error_ratio):>8}  p95 {millis(reading.p95_s):>9}  p99 {millis(reading.p99_s):>9}  "
             f"{'; '.join(problems)}")
        if verdict == "FAIL":
            outcome = VIOLATED
            break
        if verdict == "NO TRAFFIC":
            outcome = INCONCLUSIVE
    echo(table(readings))
    echo(OUTCOMES[outcome])
    return outcome


def table(readings: list[tuple[Reading, str]]) -> str:
    lines = [f"\n{'time':10} {'verdict':10} {'req/s':>8} {'errors':>8} {'p95':>10} {'p99':>10}"]
    for reading, verdict in readings:
        rps = "—" if reading.rps is None else f"{reading.rps:.1f}"
        lines.append(f"{time.strftime('%H:%M:%S', time.localtime(reading.at)):10} {verdict:10} {rps:>8} "
                     f"{percent(reading.error_ratio):>8} {millis(reading.p95_s):>10} {millis(reading.p99_s):>10}")
    return "\n".join(lines)
