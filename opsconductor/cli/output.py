"""How commands report: a table a person reads by default, `-o json` for scripts."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable


def add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table",
                        help="table (default) or json")


def emit(args: argparse.Namespace, data: object, table: Callable[[], str]) -> None:
    """Prints `data` as JSON with -o json, else the table."""
    print(json.dumps(data, indent=2, default=str) if args.output == "json" else table(), flush=True)
