"""`opsconductor status` and `opsconductor down`: what a running stack is doing, and stopping it."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from opsconductor.cli import exits
from opsconductor.cli.arguments import add_state_dir, state_dir
from opsconductor.cli.output import add_output, emit
from opsconductor.cli.parsing import command, non_negative_count
from opsconductor.stack import lifecycle, state
from opsconductor.stack import status as stack_status


def add_parsers(commands) -> None:
    status = command(commands, "status", help="show every component of a running stack",
                     description="Every component's state (running, restarting, crash-looping, stopped), health, "
                                 "pid, ports, version, uptime, restart count and last exit; the weights; the "
                                 "operation in progress.",
                     examples=(("opsconductor status", "the table"),
                               ("opsconductor status canary-1-pipeline --logs 20", "one component, its last lines"),
                               ("opsconductor status -o json", "for scripts")))
    status.add_argument("components", nargs="*", metavar="COMPONENT", help="only these components")
    status.add_argument("--logs", type=non_negative_count, default=0, metavar="N",
                        help="also show each component's last N log lines")
    add_output(status)
    add_state_dir(status)
    status.set_defaults(func=run_status)
    down = command(commands, "down", help="stop a running stack", examples=(("opsconductor down", ""),))
    add_output(down)
    add_state_dir(down)
    down.set_defaults(func=run_down, interrupted=_down_interrupted)


def run_status(args: argparse.Namespace) -> int:
    try:
        report = stack_status.report(state_dir(args), args.components, args.logs)
    except stack_status.NotRunning as error:
        if args.output == "json":
            print(json.dumps({"running": False, "message": str(error)}))
        else:
            print(error)
        return exits.NO_STACK
    except ValueError as error:
        print(f"opsconductor status: {error}", file=sys.stderr)
        return exits.USAGE
    emit(args, {"running": True, **asdict(report)}, lambda: stack_status.table(report))
    return exits.OK if report.healthy else exits.FAILED


def run_down(args: argparse.Namespace) -> int:
    directory = state_dir(args)
    stopped = lifecycle.stop(directory)
    text = "the mesh is stopped" if stopped else f"no stack is running from {directory.resolve()}"
    emit(args, {"stopped": stopped, "message": text}, lambda: text)
    return exits.OK


def _down_interrupted(args: argparse.Namespace) -> str:
    stack_state = state.StackState.read(state_dir(args))
    if stack_state is None:
        return "interrupted; the mesh is stopped"
    if lifecycle.supervisor_alive(stack_state):
        return (f"interrupted; the supervisor (pid {stack_state.supervisor_pid}) goes on stopping the mesh; "
                "`opsconductor status` says when it is gone")
    return "interrupted; the supervisor is gone but some components may be left: run `opsconductor down` again"
