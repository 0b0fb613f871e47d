"""`opsconductor canary status|set|rollback|promote|bypass|rollout`: see and change how calls
split between the stable and canary pools of a running stack. Every change is carried out by
the stack's supervisor, so Ctrl-C or a closed terminal never leaves one half done; two at once
are serialised (the second is told the first is in progress, or waits with --wait)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from opsconductor.cli import exits, stat
from opsconductor.cli import rollout as rollout_cli
from opsconductor.cli.arguments import add_state_dir
from opsconductor.cli.operation import ChangeFailed, describe_mesh, interrupted_change, run_change
from opsconductor.cli.output import add_output, emit
from opsconductor.cli.parsing import command, percent
from opsconductor.gateway import runtime
from opsconductor.gateway.admin import AdminError, validate_weights
from opsconductor.observability import prometheus
from opsconductor.release import kubernetes
from opsconductor.stack import control


def run(args: argparse.Namespace) -> int:
    try:
        return args.action(args)
    except ChangeFailed as error:
        print(f"opsconductor canary {args.canary_command}: {error}", file=sys.stderr)
        return error.code
    except kubernetes.KubectlError as error:
        print(f"opsconductor canary {args.canary_command}: {error}", file=sys.stderr)
        return exits.UNREACHABLE if error.missing else exits.FAILED
    except (AdminError, control.ControlError, prometheus.PrometheusError) as error:
        print(f"opsconductor canary {args.canary_command}: {error}", file=sys.stderr)
        return exits.UNREACHABLE


def _status(args: argparse.Namespace) -> int:
    """`stat` under the name canary users know: one implementation, two entry points."""
    return stat.show(args)


def _weights_text(result: dict) -> str:
    weights = result["weights"]
    return f"weights: stable {weights['stable']} % / canary {weights['canary']} %"


def _direct(args: argparse.Namespace, percent: int) -> dict | None:
    """A change made without the local supervisor: in a cluster's weights ConfigMap, or in a
    layer directory gateways not started by `up` read. None when neither was asked for."""
    if args.kubernetes:
        return kubernetes.set_canary_share(kubernetes.Target(args.context or "", args.namespace), percent)
    if args.runtime_dir:
        weights = validate_weights(100 - percent, percent)
        runtime.publish(args.runtime_dir, weights)
        return {"weights": {"stable": weights.stable, "canary": weights.canary}}
    return None


def _set(args: argparse.Namespace) -> int:
    result = _direct(args, args.percent)
    if result is None:
        result = run_change(args, "set-weights", {"canary": args.percent}, echo=lambda line: None)
    emit(args, result, lambda: _weights_text(result))
    return exits.OK


def _rollback(args: argparse.Namespace) -> int:
    started = time.monotonic()
    result = _direct(args, 0)
    if result is not None:
        result["took_ms"] = round((time.monotonic() - started) * 1000, 1)
    else:
        result = run_change(args, "rollback", {}, echo=lambda line: None)
    emit(args, result, lambda: f"rolled back: every call goes to the stable pool ({result['took_ms']:.0f} ms)")
    return exits.OK


def _promote(args: argparse.Namespace) -> int:
    if args.kubernetes:
        result = kubernetes.promote(kubernetes.Target(args.context or "", args.namespace), echo=print)
    else:
        result = run_change(args, "promote", {})
    emit(args, result, lambda: _weights_text(result))
    return exits.OK


def _bypass(args: argparse.Namespace) -> int:
    value = "true" if args.state == "on" else "false"
    result = run_change(args, "restart-pool", {"pool": "canary", "env": {"FEATURE_BYPASS_LLM": value}})
    emit(args, result, lambda: f"the canary pool runs with FEATURE_BYPASS_LLM={value}")
    return exits.OK


def interrupted(args: argparse.Namespace) -> str:
    """The line Ctrl-C prints: what the supervisor does with the change, the mesh's state."""
    if args.canary_command == "rollout":
        return rollout_cli.interrupted(args)
    if args.canary_command == "status" or getattr(args, "kubernetes", False) or getattr(args, "runtime_dir", None):
        return f"interrupted; nothing was changed: {describe_mesh(args)}"
    return interrupted_change(args)


