"""How every command reads its arguments: a bad value is answered with one line naming the flag
and exit code 2; the value types the commands share (ports, durations, percentages, files);
and each subcommand's --help, which ends with examples and its exit codes."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

from opsconductor.cli import exits
from opsconductor.observability.golden import parse_window
from opsconductor.stack.ports import HIGHEST_PORT, LOWEST_PORT

_WHOLE = re.compile(r"[0-9]{1,6}")
MAX_WINDOW_CHARS = 12  # "1h30m" fits many times over; a longer one is junk


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (argparse prints the usage block first)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(exits.USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def command(commands: argparse._SubParsersAction, name: str, *, help: str, examples: Sequence[tuple[str, str]],
            description: str | None = None, exit_codes: str | None = None) -> Parser:
    """A subcommand whose --help ends with `examples` ((command line, what it does) pairs) and
    the exit codes of `exit_codes` (the command's full name, by default `name`)."""
    prog = commands._prog_prefix  # "opsconductor" or "opsconductor canary"
    full = f"{prog} {name}".removeprefix("opsconductor ")
    lines = [f"  {line:<48} # {what}" if what else f"  {line}" for line, what in examples]
    epilog = "examples:\n" + "\n".join(lines) + "\n\n" + exits.epilog(exit_codes or full)
    return commands.add_parser(name, help=help, description=description or help, epilog=epilog,
                               formatter_class=argparse.RawDescriptionHelpFormatter)


def full_name(args: argparse.Namespace) -> str:
    """"canary promote", "certs rotate", "status": a command with subcommands keeps the chosen
    one in `<command>_command`."""
    return " ".join(filter(None, (args.command, getattr(args, f"{args.command}_command", None))))


def _whole(text: str, what: str) -> int:
    if not _WHOLE.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"{what}, not {text!r}")
    return int(text)


def port(text: str) -> int:
    value = _whole(text, f"must be a port from {LOWEST_PORT} to {HIGHEST_PORT}")
    if not LOWEST_PORT <= value <= HIGHEST_PORT:
        raise argparse.ArgumentTypeError(f"must be a port from {LOWEST_PORT} to {HIGHEST_PORT}, not {text!r}")
    return value


def percent(text: str) -> int:
    """A canary share: a whole number 0-100 and nothing else (Envoy would take junk silently)."""
    value = _whole(text, "must be a whole number from 0 to 100")
    if value > 100:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 100, not {text!r}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def _bounded(text: str, allowed, what: str) -> float:
    """A finite number that `allowed` accepts; otherwise the one line argparse prints."""
    value = _number(text)
    if not allowed(value):
        raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
    return value


def seconds(text: str) -> float:
    """A duration in seconds, above zero."""
    return _bounded(text, lambda value: value > 0, "a positive number of seconds")


def non_negative_seconds(text: str) -> float:
    return _bounded(text, lambda value: value >= 0, "a number of seconds ≥ 0")


def minutes(text: str) -> float:
    return _bounded(text, lambda value: value > 0, "a positive number of minutes")


def window(text: str) -> str:
    """A Prometheus duration such as 30s, 5m or 1h30m, kept as text (the queries take it so)."""
    try:
        if len(text) > MAX_WINDOW_CHARS:
            raise ValueError
        parse_window(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a duration such as 30s, 5m or 1h, not {text[:40]!r}") from None
    return text


def ratio(text: str) -> float:
    """A fraction from 0 to 1 (0.01 is 1 %)."""
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction from 0 to 1 (0.01 is 1 %), not {text!r}")
    return value


def count(text: str) -> int:
    """A whole number, at least 1."""
    value = _whole(text, "must be a whole number ≥ 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 1, not {text!r}")
    return value


def non_negative_count(text: str) -> int:
    return _whole(text, "must be a whole number ≥ 0")


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return path


def existing_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"no such directory: {text}")
    return path


MAX_URL_CHARS = 2048


def http_url(text: str) -> str:
    """An http(s) URL with a host, such as a Prometheus behind `kubectl port-forward`."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if len(text) > MAX_URL_CHARS or parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text[:80]!r}")
    return text.rstrip("/")
