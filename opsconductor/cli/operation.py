"""The client side of a change the supervisor carries out: send it, follow its progress, say
how it ended; and, when the user presses Ctrl-C, the one line that says what state the mesh
is in (the supervisor finishes what it started, so the line says that too)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from opsconductor.cli import exits
from opsconductor.cli.arguments import state_dir
from opsconductor.gateway.admin import AdminError, EnvoyAdmin
from opsconductor.stack import control, state


class ChangeFailed(RuntimeError):
    """A change ended without success; `code` is the exit code it maps to."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def run_change(args: argparse.Namespace, kind: str, command_args: dict, echo=None) -> dict:
    """Has the supervisor carry out `kind`, printing its progress through `echo` (stdout, or
    stderr with -o json); returns the operation's result or raises ChangeFailed."""
    echo = echo or (lambda line: print(line, file=sys.stderr if _json(args) else sys.stdout, flush=True))
    stack_state = running_stack(args)
    request = {"op": "run", "command": kind, "args": command_args, "wait": getattr(args, "wait", False)}
    args.submitted = None
    for event in control.request(Path(stack_state.control_socket), request):
        kind_of = event["event"]
        if kind_of == "busy":
            raise ChangeFailed(f"{event['message']}; nothing was changed (try again when it is done, or pass --wait)",
                               exits.BUSY)
        if kind_of == "waiting":
            print(event["message"], file=sys.stderr, flush=True)
        elif kind_of == "started":
            args.submitted = event["operation"]
        elif kind_of == "progress":
            echo(event["line"])
        elif kind_of == "finished":
            operation = event["operation"]
            if operation["state"] != "succeeded":
                raise ChangeFailed(operation["error"] or "the operation failed", exits.FAILED)
            return {"operation": operation["id"], **operation["result"]}
        elif kind_of == "error":
            raise ChangeFailed(event["message"], exits.USAGE)
    raise ChangeFailed("the supervisor closed the connection before the change ended (did the stack stop?)",
                       exits.UNREACHABLE)


def _json(args: argparse.Namespace) -> bool:
    return getattr(args, "output", "table") == "json"


def running_stack(args: argparse.Namespace) -> state.StackState:
    """The stack the command acts on; ChangeFailed (exit 5) when none is running."""
    stack_state = state.StackState.read(state_dir(args))
    if stack_state is None:
        raise ChangeFailed(str(state.NoStack(state_dir(args))), exits.NO_STACK)
    return stack_state


def describe_mesh(args: argparse.Namespace) -> str:
    """The mesh's state in a few words: its weights and the operation in progress."""
    directory = state_dir(args)
    stack_state = state.StackState.read(directory)
    if stack_state is None:
        return f"no stack is running from {directory.resolve()}"
    try:
        weights = EnvoyAdmin(stack_state.endpoint(state.ENVOY_ADMIN), timeout=2).weights()
        split = f"weights stable {weights.stable} % / canary {weights.canary} %"
    except AdminError:
        split = "weights unknown (Envoy's admin does not answer)"
    operations = state.read_operations(directory)
    running = [op for op in operations if not op.finished]
    if running:
        op = running[-1]
        return f"{split}; operation {op.id} ({op.kind}) running: {op.progress[-1] if op.progress else 'starting'}"
    return f"{split}; no change in progress"


def interrupted_change(args: argparse.Namespace, settle_s: float = 1.0) -> str:
    """What Ctrl-C during a change leaves: nothing sent, or the supervisor finishing it."""
    submitted = getattr(args, "submitted", None)
    if submitted is None:
        return f"interrupted before the supervisor took the command: nothing changed; {describe_mesh(args)}"
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:  # a quick change is done in milliseconds: say how it ended
        done = next((op for op in state.read_operations(state_dir(args)) if op.id == submitted["id"]
                     and op.finished), None)
        if done is not None:
            outcome = "completed" if done.state == "succeeded" else f"ended without it ({done.error})"
            return f"interrupted; the supervisor had {outcome}: {done.description}; {describe_mesh(args)}"
        time.sleep(0.1)  # polling the operation's record, which the supervisor keeps current
    return (f"interrupted; the supervisor carries on with operation {submitted['id']} ({submitted['description']}) "
            f"and finishes it: {describe_mesh(args)}; `opsconductor status` shows when it is done")

