"""`opsconductor smoke ENV`: is a deployment alive end to end? Health of every component,
metrics endpoints, echo through the gateway over native gRPC and gRPC-Web, counters that
move, and a Prometheus query. Says exactly what failed; exits non-zero when anything did."""

from __future__ import annotations

import argparse

from opsconductor.cli.arguments import add_environment, load_environment
from opsconductor.cli.output import add_output
from opsconductor.cli.reports import report_checks
from opsconductor.cli.parsing import command
from opsconductor.release import smoke


def run(args: argparse.Namespace) -> int:
    env = load_environment(args, "smoke")
    if isinstance(env, int):
        return env
    return report_checks(args, f"smoke test of {env.name} ({env.gateway})", env.name, smoke.checks(env))


def add_parsers(commands) -> None:
    parser = command(commands, "smoke", help="release smoke test of a deployment", description=__doc__,
                     examples=(("opsconductor smoke", "the local stack"), ("opsconductor smoke staging", ""),
                               ("opsconductor smoke local --state-dir /tmp/mesh -o json", "")))
    add_environment(parser)
    add_output(parser)
    parser.set_defaults(func=run)
