"""`opsconductor stat`: the golden metrics of the running mesh per pool (or per replica), the
way `linkerd viz stat` shows them; `canary status` is the same command under its old name."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from opsconductor.cli import exits
from opsconductor.cli.arguments import add_state_dir, state_dir
from opsconductor.cli.output import add_output
from opsconductor.cli.parsing import command, full_name, seconds, window
from opsconductor.gateway.admin import EnvoyAdmin
from opsconductor.identity import operator
from opsconductor.observability import golden, prometheus, scraped
from opsconductor.stack import state, weights
from services.common.names import POOLS

_CLEAR = "\x1b[H\x1b[J"  # cursor home, clear to the end of the screen


def add_stat_arguments(parser: argparse.ArgumentParser, with_state_dir: bool = True) -> None:
    if with_state_dir:
        add_state_dir(parser)
        parser.add_argument("--admin", metavar="URL", help="Envoy admin URL, for a gateway not started by `up`")
    parser.add_argument("--window", type=window, default="1m",
                        help="span the figures cover, e.g. 30s, 1m, 1h (default 1m)")
    parser.add_argument("--replicas", action="store_true", help="one line per replica instead of per pool")
    parser.add_argument("--watch", action="store_true", help="keep reading; redraws in place on a terminal")
    parser.add_argument("--interval", type=seconds, default=2.0, metavar="S",
                        help="seconds between readings with --watch (default 2)")
    parser.add_argument("--source", choices=("auto", "prometheus", "metrics"), default="auto",
                        help="auto (default): Prometheus when the stack runs one, else each process's /metrics")
    parser.add_argument("--prometheus", metavar="URL", help="a Prometheus not started by `up`")
    add_output(parser)


class StatError(RuntimeError):
    """The command cannot run as asked; the message says why, `code` is the exit code."""

    def __init__(self, message: str, code: int = exits.USAGE) -> None:
        super().__init__(message)
        self.code = code


def _stack(args: argparse.Namespace) -> state.StackState | None:
    try:
        return state.load(state_dir(args))
    except state.NoStack as error:
        if args.admin:
            return None
        raise StatError(str(error), exits.NO_STACK) from None


def _replicas(stack: state.StackState | None, state_dir: Path) -> list[golden.Replica]:
    if stack is None:
        return []
    return [golden.Replica(r.name, r.pool, r.automation, operator.metrics_url(state_dir, r.automation_metrics),
                           r.component("automation")) for r in stack.replicas]


def _ready(prometheus_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{prometheus_url}/-/ready", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _source(args: argparse.Namespace, stack: state.StackState | None,
            replicas: list[golden.Replica]) -> tuple[golden.PrometheusSource | golden.MetricsSource | golden.NoFigures,
                                                     list[str]]:
    url = args.prometheus or (stack.endpoint(state.PROMETHEUS) if stack else "")
    if args.source == "prometheus" or (args.source == "auto" and url and _ready(url)):
        if not url:
            raise StatError("the stack runs without Prometheus (use --source metrics)")
        return golden.PrometheusSource(url), []
    if not replicas:
        # A gateway not started by `up` (--admin): its weights and hosts, and no figures.
        return golden.NoFigures("no Prometheus (--prometheus URL) and no stack whose /metrics to read"), []
    fell_back = url and args.source == "auto"
    notes = [f"Prometheus at {url} is not answering: reading each process's /metrics"] if fell_back else []
    # With mTLS the pages answer only known scrapers: read them as the operator.
    context = operator.ssl_context(state_dir(args))
    return golden.MetricsSource(replicas, take=lambda targets: scraped.take(
        targets, read=lambda url: prometheus.scrape(url, context=context))), notes


def show(args: argparse.Namespace) -> int:
    """Prints one report, or one every --interval with --watch until Ctrl-C (which the command
    runner answers with its one line and exit code 130)."""
    try:
        stack = _stack(args)
        admin_url = args.admin or (stack.endpoint(state.ENVOY_ADMIN) if stack else "")
        admin = EnvoyAdmin(admin_url, timeout=3.0) if admin_url else None
        replicas = _replicas(stack, state_dir(args))
        source, notes = _source(args, stack, replicas)
    except StatError as error:
        print(f"opsconductor {full_name(args)}: {error}", file=sys.stderr)
        return error.code

    def reading() -> golden.Report:
        made = golden.report(source, admin, POOLS, replicas, args.window, per_replica=args.replicas)
        made.problems[:0] = notes
        if stack is not None and not args.admin:
            made.gateways = weights.applied(weights.gateway_admins(stack))
            if weights.disagreement(made.gateways):
                made.problems.append(weights.disagreement(made.gateways))
        return made

    if not args.watch:
        made = reading()
        _print(args, made, redraw=False)
        # Nothing at all could be read: the gateway and every figure's source failed.
        blind = made.problems and all(row.state == "unknown" and row.weight is None for row in made.rows)
        return exits.UNREACHABLE if blind else exits.OK
    redraw = sys.stdout.isatty() and args.output != "json"
    while True:
        _print(args, reading(), redraw)
        time.sleep(args.interval)  # the refresh pace the user asked for


def _print(args: argparse.Namespace, made: golden.Report, redraw: bool) -> None:
    if args.output == "json":
        # One JSON document per reading: one line each with --watch, so a pipe can read them.
        print(json.dumps(made.to_json(), indent=None if args.watch else 2), flush=True)
        return
    text = golden.table(made)
    sys.stdout.write(_CLEAR + text + "\n" if redraw else text + ("\n\n" if args.watch else "\n"))
    sys.stdout.flush()


def add_parsers(commands) -> None:
    parser = command(commands, "stat", help="golden metrics per pool or replica (rate, success, latency)",
                     description="The golden metrics of the running mesh per pool (or per replica), the way "
                                 "`linkerd viz stat` shows them; `canary status` is the same command.",
                     examples=(("opsconductor stat", "per pool, over the last minute"),
                               ("opsconductor stat --replicas --window 5m", ""),
                               ("opsconductor stat --watch", "redraws in place every 2 s until Ctrl-C"),
                               ("opsconductor stat -o json", "for scripts")))
    add_stat_arguments(parser)
    parser.set_defaults(func=show)
