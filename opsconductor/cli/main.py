"""The `opsconductor` command: its parser and the table of commands, one module each."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from opsconductor.cli import bench, canary, certs, frontend_check, gate, services, smoke, stat, trace, up

# Each module adds its own subcommands, in the order `--help` lists them.
COMMANDS = (services, up, stat, canary, trace, certs, smoke, gate, frontend_check, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opsconductor",
                                     description="Run the services and operate the mesh.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
