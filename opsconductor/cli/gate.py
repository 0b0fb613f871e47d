"""`opsconductor gate ENV MINUTES`: watch a deployment's SLOs in Prometheus for a while.

Each interval it reads Execute's error ratio (gRPC codes that spend error budget), p95, p99
and request rate; it fails at the first violation. No traffic proves nothing: it is
inconclusive, never a pass.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace

from opsconductor.cli import exits
from opsconductor.cli.arguments import add_environment, load_environment
from opsconductor.cli.output import add_output, emit
from opsconductor.cli.parsing import command, http_url, minutes, ratio, seconds, window
from opsconductor.observability import prometheus
from opsconductor.release.analysis import MAX_ERROR_RATIO, MAX_P95_S, MAX_P99_S, Slo, millis, percent
from opsconductor.release import environments
from opsconductor.release.environments import Environment
from opsconductor.release.gate import OUTCOMES, GatePlan, run_gate


def run(args: argparse.Namespace) -> int:
    env = _cluster_environment(args) if args.prometheus else None
    env = env or load_environment(args, "gate")
    if isinstance(env, int):
        return env
    if args.prometheus:
        env = replace(env, prometheus_url=args.prometheus)
    if not env.prometheus_url:
        print(f"opsconductor gate: {env.name} has no Prometheus", file=sys.stderr)
        return exits.USAGE
    plan = GatePlan(args.minutes, args.interval, args.window or f"{max(int(args.interval * 2), 10)}s",
                    Slo(args.max_error_rate, args.max_p95, args.max_p99), None if args.pool == "all" else args.pool)
    out = sys.stderr if args.output == "json" else sys.stdout
    scope = "" if plan.pool is None else f" ({plan.pool} pool only)"
    print(f"metrics gate on {env.name}{scope}: {plan.intervals} × {plan.interval_s:g} s, window {plan.window}; "
          f"error rate < {percent(plan.slo.max_error_ratio)}, p95 < {millis(plan.slo.max_p95_s, 0)}, "
          f"p99 < {millis(plan.slo.max_p99_s, 0)}", file=out, flush=True)
    readings: list = []
    try:
        code = run_gate(lambda expr: prometheus.scalar(env.prometheus_url, expr), plan,
                        echo=lambda line: print(line, file=out, flush=True), readings=readings)
    except prometheus.PrometheusError as error:
        print(f"\nopsconductor gate: {error}", file=sys.stderr)
        return exits.UNREACHABLE
    if args.output == "json":
        emit(args, {"environment": env.name, "pool": args.pool, "outcome": OUTCOMES[code], "exit_code": code,
                    "intervals": [{"verdict": verdict, **asdict(reading)} for reading, verdict in readings]},
             lambda: "")
    return code


def _cluster_environment(args: argparse.Namespace) -> Environment | None:
    """With --prometheus the gate reads only that Prometheus: a local environment whose stack
    is not running here (a cluster's) is named, not loaded."""
    try:
        environments.load(args.environment, args.config, args.state_dir)
    except environments.NoLocalStack:
        return Environment(args.environment, gateway="")
    except environments.UnknownEnvironment:
        return None  # load_environment says why
    return None


def add_parsers(commands) -> None:
    gate = command(commands, "gate", help="release metrics gate: watch SLOs in Prometheus for N minutes",
                   description=__doc__,
                   examples=(("opsconductor gate local 5", "five minutes on the local stack"),
                             ("opsconductor gate staging 10 --interval 60", ""),
                             ("opsconductor gate local 5 --pool canary", "the canary's calls only"),
                             ("opsconductor gate local 1 --max-p99 0.5 -o json", ""),
                             ("opsconductor gate production 10 --prometheus http://127.0.0.1:9090",
                              "a cluster's, after kubectl -n monitoring port-forward svc/prometheus 9090")))
    add_environment(gate)
    gate.add_argument("minutes", nargs="?", type=minutes, default=5.0, help="how long to watch (default 5)")
    gate.add_argument("--prometheus", type=http_url, metavar="URL",
                      help="the Prometheus to read instead of the environment's (e.g. a cluster's)")
    gate.add_argument("--interval", type=seconds, default=30.0, help="seconds between readings (default 30)")
    gate.add_argument("--window", type=window, help="rate window, e.g. 1m (default: twice the interval)")
    gate.add_argument("--pool", choices=("canary", "stable", "all"), default="all",
                      help="judge one pool's calls only, so stable's traffic cannot dilute a canary's errors "
                           "(default all)")
    gate.add_argument("--max-error-rate", type=ratio, default=MAX_ERROR_RATIO, help="a fraction, default 0.01")
    gate.add_argument("--max-p95", type=seconds, default=MAX_P95_S, help="seconds, default 1")
    gate.add_argument("--max-p99", type=seconds, default=MAX_P99_S, help="seconds, default 2")
    add_output(gate)
    gate.set_defaults(func=run)
