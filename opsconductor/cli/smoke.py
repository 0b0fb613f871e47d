"""`opsconductor smoke ENV`: is a deployment alive end to end? Health of every component,
metrics endpoints, echo through the gateway over native gRPC and gRPC-Web, counters that
move, and a Prometheus query. Says exactly what failed; exits non-zero when anything did."""

from __future__ import annotations

import argparse

from opsconductor.cli.arguments import add_environment, load_environment
from opsconductor.release import smoke
from opsconductor.release.checks import run_checks, summary


def run(args: argparse.Namespace) -> int:
    env = load_environment(args, "smoke")
    if env is None:
        return 2
    print(f"smoke test of {env.name} ({env.gateway})")
    return summary(run_checks(smoke.checks(env)))


def add_parsers(commands) -> None:
    parser = commands.add_parser("smoke", help="release smoke test of a deployment", description=__doc__)
    add_environment(parser)
    parser.set_defaults(func=run)
