"""`opsconductor trace TRACE_ID` and `opsconductor trace --slowest N`: a call's waterfall, or the
slowest recent traces, from the local stack's trace store (or the one --traces-url names)."""

from __future__ import annotations

import argparse
import re
import sys

from opsconductor.cli.arguments import add_state_dir
from opsconductor.cli.output import add_output, emit
from opsconductor.observability import traces
from opsconductor.stack import state

_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")


def add_parsers(commands) -> None:
    parser = commands.add_parser("trace", help="show a call's trace as a waterfall, or the slowest traces",
                                 description=__doc__.splitlines()[0])
    parser.add_argument("trace_id", nargs="?", metavar="TRACE_ID", help="32 hex characters (a reply's trace_id)")
    parser.add_argument("--slowest", type=int, metavar="N", help="list the N slowest recent traces (1-100)")
    parser.add_argument("--traces-url", metavar="URL", help="the trace store's query API (default: the local stack's)")
    add_output(parser)
    add_state_dir(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if (args.trace_id is None) == (args.slowest is None):
        print("opsconductor trace: give a TRACE_ID or --slowest N", file=sys.stderr)
        return 2
    if args.trace_id is not None and not _TRACE_ID.fullmatch(args.trace_id):
        print(f"opsconductor trace: a trace id is 32 hex characters, not {args.trace_id[:40]!r}", file=sys.stderr)
        return 2
    if args.slowest is not None and not 1 <= args.slowest <= 100:
        print("opsconductor trace: --slowest takes 1-100", file=sys.stderr)
        return 2
    url = args.traces_url or _stack_store(args)
    if not url:
        return 1
    try:
        if args.trace_id is not None:
            trace = traces.get_trace(url, args.trace_id)
            emit(args, trace, lambda: traces.waterfall_text(trace))
        else:
            listing = traces.slowest(url, args.slowest)
            emit(args, listing, lambda: traces.slowest_text(listing))
    except traces.TraceError as error:
        print(f"opsconductor trace: {error}", file=sys.stderr)
        return 1
    return 0


def _stack_store(args: argparse.Namespace) -> str:
    stack_state = state.StackState.read(args.state_dir)
    url = stack_state.endpoint(state.TRACES) if stack_state else ""
    if not url:
        print(f"opsconductor trace: no local trace store runs from {args.state_dir.resolve()} "
              "(start one with `opsconductor up`, or give --traces-url)", file=sys.stderr)
    return url
