"""Arguments several commands share: the state directory and the environment a check targets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from opsconductor.release import environments
from opsconductor.stack.state import DEFAULT_STATE_DIR


def add_state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                        help=f"state directory of `up` (OPSCONDUCTOR_STATE_DIR, default {DEFAULT_STATE_DIR})")


def add_environment(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("environment", nargs="?", default="local", help="local, staging or production (default local)")
    parser.add_argument("--config", type=Path, default=environments.DEFAULT_FILE, help="environments file")
    parser.add_argument("--state-dir", type=Path, help="state directory of a local stack")


def load_environment(args: argparse.Namespace, command: str) -> environments.Environment | None:
    """The environment the arguments name, or None after printing why there is none."""
    try:
        return environments.load(args.environment, args.config, args.state_dir)
    except environments.UnknownEnvironment as error:
        print(f"opsconductor {command}: {error}", file=sys.stderr)
        return None
