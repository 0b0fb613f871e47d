"""`opsconductor up`: run the whole mesh on this machine, no Docker, supervised: a component
that exits is restarted (with backoff, until it crash-loops), and nothing outlives `up`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from opsconductor.cli import exits
from opsconductor.cli.arguments import add_state_dir, state_dir
from opsconductor.cli.parsing import command, count, existing_dir, existing_file, non_negative_count, port, seconds
from opsconductor.cli.tls_arguments import add_tls_arguments, tls_spec_from_args
from opsconductor.gateway.settings import DEFAULT_SAMPLE_PERCENT, JwtSettings
from opsconductor.stack import lifecycle, traces
from opsconductor.stack.components import RestartPolicy
from opsconductor.stack.console import Console
from opsconductor.stack.ports import (MAX_GATEWAY_REPLICAS, MAX_REPLICAS, REPLICA_PORT_NAMES, Ports, base_port_flag,
                                      gateway_base_flag, port_flag)
from opsconductor.stack.spec import NotACheckout, StackSpec, version_of
from services.common.logs import LOG_FORMATS
from services.common.names import POOLS

EXAMPLES = (
    ("opsconductor up", "everything in the foreground; Ctrl-C stops it"),
    ("opsconductor up --detach", "in the background (then status, down)"),
    ("opsconductor up --gateway-port 4000 --stable-base-port 21000", "other ports"),
    ("opsconductor up --gateway-replicas 2", "two Envoys that split calls alike"),
    ("opsconductor up --canary-source ../opsconductor-v0.2.0", "canary a real new version"),
    ("opsconductor up --log-format json | jq .", "JSON log lines"),
    ("opsconductor up --trace-sample 100", "trace every call (default 1 %)"),
    ("opsconductor up --otlp-endpoint http://127.0.0.1:4317", "spans to your own collector, no trace store"),
)


def add_parsers(commands) -> None:
    up = command(commands, "up", help="run the whole mesh: both pools, Envoy, the page, Prometheus, the trace store",
                 description="Run both pools, Envoy, the page, Prometheus and the trace store on this machine, "
                             "supervised: a component that exits is restarted with backoff; Ctrl-C stops everything.",
                 examples=EXAMPLES)
    up.add_argument("--detach", action="store_true", help="keep running in the background (see status, down)")
    up.add_argument("--stable-replicas", type=count, default=1, metavar="N", help="stable replicas (default 1)")
    up.add_argument("--canary-replicas", type=count, default=1, metavar="N", help="canary replicas (default 1)")
    up.add_argument("--gateway-replicas", type=count, default=1, metavar="N",
                    help=f"Envoys sharing one weights layer, each on its own ports (default 1, at most "
                         f"{MAX_GATEWAY_REPLICAS})")
    up.add_argument(gateway_base_flag(), dest="gateway_base_port", type=port, metavar="PORT",
                    help="gateway replicas 2 … N listen on the 3×(N-1) ports from PORT (default: the port table)")
    up.add_argument("--canary-source", type=existing_dir, metavar="DIR",
                    help="run the canary pool from another checkout (e.g. a git worktree of a release)")
    up.add_argument("--stable-source", type=existing_dir, metavar="DIR",
                    help="run the stable pool from another checkout")
    up.add_argument("--canary-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment of the canary pool (default FEATURE_BYPASS_LLM=true)")
    for name, default in vars(Ports()).items():
        up.add_argument(port_flag(name), dest=f"port_{name}", type=port, default=default, metavar="PORT",
                        help=f"default {default}")
    for pool in POOLS:
        up.add_argument(base_port_flag(pool), dest=f"base_port_{pool}", type=port, metavar="PORT",
                        help=f"the {pool} pool's N replicas listen on the {len(REPLICA_PORT_NAMES)}×N ports from "
                             "PORT (default: the port table in docs/ARCHITECTURE.md)")
    up.add_argument("--service-ports", choices=("table", "auto"), default="table",
                    help="'auto' gives the services free ports instead of the documented table")
    up.add_argument("--scrape-interval", type=seconds, default=15.0, metavar="S", help="Prometheus scrape interval")
    up.add_argument("--restart-backoff", type=seconds, default=0.5, metavar="S",
                    help="delay before restarting a component that exited; doubles each time, up to 30 s "
                         "(default 0.5)")
    up.add_argument("--crash-loop-limit", type=non_negative_count, default=5, metavar="N",
                    help="failures in a row after which a component is left down (default 5); the stack stops "
                         "if it is the gateway")
    up.add_argument("--jwt-jwks", type=existing_file, metavar="FILE",
                    help="require a bearer token (JWT) on AutomationService calls, checked against this JWKS file")
    up.add_argument("--jwt-issuer", default="opsconductor", help="the token's required issuer (with --jwt-jwks)")
    up.add_argument("--jwt-audience", action="append", metavar="AUD",
                    help="an accepted audience (with --jwt-jwks; repeatable; default opsconductor-mesh)")
    up.add_argument("--rate-limit", type=count, metavar="PER_S", help="gateway rate limit, calls per second")
    up.add_argument("--trace-sample", type=sample_percent, default=DEFAULT_SAMPLE_PERCENT, metavar="PCT",
                    help=f"percentage of calls the gateway traces when the caller did not decide (default "
                         f"{DEFAULT_SAMPLE_PERCENT:g}; a traceparent's sampled flag always wins); 'off': no spans")
    up.add_argument("--otlp-endpoint", type=otlp_endpoint, metavar="URL",
                    help="send spans to this OTLP/gRPC receiver (http://HOST:4317, e.g. an OpenTelemetry "
                         "Collector) instead of the embedded trace store")
    add_tls_arguments(up)
    up.add_argument("--no-prometheus", action="store_true", help="do not start Prometheus")
    up.add_argument("--no-page", action="store_true", help="do not serve the Exec Sandbox page")
    up.add_argument("--quiet", action="store_true", help="do not stream the components' logs")
    up.add_argument("--log-format", choices=LOG_FORMATS, default="auto",
                    help="auto (default): readable and coloured on a terminal (NO_COLOR turns colour off), "
                         "JSON lines otherwise")
    up.add_argument("-o", "--output", choices=("table", "json"), default="table",
                    help="with --detach: the endpoints as a table (default) or JSON")
    add_state_dir(up)
    up.set_defaults(func=run_up)


class UsageError(ValueError):
    """A flag value `up` cannot run with."""


def spec_from_args(args: argparse.Namespace) -> StackSpec:
    if args.stable_replicas > MAX_REPLICAS or args.canary_replicas > MAX_REPLICAS:
        raise UsageError(f"replicas must be between 1 and {MAX_REPLICAS}")
    if args.gateway_replicas > MAX_GATEWAY_REPLICAS:
        raise UsageError(f"--gateway-replicas must be between 1 and {MAX_GATEWAY_REPLICAS}")
    canary_env = {"FEATURE_BYPASS_LLM": "true"}
    for item in args.canary_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--canary-env takes KEY=VALUE, not {item!r}")
        canary_env[key] = value
    ports = Ports(**{name: getattr(args, f"port_{name}") for name in vars(Ports())})
    envoy: dict[str, object] = {}
    if args.jwt_jwks:
        envoy["jwt"] = JwtSettings(issuer=args.jwt_issuer, audiences=tuple(args.jwt_audience or ["opsconductor-mesh"]),
                                   jwks_path=str(args.jwt_jwks.resolve()))
    if args.rate_limit:
        envoy["rate_limit_per_s"] = args.rate_limit
    base_ports = {pool: getattr(args, f"base_port_{pool}") for pool in POOLS
                  if getattr(args, f"base_port_{pool}") is not None}
    try:
        return StackSpec(state_dir=state_dir(args).resolve(), ports=ports, stable_replicas=args.stable_replicas,
                         canary_replicas=args.canary_replicas, stable=version_of(args.stable_source, {}),
                         canary=version_of(args.canary_source, canary_env), scrape_interval_s=args.scrape_interval,
                         with_prometheus=not args.no_prometheus, with_page=not args.no_page,
                         auto_service_ports=args.service_ports == "auto", envoy_overrides=envoy,
                         base_ports=base_ports, gateway_replicas=args.gateway_replicas,
                         gateway_base_port=args.gateway_base_port,
                         restart=RestartPolicy(backoff_s=args.restart_backoff,
                                               max_backoff_s=max(30.0, args.restart_backoff),
                                               crash_loop_limit=args.crash_loop_limit),
                         traces=traces.TraceSpec(sample_percent=args.trace_sample,
                                                 otlp_endpoint=args.otlp_endpoint or ""),
                         tls=tls_spec_from_args(args))
    except NotACheckout:
        raise
    except ValueError as error:  # ports out of range or used twice, TLS flags that do not go together
        raise UsageError(str(error)) from None


def sample_percent(text: str) -> float | None:
    """--trace-sample: a percentage 0-100, or 'off' (no spans at all)."""
    if text.strip().lower() == "off":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:  # NaN fails too
        raise argparse.ArgumentTypeError(f"takes a percentage 0-100 or 'off', not {text[:20]!r}")
    return value


def otlp_endpoint(text: str) -> str:
    try:
        traces.parse_endpoint(text)
    except traces.BadEndpoint as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--otlp-endpoint ")) from None
    return text


def run_up(args: argparse.Namespace) -> int:
    try:
        spec = spec_from_args(args)
    except (UsageError, NotACheckout, ValueError) as error:
        print(f"opsconductor up: {error}", file=sys.stderr)
        return exits.USAGE
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        lifecycle.check_not_running(spec.state_dir)
    except lifecycle.AlreadyRunning as error:
        print(f"opsconductor up: {error}", file=sys.stderr)
        return exits.FAILED
    if args.detach:
        return _detach(args, spec)
    console = Console(sys.stdout, args.log_format)
    code = lifecycle.run(spec, console, quiet=args.quiet)
    if console.broken:  # the terminal went away: nothing may fail at exit for want of it
        _silence()
    return code


def _detach(args: argparse.Namespace, spec: StackSpec) -> int:
    argv = [*args.argv, "--state-dir", str(spec.state_dir)]
    if "--log-format" not in argv:
        argv += ["--log-format", "json"]
    try:
        pid, stack_state = lifecycle.start_detached(argv, spec)
    except RuntimeError as error:
        print(f"opsconductor up: {error}", file=sys.stderr)
        return exits.FAILED
    except KeyboardInterrupt:
        print("opsconductor up: interrupted while the stack was starting: it was stopped, nothing is left running",
              file=sys.stderr)
        return exits.INTERRUPTED
    rows = stack_state.labelled_endpoints()
    if args.output == "json":
        print(json.dumps({"supervisor_pid": pid, "state_dir": str(spec.state_dir), "endpoints": dict(rows)}, indent=2))
        return exits.OK
    width = max(len(name) for name, _ in rows)
    print("\nthe mesh is up:")
    for name, address in rows:
        print(f"  {name:<{width}}  {address}")
    print(f"\nrunning in the background (pid {pid}); `opsconductor status`, `opsconductor down`", flush=True)
    return exits.OK


def _silence() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)

