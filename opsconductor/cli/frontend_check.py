"""`opsconductor frontend-check ENV`: the Exec Sandbox page is served, its assets load, the
HTML has the app root, its runtime config names a gateway, and the app initialises in
headless Chromium without errors."""

from __future__ import annotations

import argparse
import sys

from opsconductor.cli import exits
from opsconductor.cli.arguments import add_environment, load_environment
from opsconductor.cli.output import add_output
from opsconductor.cli.parsing import command
from opsconductor.cli.reports import report_checks
from opsconductor.release import frontend


def run(args: argparse.Namespace) -> int:
    env = load_environment(args, "frontend-check")
    if isinstance(env, int):
        return env
    if not env.page_url:
        print(f"opsconductor frontend-check: {env.name} serves no page", file=sys.stderr)
        return exits.USAGE
    return report_checks(args, f"frontend check of {env.name} ({env.page_url})", env.name,
                         frontend.checks(env.page_url))


def add_parsers(commands) -> None:
    parser = command(commands, "frontend-check", help="release check of the Exec Sandbox page", description=__doc__,
                     examples=(("opsconductor frontend-check", "the local stack's page"),
                               ("opsconductor frontend-check production -o json", "")))
    add_environment(parser)
    add_output(parser)
    parser.set_defaults(func=run)
