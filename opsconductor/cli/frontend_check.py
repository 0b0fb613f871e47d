"""`opsconductor frontend-check ENV`: the Exec Sandbox page is served, its assets load, the
HTML has the app root, its runtime config names a gateway, and the app initialises in
headless Chromium without errors."""

from __future__ import annotations

import argparse
import sys

from opsconductor.cli.arguments import add_environment, load_environment
from opsconductor.release import frontend
from opsconductor.release.checks import run_checks, summary


def run(args: argparse.Namespace) -> int:
    env = load_environment(args, "frontend-check")
    if env is None:
        return 2
    if not env.page_url:
        print(f"opsconductor frontend-check: {env.name} serves no page", file=sys.stderr)
        return 2
    print(f"frontend check of {env.name} ({env.page_url})")
    return summary(run_checks(frontend.checks(env.page_url)))


def add_parsers(commands) -> None:
    parser = commands.add_parser("frontend-check", help="release check of the Exec Sandbox page", description=__doc__)
    add_environment(parser)
    parser.set_defaults(func=run)
