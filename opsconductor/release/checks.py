"""Runs named release checks and reports each as PASS or FAIL with what it found."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Check = tuple[str, Callable[[], str]]  # a check returns a detail or raises with what went wrong


@dataclass
class Result:
    name: str
    ok: bool
    detail: str


def run_checks(checks: Sequence[Check], out=sys.stdout) -> list[Result]:
    """Runs every check, even after a failure, printing one line each."""
    results = []
    for name, check in checks:
        try:
            detail, ok = check(), True
        except AssertionError as error:
            detail, ok = str(error), False
        except Exception as error:  # reported, then the next check runs
            detail, ok = f"{type(error).__name__}: {error}", False
        results.append(Result(name, ok, detail))
        print(f"  {'PASS' if ok else 'FAIL'}  {name:32} {detail}", file=out, flush=True)
    return results
