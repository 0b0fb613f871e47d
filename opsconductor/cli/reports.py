"""How the release checks report: one PASS/FAIL line per check as it runs (on stderr with
-o json), then the count, or the results as JSON."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from opsconductor.cli import exits
from opsconductor.cli.output import emit
from opsconductor.release.checks import Check, run_checks


def report_checks(args: argparse.Namespace, title: str, environment: str, checks: list[Check]) -> int:
    out = sys.stderr if args.output == "json" else sys.stdout
    print(title, file=out, flush=True)
    results = run_checks(checks, out=out)
    failed = sum(1 for result in results if not result.ok)
    emit(args, {"environment": environment, "passed": len(results) - failed, "failed": failed,
                "checks": [asdict(result) for result in results]},
         lambda: f"\n{len(results) - failed} passed, {failed} failed")
    return exits.FAILED if failed else exits.OK
