"""`opsconductor trace TRACE_ID` and `opsconductor trace --slowest N`: a call's waterfall, or the
slowest recent traces, from the local stack's trace store (or the one --traces-url names)."""

from __future__ import annotations

import argparse
import re
import sys

from opsconductor.cli import exits
from opsconductor.cli.arguments import add_state_dir, state_dir
from opsconductor.cli.output import add_output, emit
from opsconductor.cli.parsing import command
from opsconductor.observability import traces
from opsconductor.stack import state
from opsconductor.stack.lifecycle import supervisor_alive

_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
MAX_SLOWEST = 100


def trace_id(text: str) -> str:
    if not _TRACE_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"a trace id is 32 hex characters, not {text[:40]!r}")
    return text


def slowest_count(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_SLOWEST:
        raise argparse.ArgumentTypeError(f"takes a whole number from 1 to {MAX_SLOWEST}, not {text[:20]!r}")
    return int(text)


def add_parsers(commands) -> None:
    parser = command(commands, "trace", help="show a call's trace as a waterfall, or the slowest traces",
                     description=__doc__.splitlines()[0],
                     examples=(("opsconductor trace 4bf92f3577b34da6a3ce929d0e0e4736", "a call's waterfall "
                                "(the trace_id of its reply)"),
                               ("opsconductor trace --slowest 10", "the ten slowest recent traces"),
                               ("opsconductor trace --slowest 5 -o json", "for scripts")))
    parser.add_argument("trace_id", nargs="?", type=trace_id, metavar="TRACE_ID",
                        help="32 hex characters (a reply's trace_id)")
    parser.add_argument("--slowest", type=slowest_count, metavar="N",
                        help=f"list the N slowest recent traces (1-{MAX_SLOWEST})")
    parser.add_argument("--traces-url", metavar="URL", help="the trace store's query API (default: the local stack's)")
    add_output(parser)
    add_state_dir(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if (args.trace_id is None) == (args.slowest is None):
        print("opsconductor trace: give a TRACE_ID or --slowest N (see `opsconductor trace --help`)",
              file=sys.stderr)
        return exits.USAGE
    url = args.traces_url or _stack_store(args)
    if not url:
        return exits.NO_STACK
    try:
        if args.trace_id is not None:
            trace = traces.get_trace(url, args.trace_id)
            emit(args, trace, lambda: traces.waterfall_text(trace))
        else:
            listing = traces.slowest(url, args.slowest)
            emit(args, listing, lambda: traces.slowest_text(listing))
    except traces.StoreUnreachable as error:
        print(f"opsconductor trace: {error}", file=sys.stderr)
        return exits.UNREACHABLE
    except traces.TraceError as error:
        print(f"opsconductor trace: {error}", file=sys.stderr)
        return exits.FAILED
    return exits.OK


def _stack_store(args: argparse.Namespace) -> str:
    """The running stack's store, or "" after saying there is none."""
    directory = state_dir(args)
    stack_state = state.StackState.read(directory)
    if not supervisor_alive(stack_state):
        print(f"opsconductor trace: {state.NoStack(directory)}", file=sys.stderr)
        return ""
    url = stack_state.endpoint(state.TRACES)
    if not url:
        print(f"opsconductor trace: the stack running from {directory.resolve()} keeps no trace store "
              "(started with --otlp-endpoint or --trace-sample off); give --traces-url", file=sys.stderr)
    return url
