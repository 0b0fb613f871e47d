"""`opsconductor gate ENV MINUTES`: watch a deployment's SLOs in Prometheus for a while.

Each interval it reads Execute's error ratio (gRPC codes that spend error budget), p95, p99
and request rate; it fails at the first violation. No traffic proves nothing: it is
inconclusive, never a pass.

Exit codes: 0 passed, 1 an SLO was violated, 2 usage error, 3 inconclusive (no traffic or no
data), 4 Prometheus unreachable.
"""

from __future__ import annotations

import argparse
import sys

from opsconductor.cli.arguments import add_environment, load_environment
from opsconductor.observability import prometheus
from opsconductor.release.analysis import MAX_ERROR_RATIO, MAX_P95_S, MAX_P99_S, Slo, millis, percent
from opsconductor.release.gate import UNREACHABLE, USAGE, GatePlan, run_gate


def run(args: argparse.Namespace) -> int:
    env = load_environment(args, "gate")
    if env is None:
        return USAGE
    if not env.prometheus_url:
        print(f"opsconductor gate: {env.name} has no Prometheus", file=sys.stderr)
        return USAGE
    if args.minutes <= 0 or args.interval <= 0:
        print("opsconductor gate: minutes and interval must be positive", file=sys.stderr)
        return USAGE
    plan = GatePlan(args.minutes, args.interval, args.window or f"{max(int(args.interval * 2), 10)}s",
                    Slo(args.max_error_rate, args.max_p95, args.max_p99))
    print(f"metrics gate on {env.name}: {plan.intervals} × {plan.interval_s:g} s, window {plan.window}; "
          f"error rate < {percent(plan.slo.max_error_ratio)}, p95 < {millis(plan.slo.max_p95_s, 0)}, "
          f"p99 < {millis(plan.slo.max_p99_s, 0)}", flush=True)
    try:
        return run_gate(lambda expr: prometheus.scalar(env.prometheus_url, expr), plan,
                        echo=lambda line: print(line, flush=True))
    except prometheus.PrometheusError as error:
        print(f"\nopsconductor gate: {error}", file=sys.stderr)
        return UNREACHABLE


def add_parsers(commands) -> None:
    gate = commands.add_parser("gate", help="release metrics gate: watch SLOs in Prometheus for N minutes",
                               description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_environment(gate)
    gate.add_argument("minutes", nargs="?", type=float, default=5.0, help="how long to watch (default 5)")
    gate.add_argument("--interval", type=float, default=30.0, help="seconds between readings (default 30)")
    gate.add_argument("--window", help="rate window, e.g. 1m (default: twice the interval)")
    gate.add_argument("--max-error-rate", type=float, default=MAX_ERROR_RATIO, help="default 0.01")
    gate.add_argument("--max-p95", type=float, default=MAX_P95_S, help="seconds, default 1")
    gate.add_argument("--max-p99", type=float, default=MAX_P99_S, help="seconds, default 2")
    gate.set_defaults(func=run)
