"""The `opsconductor` command's parser and its table of commands, one module each, and how a
command is run: Ctrl-C ends it with one line saying what state the mesh is in and exit code
130, never a traceback."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from opsconductor.cli import (bench, canary, certs, exits, frontend_check, gate, services, smoke, stat, status, trace,
                              up)
from opsconductor.cli.operation import describe_mesh
from opsconductor.cli.parsing import Parser, full_name
from services.common.config import package_version

# Each module adds its own subcommands, in the order `--help` lists them.
COMMANDS = (services, up, status, stat, canary, trace, certs, smoke, gate, frontend_check, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="opsconductor", description="Run the services and operate the mesh.",
                    epilog="`opsconductor COMMAND --help` shows a command's flags, examples and exit codes.")
    parser.add_argument("--version", action="version", version=f"opsconductor {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parsers(commands)
    return parser


def run(argv: Sequence[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("opsconductor: interrupted; nothing was changed", file=sys.stderr)
        return exits.INTERRUPTED
    args.argv = list(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        # A second Ctrl-C must not cut the closing line short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"opsconductor {full_name(args)}: {_interrupted(args)}", file=sys.stderr, flush=True)
        return exits.INTERRUPTED


def _interrupted(args: argparse.Namespace) -> str:
    handler = getattr(args, "interrupted", None)
    if handler is not None:
        return handler(args)
    if hasattr(args, "state_dir"):
        return f"interrupted; nothing was changed: {describe_mesh(args)}"
    return "interrupted; nothing was changed"
