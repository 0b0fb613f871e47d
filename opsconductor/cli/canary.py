"""`opsconductor canary status|set|rollback|promote|bypass|rollout`: see and change how calls
split between the stable and canary pools of a running stack."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from opsconductor.cli import stat
from opsconductor.cli.arguments import add_state_dir
from opsconductor.gateway.admin import AdminError, EnvoyAdmin, Weights
from opsconductor.observability import prometheus
from opsconductor.release import rollout
from opsconductor.release.analysis import CanaryCriteria
from opsconductor.stack import control, state
from opsconductor.stack.weights import set_canary_share

_PERCENT = re.compile(r"\d{1,3}")


class CanaryError(RuntimeError):
    """A canary command cannot be carried out; the message says why."""


def parse_percent(text: str) -> int:
    """The canary share: an integer 0-100 and nothing else (Envoy would take junk silently)."""
    if not _PERCENT.fullmatch(text.strip()) or int(text) > 100:
        raise CanaryError(f"the canary share must be a whole number from 0 to 100, not {text!r}")
    return int(text)


def _stack(args: argparse.Namespace) -> state.StackState:
    try:
        return state.load(args.state_dir)
    except state.NoStack as error:
        raise CanaryError(str(error)) from None


def _admin(args: argparse.Namespace) -> EnvoyAdmin:
    return EnvoyAdmin(args.admin or _stack(args).endpoint(state.ENVOY_ADMIN))


def _set_share(args: argparse.Namespace, percent: int) -> Weights:
    """Applies the split at once; a stack started by `up` keeps it for its next start."""
    return set_canary_share(_admin(args), None if args.admin else args.state_dir, percent)


def run(args: argparse.Namespace) -> int:
    try:
        return args.action(args)
    except (CanaryError, AdminError, ValueError, RuntimeError) as error:
        print(f"opsconductor canary: {error}", file=sys.stderr)
        return 2 if isinstance(error, (CanaryError, ValueError)) else 1


def _status(args: argparse.Namespace) -> int:
    """`stat` under the name canary users know: one implementation, two entry points."""
    return stat.show(args)


def _set(args: argparse.Namespace) -> int:
    weights = _set_share(args, parse_percent(args.percent))
    print(f"weights: stable {weights.stable} % / canary {weights.canary} %")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    started = time.monotonic()
    _set_share(args, 0)
    print(f"rolled back: every call goes to the stable pool ({(time.monotonic() - started) * 1000:.0f} ms)")
    return 0


def _send(args: argparse.Namespace, command: dict) -> int:
    for line in control.send(Path(_stack(args).control_socket), command):
        print(line, flush=True)
    return 0


def _promote(args: argparse.Namespace) -> int:
    return _send(args, {"op": "promote"})


def _bypass(args: argparse.Namespace) -> int:
    value = "true" if args.state == "on" else "false"
    print(f"restarting the canary pool with FEATURE_BYPASS_LLM={value}, one replica at a time …", flush=True)
    return _send(args, {"op": "restart", "pool": "canary", "env": {"FEATURE_BYPASS_LLM": value}})


def _policy(args: argparse.Namespace) -> rollout.Policy:
    return rollout.Policy(steps=rollout.parse_steps(args.steps), interval_s=args.interval,
                          hold_timeout_s=args.hold_timeout, criteria=CanaryCriteria(min_calls=args.min_calls))


def _rollout(args: argparse.Namespace) -> int:
    policy = _policy(args)
    if args.dry_run:
        print(rollout.plan(policy))
        return 0
    stack = _stack(args)
    prometheus_url = stack.endpoint(state.PROMETHEUS)
    if not prometheus_url:
        raise CanaryError("the stack runs without Prometheus; canary analysis needs it")
    actions = rollout.Actions(set_weight=lambda weight: _set_share(args, weight),
                              promote=lambda: _send(args, {"op": "promote"}),
                              rollback=lambda: _set_share(args, 0))
    # The mesh view shows the rollout from this record, kept in the state directory.
    started, seen = time.time(), []

    def observe(steps: list[rollout.Step], outcome: str | None = None) -> None:
        seen[:] = steps
        state.write_rollout(args.state_dir, rollout.record(policy, steps, started, outcome))

    try:
        promoted, steps = rollout.rollout(lambda expr: prometheus.scalar(prometheus_url, expr), actions, policy,
                                          echo=lambda line: print(line, flush=True), observe=observe)
    except BaseException:
        observe(seen, "interrupted")
        raise
    observe(steps, "promoted" if promoted else "rolled back")
    print(rollout.report(steps, "PROMOTED" if promoted else "FAILED: rolled back to stable"))
    return 0 if promoted else 1


def _add_rollout_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", default="10,50,100", help="canary shares in order (default 10,50,100)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds per step (default 60)")
    parser.add_argument("--min-calls", type=int, default=50, help="canary calls needed to judge a step")
    parser.add_argument("--hold-timeout", type=float, default=300.0, help="seconds a step may hold for traffic")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the queries, change nothing")


def add_parsers(commands) -> None:
    canary = commands.add_parser("canary", help="canary weights, rollback and promotion",
                                 description="See and change how calls split between the stable and canary pools.")
    canary.set_defaults(func=run)
    actions = canary.add_subparsers(dest="canary_command", required=True, metavar="ACTION")
    for name, function, text in (
            ("status", _status, "per pool: weight, healthy hosts, request rate, success rate, p50/p95/p99"),
            ("set", _set, "send PERCENT of calls to the canary (a whole number 0-100)"),
            ("rollback", _rollback, "send every call to the stable pool at once"),
            ("promote", _promote, "canary to 100 %, restart the stable pool on its version, then all-stable"),
            ("bypass", _bypass, "restart the canary pool with FEATURE_BYPASS_LLM on or off"),
            ("rollout", _rollout, "automated canary analysis: step the share, judge, roll back or promote")):
        action = actions.add_parser(name, help=text, description=text)
        action.set_defaults(action=function)
        add_state_dir(action)
        action.add_argument("--admin", metavar="URL", help="Envoy admin URL, for a gateway not started by `up`")
        if name == "status":
            stat.add_stat_arguments(action, with_state_dir=False)
        if name == "set":
            action.add_argument("percent", metavar="PERCENT")
        if name == "bypass":
            action.add_argument("state", choices=("on", "off"))
        if name == "rollout":
            _add_rollout_arguments(action)
