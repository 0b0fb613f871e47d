"""`opsconductor canary rollout [start|status|pause|resume|abort|history]`: the automated canary
rollout, carried out by the stack's supervisor. `start` (the default) hands it over and follows
it (--watch, the default on a terminal); Ctrl-C only stops following. The other actions talk to
the running rollout or read the records finished ones left in the state directory."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from opsconductor.cli import exits
from opsconductor.cli.arguments import state_dir
from opsconductor.cli.operation import ChangeFailed, describe_mesh, run_change, running_stack
from opsconductor.cli.output import emit
from opsconductor.cli.parsing import count, seconds
from opsconductor.observability import prometheus
from opsconductor.release import rollout
from opsconductor.release.analysis import CanaryCriteria, EdgeReading, Reading, check_interval, millis, percent
from opsconductor.stack import control, state

ACTIONS = ("start", "status", "pause", "resume", "abort", "history")
ABORT_WAIT_S = 10.0


def _steps(text: str) -> tuple[int, ...]:
    try:
        return rollout.parse_steps(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _mirror(text: str) -> int:
    try:
        return rollout.check_mirror(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--mirror takes a whole percentage from 0 to 100, not {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rollout_action", nargs="?", choices=ACTIONS, default="start", metavar="ACTION",
                        help=f"{', '.join(ACTIONS)} (default start)")
    parser.add_argument("--steps", type=_steps, default=(10, 50, 100),
                        help="canary shares in order (default 10,50,100)")
    parser.add_argument("--interval", type=seconds, default=60.0,
                        help="seconds per step (default 60; at least four scrapes of Prometheus)")
    parser.add_argument("--min-calls", type=count, default=50, help="canary calls needed to judge a step")
    parser.add_argument("--hold-timeout", type=seconds, default=None,
                        help=f"seconds a step may hold for traffic (default {rollout.HOLD_INTERVALS} intervals)")
    parser.add_argument("--no-edge", dest="edge", action="store_false",
                        help="judge from the automation's metrics only, not also from the gateway's")
    parser.add_argument("--smoke", action="store_true",
                        help="a smoke test pinned to the canary (x-canary: always) before the first step and after "
                             "each; a failure fails the rollout")
    parser.add_argument("--mirror", type=_mirror, default=0, metavar="PCT",
                        help="a first step at weight 0 that mirrors PCT %% of calls to the canary (replies "
                        "discarded; only read-only tools run from them), judged like any step")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the queries, change nothing")
    watch = parser.add_mutually_exclusive_group()
    watch.add_argument("--watch", dest="watch", action="store_true", default=None,
                       help="follow the rollout to its end (the default on a terminal)")
    watch.add_argument("--no-watch", dest="watch", action="store_false", help="hand it over and return at once")
    parser.add_argument("--plot", action="store_true", help="history: (re)draw each record's plot")
    parser.add_argument("--last", type=count, default=10, help="history: how many records (default 10)")


def run(args: argparse.Namespace) -> int:
    return {"start": _start, "status": _status, "pause": _pause, "resume": _resume, "abort": _abort,
            "history": _history}[args.rollout_action](args)


def _echo(args: argparse.Namespace):
    out = sys.stderr if args.output == "json" else sys.stdout
    return lambda line: print(line, file=out, flush=True)


def _command_args(args: argparse.Namespace) -> dict:
    return {"steps": list(args.steps), "interval_s": args.interval, "min_calls": args.min_calls,
            "hold_timeout_s": args.hold_timeout, "edge": args.edge, "smoke": args.smoke, "mirror": args.mirror}


def _start(args: argparse.Namespace) -> int:
    if args.dry_run:
        return _dry_run(args)
    running_stack(args)
    watch = sys.stdout.isatty() if args.watch is None else args.watch
    if not watch:
        return _hand_over(args)
    args.following = True
    result = run_change(args, "rollout", _command_args(args), echo=_echo(args))
    args.following = False
    steps = [_step_of(data) for data in result.get("steps", [])]
    outcome = result.get("outcome", "")
    text = {rollout.PROMOTED: "PROMOTED", rollout.ABORTED: "ABORTED: rolled back to stable",
            rollout.STOPPED: "STOPPED with the stack: rolled back when it starts again"}.get(
        outcome, "FAILED: rolled back to stable")
    emit(args, result, lambda: rollout.report(steps, text) + (f"\nplot: {result['plot']}" if result.get("plot")
                                                               else ""))
    return exits.OK if outcome == rollout.PROMOTED else exits.FAILED


def _hand_over(args: argparse.Namespace) -> int:
    """Starts the rollout without following it."""
    stack_state = running_stack(args)
    request = {"op": "run", "command": "rollout", "args": _command_args(args), "wait": args.wait, "follow": False}
    for event in control.request(Path(stack_state.control_socket), request):
        if event["event"] == "busy":
            raise ChangeFailed(f"{event['message']}; nothing was changed (try again when it is done, or pass "
                               f"--wait)", exits.BUSY)
        if event["event"] == "error":
            raise ChangeFailed(event["message"], exits.USAGE)
        if event["event"] == "waiting":
            print(event["message"], file=sys.stderr, flush=True)
        if event["event"] == "started":
            started = event["operation"]
            line = (f"rollout {started['id']} started in the supervisor ({started['description']}); "
                    f"`opsconductor canary rollout status` shows it, `… abort` rolls it back")
            emit(args, {"operation": started["id"], "description": started["description"]}, lambda text=line: text)
            return exits.OK
    raise ChangeFailed("the supervisor closed the connection before taking the rollout", exits.UNREACHABLE)


def _dry_run(args: argparse.Namespace) -> int:
    stack_state = state.StackState.read(state_dir(args))
    scrape = 15.0
    if stack_state is not None and stack_state.endpoint(state.PROMETHEUS):
        scrape = prometheus.scrape_interval(stack_state.endpoint(state.PROMETHEUS))
    try:
        check_interval(args.interval, scrape)  # as the supervisor would refuse it
    except ValueError as error:
        raise ChangeFailed(str(error), exits.USAGE) from None
    policy = rollout.Policy(steps=args.steps, interval_s=args.interval, hold_timeout_s=args.hold_timeout,
                            criteria=CanaryCriteria(min_calls=args.min_calls), scrape_interval_s=scrape,
                            edge=args.edge, smoke=args.smoke, mirror=args.mirror)
    print(rollout.plan(policy))
    return exits.OK


def _step_of(data: dict) -> rollout.Step:
    """A step back from its record, for the terminal report."""
    return rollout.Step(weight=data["weight"], mirror=data.get("mirror", 0), verdict=data["verdict"],
                        reasons=data.get("reasons", []), notes=data.get("notes", []),
                        canary=Reading(**data["canary"]) if data.get("canary") else None,
                        stable=Reading(**data["stable"]) if data.get("stable") else None,
                        edge=EdgeReading(**data["edge"]) if data.get("edge") else None)


def _signal(args: argparse.Namespace, name: str) -> dict:
    stack_state = running_stack(args)
    for event in control.request(Path(stack_state.control_socket), {"op": "signal", "command": name}):
        if event["event"] == "signalled":
            return event["result"]
        if event["event"] == "error":
            raise ChangeFailed(event["message"], exits.FAILED)
    raise ChangeFailed("the supervisor closed the connection without an answer", exits.UNREACHABLE)


def _pause(args: argparse.Namespace) -> int:
    result = _signal(args, "rollout-pause")
    emit(args, result, lambda: "paused: the weight stays where it is until `opsconductor canary rollout resume`")
    return exits.OK


def _resume(args: argparse.Namespace) -> int:
    result = _signal(args, "rollout-resume")
    emit(args, result, lambda: "resumed")
    return exits.OK


def _abort(args: argparse.Namespace) -> int:
    started = time.monotonic()
    _signal(args, "rollout-abort")
    deadline = started + ABORT_WAIT_S
    record = state.read_rollout(state_dir(args))
    while record is not None and record.get("running") and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the record the supervisor writes once it has rolled back
        record = state.read_rollout(state_dir(args))
    took_ms = (time.monotonic() - started) * 1000
    if record is None or record.get("running"):
        raise ChangeFailed(f"the rollout did not end within {ABORT_WAIT_S:g} s: {describe_mesh(args)}", exits.FAILED)
    # Rolled back; the supervisor still writes the history record and its plot: the next
    # command must not find the rollout's operation busy.
    while time.monotonic() < deadline + ABORT_WAIT_S and _operation_running(args, record.get("operation")):
        time.sleep(0.05)
    emit(args, {"outcome": record.get("outcome"), "id": record.get("id"), "took_ms": round(took_ms, 1)},
         lambda: f"rollout {record.get('id')} {record.get('outcome')}: every call goes to the stable pool "
                 f"({took_ms:.0f} ms)")
    return exits.OK


def _operation_running(args: argparse.Namespace, operation_id: object) -> bool:
    return any(op.id == operation_id and not op.finished for op in state.read_operations(state_dir(args)))


def _age(at: float | None) -> str:
    return "—" if not at else f"{time.time() - at:.0f} s ago"


def describe(record: dict) -> str:
    """A rollout record as a few lines a person reads."""
    mirror = [f"mirror {record['mirror']} %"] if record.get("mirror") else []
    head = (f"rollout {record.get('id', '?')}: {'running' if record.get('running') else record.get('outcome')}"
            f"{' (paused)' if record.get('paused') and record.get('running') else ''}; steps "
            f"{', '.join([*mirror, *(f'{s} %' for s in record.get('steps', []))])}, "
            f"{record.get('interval_s', 0):g} s each "
            f"(window {record.get('window', '?')}); started {_age(record.get('started_at'))}")
    lines = [head]
    if record.get("reason"):
        lines.append(f"  reason: {record['reason']}")
    for step in record.get("history", []):
        canary = step.get("canary") or {}
        took = "" if step.get("took_s") is None else f" in {step['took_s']:.1f} s"
        what = f"mirror {step['mirror']} %" if step.get("mirror") else f"{step['weight']:>3} %"
        lines.append(f"  {what}: {step['verdict']}{took}; canary {canary.get('calls', 0):.0f} calls, "
                     f"errors {percent(canary.get('error_ratio'))}, p99 {millis(canary.get('p99_s'))}"
                     f"{': ' + '; '.join(step.get('reasons', [])) if step.get('reasons') else ''}"
                     f"{' (' + '; '.join(step['notes']) + ')' if step.get('notes') else ''}")
    if record.get("plot"):
        lines.append(f"  plot: {record['plot']}")
    return "\n".join(lines)


def _status(args: argparse.Namespace) -> int:
    record = state.read_rollout(state_dir(args))
    if record is None:
        emit(args, {"running": False}, lambda: f"no rollout has run from {state_dir(args).resolve()}")
        return exits.OK
    emit(args, record, lambda: describe(record))
    return exits.OK


def _history(args: argparse.Namespace) -> int:
    records = state.read_history(state_dir(args))[-args.last:]
    if args.plot:
        from opsconductor.release.plot import write_plot  # matplotlib loads in a second: only when drawing

        for record in records:
            record["plot"] = str(write_plot(record, state.history_path(state_dir(args), int(record["id"]), ".svg")))
            state.write_history(state_dir(args), record)
    emit(args, records, lambda: "\n".join(describe(record) for record in records)
         or f"no finished rollout in {state_dir(args).resolve()}")
    return exits.OK


def interrupted(args: argparse.Namespace) -> str:
    """Ctrl-C while following: the rollout goes on; say how to see it or stop it."""
    submitted = getattr(args, "submitted", None)
    if args.rollout_action != "start" or submitted is None:
        return f"interrupted; nothing was changed: {describe_mesh(args)}"
    return (f"stopped following; rollout {submitted['id']} goes on in the supervisor: `opsconductor canary "
            f"rollout status` shows it, `opsconductor canary rollout abort` rolls it back")
