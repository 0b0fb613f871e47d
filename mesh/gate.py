"""`opsconductor gate ENV MINUTES`: watch a deployment's SLOs in Prometheus for a while.

Each interval it reads Execute's error ratio (gRPC codes that spend error budget), p95, p99
and request rate; it fails at the first violation. No traffic proves nothing: it is
inconclusive, never a pass.

Exit codes: 0 passed, 1 an SLO was violated, 2 usage error, 3 inconclusive (no traffic or no
data), 4 Prometheus unreachable.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

from mesh import environments, promclient, slo
from mesh.smoke import add_environment_arguments

PASSED, VIOLATED, USAGE, INCONCLUSIVE, UNREACHABLE = 0, 1, 2, 3, 4


@dataclass
class Reading:
    at: float
    rps: float | None
    error_ratio: float | None
    p95_s: float | None
    p99_s: float | None

    def verdict(self, max_error: float, max_p95: float, max_p99: float) -> tuple[str, list[str]]:
        if not self.rps:
            return "NO TRAFFIC", []
        problems = []
        if self.error_ratio is not None and self.error_ratio >= max_error:
            problems.append(f"error rate {self.error_ratio:.2%} ≥ {max_error:.2%}")
        if self.p95_s is not None and self.p95_s >= max_p95:
            problems.append(f"p95 {self.p95_s * 1000:.0f} ms ≥ {max_p95 * 1000:.0f} ms")
        if self.p99_s is not None and self.p99_s >= max_p99:
            problems.append(f"p99 {self.p99_s * 1000:.0f} ms ≥ {max_p99 * 1000:.0f} ms")
        return ("FAIL" if problems else "OK"), problems


def _value(url: str, expr: str) -> float | None:
    value = promclient.scalar(url, expr)
    return None if value is None or math.isnan(value) else value


def read(url: str, window: str) -> Reading:
    return Reading(time.time(), _value(url, slo.request_rate(window)), _value(url, slo.error_ratio(window)),
                   _value(url, slo.latency_quantile(0.95, window)), _value(url, slo.latency_quantile(0.99, window)))


def _fmt(value: float | None, scale: float = 1000, unit: str = " ms") -> str:
    return "—" if value is None else f"{value * scale:.1f}{unit}"


def run(args: argparse.Namespace) -> int:
    try:
        env = environments.load(args.environment, args.config, args.state_dir)
    except environments.UnknownEnvironment as error:
        print(f"opsconductor gate: {error}", file=sys.stderr)
        return USAGE
    if not env.prometheus_url:
        print(f"opsconductor gate: {env.name} has no Prometheus", file=sys.stderr)
        return USAGE
    if args.minutes <= 0 or args.interval <= 0:
        print("opsconductor gate: minutes and interval must be positive", file=sys.stderr)
        return USAGE
    window = args.window or f"{max(int(args.interval * 2), 10)}s"
    intervals = max(1, round(args.minutes * 60 / args.interval))
    print(f"metrics gate on {env.name}: {intervals} × {args.interval:g} s, window {window}; "
          f"error rate < {args.max_error_rate:.2%}, p95 < {args.max_p95 * 1000:.0f} ms, "
          f"p99 < {args.max_p99 * 1000:.0f} ms", flush=True)
    readings: list[tuple[Reading, str]] = []
    outcome = PASSED
    for index in range(intervals):
        time.sleep(args.interval)  # the gate's own pacing: one reading per interval
        try:
            reading = read(env.prometheus_url, window)
        except promclient.PrometheusError as error:
            print(f"\nopsconductor gate: {error}", file=sys.stderr)
            return UNREACHABLE
        verdict, problems = reading.verdict(args.max_error_rate, args.max_p95, args.max_p99)
        readings.append((reading, verdict))
        rps = "—" if reading.rps is None else f"{reading.rps:.1f}/s"
        print(f"[{index + 1}/{intervals}] {verdict:10} rate {rps:>9}  errors {_fmt(reading.error_ratio, 100, ' %'):>8}"
              f"  p95 {_fmt(reading.p95_s):>9}  p99 {_fmt(reading.p99_s):>9}  {'; '.join(problems)}", flush=True)
        if verdict == "FAIL":
            outcome = VIOLATED
            break
        if verdict == "NO TRAFFIC":
            outcome = INCONCLUSIVE
    _table(readings)
    print({PASSED: "PASSED: every interval met the SLOs",
           VIOLATED: "FAILED: an SLO was violated",
           INCONCLUSIVE: "INCONCLUSIVE: some intervals had no traffic, so nothing was proven"}[outcome])
    return outcome


def _table(readings: list[tuple[Reading, str]]) -> None:
    print(f"\n{'time':10} {'verdict':10} {'req/s':>8} {'errors':>8} {'p95':>10} {'p99':>10}")
    for reading, verdict in readings:
        rps = "—" if reading.rps is None else f"{reading.rps:.1f}"
        print(f"{time.strftime('%H:%M:%S', time.localtime(reading.at)):10} {verdict:10} {rps:>8} "
              f"{_fmt(reading.error_ratio, 100, ' %'):>8} {_fmt(reading.p95_s):>10} {_fmt(reading.p99_s):>10}")


def add_parser(commands) -> None:
    gate = commands.add_parser("gate", help="release metrics gate: watch SLOs in Prometheus for N minutes",
                               description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_environment_arguments(gate)
    gate.add_argument("minutes", nargs="?", type=float, default=5.0, help="how long to watch (default 5)")
    gate.add_argument("--interval", type=float, default=30.0, help="seconds between readings (default 30)")
    gate.add_argument("--window", help="rate window, e.g. 1m (default: twice the interval)")
    gate.add_argument("--max-error-rate", type=float, default=slo.MAX_ERROR_RATIO, help="default 0.01")
    gate.add_argument("--max-p95", type=float, default=slo.MAX_P95_S, help="seconds, default 1")
    gate.add_argument("--max-p99", type=float, default=slo.MAX_P99_S, help="seconds, default 2")
    gate.set_defaults(func=run)
