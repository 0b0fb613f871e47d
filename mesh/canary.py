"""`opsconductor canary`: see and change how calls split between the stable and canary pools."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from mesh import control, envoy_admin, rollout
from mesh.stack import STATE_FILE, WEIGHTS_FILE

_PERCENT = re.compile(r"\d{1,3}")


class CanaryError(RuntimeError):
    """A canary command cannot be carried out; the message says why."""


def parse_percent(text: str) -> int:
    """The canary share: an integer 0-100 and nothing else (Envoy would take junk silently)."""
    if not _PERCENT.fullmatch(text.strip()) or int(text) > 100:
        raise CanaryError(f"the canary share must be a whole number from 0 to 100, not {text!r}")
    return int(text)


def _state(state_dir: Path) -> dict:
    try:
        return json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        raise CanaryError(f"no stack is running from {state_dir.resolve()} "
                          "(start one with `opsconductor up`)") from None


def _admin(args: argparse.Namespace) -> envoy_admin.EnvoyAdmin:
    url = args.admin or _state(args.state_dir)["endpoints"]["Envoy admin"]
    return envoy_admin.EnvoyAdmin(url)


def set_share(args: argparse.Namespace, percent: int) -> envoy_admin.Weights:
    """Applies the split at once and keeps it, so a restarted Envoy gets it back."""
    weights = _admin(args).set_weights(100 - percent, percent)
    if not args.admin:
        (args.state_dir / WEIGHTS_FILE).write_text(json.dumps({"stable": weights.stable, "canary": weights.canary}))
    return weights


def run(args: argparse.Namespace) -> int:
    try:
        return args.action(args)
    except (CanaryError, envoy_admin.AdminError, ValueError, RuntimeError) as error:
        print(f"opsconductor canary: {error}", file=sys.stderr)
        return 2 if isinstance(error, (CanaryError, ValueError)) else 1


def _status(args: argparse.Namespace) -> int:
    admin = _admin(args)
    weights, health, calls = admin.weights(), admin.pool_health(), admin.pool_calls()
    print(f"{'pool':8} {'weight':>7} {'healthy hosts':>14} {'calls':>9} {'gRPC errors':>12}")
    for pool in ("stable", "canary"):
        h, c = health.get(pool), calls[pool]
        hosts = f"{h.healthy}/{h.total}" if h else "?"
        print(f"{pool:8} {getattr(weights, pool):>6}% {hosts:>14} {c.total:>9} {c.errors:>12}")
    return 0


def _set(args: argparse.Namespace) -> int:
    weights = set_share(args, parse_percent(args.percent))
    print(f"weights: stable {weights.stable} % / canary {weights.canary} %")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    started = time.monotonic()
    set_share(args, 0)
    print(f"rolled back: every call goes to the stable pool ({(time.monotonic() - started) * 1000:.0f} ms)")
    return 0


def _send(args: argparse.Namespace, command: dict) -> int:
    state = _state(args.state_dir)
    for line in control.send(Path(state["control_socket"]), command):
        print(line, flush=True)
    return 0


def _promote(args: argparse.Namespace) -> int:
    return _send(args, {"op": "promote"})


def _bypass(args: argparse.Namespace) -> int:
    value = "true" if args.state == "on" else "false"
    print(f"restarting the canary pool with FEATURE_BYPASS_LLM={value}, one replica at a time …", flush=True)
    return _send(args, {"op": "restart", "pool": "canary", "env": {"FEATURE_BYPASS_LLM": value}})


def _rollout(args: argparse.Namespace) -> int:
    policy = rollout.policy_from(args)
    if args.dry_run:
        rollout.dry_run(policy)
        return 0
    state = _state(args.state_dir)
    prometheus_url = state["endpoints"].get("Prometheus")
    if not prometheus_url:
        raise CanaryError("the stack runs without Prometheus; canary analysis needs it")

    def promote() -> None:
        for line in control.send(Path(state["control_socket"]), {"op": "promote"}):
            print(line, flush=True)

    promoted, steps = rollout.rollout(prometheus_url, lambda weight: set_share(args, weight), promote,
                                      lambda: set_share(args, 0), policy)
    rollout.print_report(steps, "PROMOTED" if promoted else "FAILED: rolled back to stable")
    return 0 if promoted else 1


def add_parser(commands, state_dir_default: Path) -> argparse.ArgumentParser:
    canary = commands.add_parser("canary", help="canary weights, rollback and promotion",
                                 description="See and change how calls split between the stable and canary pools.")
    canary.set_defaults(func=run)
    actions = canary.add_subparsers(dest="canary_command", required=True, metavar="ACTION")
    for name, function, text in (
            ("status", _status, "weights, healthy hosts, calls and gRPC errors per pool"),
            ("set", _set, "send PERCENT of calls to the canary (a whole number 0-100)"),
            ("rollback", _rollback, "send every call to the stable pool at once"),
            ("promote", _promote, "canary to 100 %, restart the stable pool on its version, then all-stable"),
            ("bypass", _bypass, "restart the canary pool with FEATURE_BYPASS_LLM on or off"),
            ("rollout", _rollout, "automated canary analysis: step the share, judge, roll back or promote")):
        action = actions.add_parser(name, help=text, description=text)
        action.set_defaults(action=function)
        action.add_argument("--state-dir", type=Path, default=state_dir_default, help="state directory of `up`")
        action.add_argument("--admin", metavar="URL", help="Envoy admin URL, for a gateway not started by `up`")
        if name == "set":
            action.add_argument("percent", metavar="PERCENT")
        if name == "bypass":
            action.add_argument("state", choices=("on", "off"))
        if name == "rollout":
            rollout.add_arguments(action)
    return canary