def add_parsers(commands) -> None:
    canary = command(commands, "canary", help="canary weights, rollback and promotion",
                     description="See and change how calls split between the stable and canary pools. Every change "
                                 "is carried out by the stack's supervisor: Ctrl-C never leaves one half done.",
                     examples=(("opsconductor canary status", ""), ("opsconductor canary set 25", ""),
                               ("opsconductor canary rollback", "")), exit_codes="canary status")
    canary.set_defaults(func=run, interrupted=interrupted)
    actions = canary.add_subparsers(dest="canary_command", required=True, metavar="ACTION")
    for name, function, text, examples in (
            ("status", _status, "per pool: weight, healthy hosts, request rate, success rate, p50/p95/p99",
             [("opsconductor canary status", "over the last minute"),
              ("opsconductor canary status --window 5m -o json", ""),
              ("opsconductor canary status --watch", "redraws every 2 s until Ctrl-C")]),
            ("set", _set, "send PERCENT of calls to the canary (a whole number 0-100)",
             [("opsconductor canary set 25", "a quarter of the calls to the canary, on every gateway"),
              ("opsconductor canary set 25 --kubernetes --namespace opsconductor",
               "in the cluster of kubectl's current context")]),
            ("rollback", _rollback, "send every call to the stable pool at once",
             [("opsconductor canary rollback", ""),
              ("opsconductor canary rollback --kubernetes --context prod", "")]),
            ("promote", _promote, "canary to 100 percent, restart the stable pool on its version, then all-stable",
             [("opsconductor canary promote", ""),
              ("opsconductor canary promote --wait", "after a change in progress"),
              ("opsconductor canary promote --kubernetes", "stable's Deployment takes the canary's image")]),
            ("bypass", _bypass, "restart the canary pool with FEATURE_BYPASS_LLM on or off",
             [("opsconductor canary bypass off", "")]),
            ("rollout", rollout_cli.run, "automated canary analysis by the supervisor: step the share, judge, "
                                         "roll back or promote; status, pause, resume, abort, history",
             [("opsconductor canary rollout", "10, 50, 100 percent, a minute each, followed on a terminal"),
              ("opsconductor canary rollout start --steps 25,100 --interval 120 --no-watch", "hand it over"),
              ("opsconductor canary rollout status", "the running (or last) rollout"),
              ("opsconductor canary rollout abort", "roll back at once"),
              ("opsconductor canary rollout history --plot", "finished rollouts, each with its plot"),
              ("opsconductor canary rollout --dry-run", "the plan and its queries")])):
        action = command(actions, name, help=text, examples=examples)
        action.set_defaults(action=function)
        add_state_dir(action)
        if name == "status":
            stat.add_stat_arguments(action, with_state_dir=False)  # -o among them
        else:
            add_output(action)
        if name == "status":
            action.add_argument("--admin", metavar="URL", help="Envoy admin URL, for a gateway not started by `up`")
        else:
            action.set_defaults(admin=None)
        if name in ("set", "rollback", "promote"):
            kubernetes.add_arguments(action)
        if name in ("set", "rollback"):
            action.add_argument("--runtime-dir", type=Path, metavar="DIR",
                                help="write the weights layer in DIR (its ..data symlink), for gateways not "
                                     "started by `up` that read it")
        if name != "status":
            action.add_argument("--wait", action="store_true",
                                help="if another change is in progress, wait for it instead of giving up "
                                     "(exit code 75)")
        if name == "set":
            action.add_argument("percent", metavar="PERCENT", type=percent)
        if name == "bypass":
            action.add_argument("state", choices=("on", "off"))
        if name == "rollout":
            rollout_cli.add_arguments(action)

