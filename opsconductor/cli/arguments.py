"""Arguments several commands share: the state directory, the environment a check targets, and
how a command reports (-o table|json)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from opsconductor.cli import exits
from opsconductor.cli.parsing import existing_file
from opsconductor.release import environments
from opsconductor.stack import state


def add_state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=None, metavar="DIR",
                        help=f"state directory of `up` (default ${state.STATE_DIR_VARIABLE}, else .opsconductor)")


def state_dir(args: argparse.Namespace) -> Path:
    """--state-dir, else $OPSCONDUCTOR_STATE_DIR, else .opsconductor."""
    return args.state_dir if getattr(args, "state_dir", None) is not None else state.default_dir()


def add_environment(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("environment", nargs="?", default="local", help="local, staging or production (default local)")
    parser.add_argument("--config", type=existing_file, default=environments.DEFAULT_FILE, metavar="FILE",
                        help="environments file (default deploy/environments.toml)")
    add_state_dir(parser)


def load_environment(args: argparse.Namespace, command: str) -> environments.Environment | int:
    """The environment the arguments name, or the exit code after printing why there is none."""
    try:
        return environments.load(args.environment, args.config, args.state_dir)
    except environments.NoLocalStack as error:
        print(f"opsconductor {command}: {error}", file=sys.stderr)
        return exits.NO_STACK
    except environments.UnknownEnvironment as error:
        print(f"opsconductor {command}: {error}", file=sys.stderr)
        return exits.USAGE
