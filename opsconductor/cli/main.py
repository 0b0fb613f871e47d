"""The `opsconductor` entry point. It imports the commands only once it runs, so a Ctrl-C even
while they load ends with one line and exit code 130, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Sequence

INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from opsconductor.cli.commands import run
    except KeyboardInterrupt:
        print("opsconductor: interrupted while starting; nothing was changed", file=sys.stderr)
        return INTERRUPTED
    return run(list(sys.argv[1:] if argv is None else argv))
