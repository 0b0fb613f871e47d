"""`opsconductor up`, `status` and `down`: run the whole mesh on this machine, no Docker."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from opsconductor.cli.arguments import add_state_dir
from opsconductor.cli.tls_arguments import add_tls_arguments, tls_spec_from_args
from opsconductor.gateway.admin import AdminError, EnvoyAdmin
from opsconductor.gateway.settings import DEFAULT_SAMPLE_PERCENT, JwtSettings
from opsconductor.stack import lifecycle, state, traces
from opsconductor.stack.ports import MAX_REPLICAS, Ports, PortTaken
from opsconductor.stack.spec import NotACheckout, StackSpec, version_of
from opsconductor.stack.supervisor import Stack, StartError


def add_parsers(commands) -> None:
    up = commands.add_parser("up", help="run the whole mesh: both pools, Envoy, the page, Prometheus",
                             description="Run both pools, Envoy, the page and Prometheus on this machine. "
                                         "Ctrl-C stops everything.")
    up.add_argument("--detach", action="store_true", help="keep running in the background (see status, down)")
    up.add_argument("--stable-replicas", type=int, default=1, metavar="N", help="stable replicas (default 1)")
    up.add_argument("--canary-replicas", type=int, default=1, metavar="N", help="canary replicas (default 1)")
    up.add_argument("--canary-source", type=Path, metavar="DIR",
                    help="run the canary pool from another checkout (e.g. a git worktree of a release)")
    up.add_argument("--stable-source", type=Path, metavar="DIR", help="run the stable pool from another checkout")
    up.add_argument("--canary-env", action="append", default=[], metavar="KEY=VALUE",
                    help="extra environment of the canary pool (default FEATURE_BYPASS_LLM=true)")
    for name, default in vars(Ports()).items():
        up.add_argument(f"--{name.replace('_', '-')}-port", dest=f"port_{name}", type=int, default=default,
                        metavar="PORT", help=f"default {default}")
    up.add_argument("--service-ports", choices=("table", "auto"), default="table",
                    help="'auto' gives the services free ports instead of the documented table")
    up.add_argument("--scrape-interval", type=float, default=15.0, metavar="S", help="Prometheus scrape interval")
    up.add_argument("--jwt-jwks", type=Path, metavar="FILE",
                    help="require a bearer token (JWT) on AutomationService calls, checked against this JWKS file")
    up.add_argument("--jwt-issuer", default="opsconductor", help="the token's required issuer (with --jwt-jwks)")
    up.add_argument("--jwt-audience", action="append", metavar="AUD",
                    help="an accepted audience (with --jwt-jwks; repeatable; default opsconductor-mesh)")
    up.add_argument("--rate-limit", type=int, metavar="PER_S", help="gateway rate limit, calls per second")
    up.add_argument("--trace-sample", default=str(DEFAULT_SAMPLE_PERCENT), metavar="PCT",
                    help=f"percentage of calls the gateway traces when the caller did not decide (default "
                         f"{DEFAULT_SAMPLE_PERCENT:g}; a traceparent's sampled flag always wins); 'off': no spans")
    up.add_argument("--otlp-endpoint", metavar="URL",
                    help="send spans to this OTLP/gRPC receiver (http://HOST:4317, e.g. an OpenTelemetry "
                         "Collector) instead of the embedded trace store")
    add_tls_arguments(up)
    up.add_argument("--no-prometheus", action="store_true", help="do not start Prometheus")
    up.add_argument("--no-page", action="store_true", help="do not serve the Exec Sandbox page")
    up.add_argument("--quiet", action="store_true", help="do not stream the components' logs")
    up.set_defaults(func=run_up)
    for command, function, text in (("status", run_status, "show the health of a detached stack"),
                                    ("down", run_down, "stop a detached stack")):
        parser = commands.add_parser(command, help=text, description=text)
        parser.set_defaults(func=function)
        add_state_dir(parser)
    add_state_dir(up)


class UsageError(ValueError):
    """A flag value `up` cannot run with."""


def spec_from_args(args: argparse.Namespace) -> StackSpec:
    if not 1 <= args.stable_replicas <= MAX_REPLICAS or not 1 <= args.canary_replicas <= MAX_REPLICAS:
        raise UsageError(f"replicas must be between 1 and {MAX_REPLICAS}")
    canary_env = {"FEATURE_BYPASS_LLM": "true"}
    for item in args.canary_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--canary-env takes KEY=VALUE, not {item!r}")
        canary_env[key] = value
    ports = Ports(**{name: getattr(args, f"port_{name}") for name in vars(Ports())})
    envoy: dict[str, object] = {}
    if args.jwt_jwks:
        if not args.jwt_jwks.is_file():
            raise UsageError(f"--jwt-jwks {args.jwt_jwks} is not a file")
        envoy["jwt"] = JwtSettings(issuer=args.jwt_issuer, audiences=tuple(args.jwt_audience or ["opsconductor-mesh"]),
                                   jwks_path=str(args.jwt_jwks.resolve()))
    if args.rate_limit:
        envoy["rate_limit_per_s"] = args.rate_limit
    return StackSpec(state_dir=args.state_dir.resolve(), ports=ports, stable_replicas=args.stable_replicas,
                     traces=_trace_spec(args),
                     canary_replicas=args.canary_replicas, stable=version_of(args.stable_source, {}),
                     canary=version_of(args.canary_source, canary_env), scrape_interval_s=args.scrape_interval,
                     with_prometheus=not args.no_prometheus, with_page=not args.no_page,
                     auto_service_ports=args.service_ports == "auto", envoy_overrides=envoy,
                     tls=tls_spec_from_args(args))


def _trace_spec(args: argparse.Namespace) -> traces.TraceSpec:
    if args.trace_sample.strip().lower() == "off":
        percent = None
    else:
        try:
            percent = float(args.trace_sample)
        except ValueError:
            percent = -1.0
        if not 0 <= percent <= 100:
            raise UsageError(f"--trace-sample takes a percentage 0-100 or 'off', not {args.trace_sample!r}")
    if args.otlp_endpoint:
        try:
            traces.parse_endpoint(args.otlp_endpoint)
        except traces.BadEndpoint as error:
            raise UsageError(str(error)) from None
    return traces.TraceSpec(sample_percent=percent, otlp_endpoint=args.otlp_endpoint or "")


def run_up(args: argparse.Namespace) -> int:
    try:
        spec = spec_from_args(args)
    except (UsageError, NotACheckout, ValueError) as error:
        print(f"opsconductor up: {error}", file=sys.stderr)
        return 2
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        lifecycle.check_not_running(spec.state_dir)
    except lifecycle.AlreadyRunning as error:
        print(f"opsconductor up: {error}", file=sys.stderr)
        return 1
    if args.detach:
        try:
            pid, stack_state = lifecycle.start_detached(sys.argv[1:], spec)
        except RuntimeError as error:
            print(f"opsconductor up: {error}", file=sys.stderr)
            return 1
        _print_endpoints(stack_state.labelled_endpoints())
        print(f"running in the background (pid {pid}); `opsconductor status`, `opsconductor down`")
        return 0
    stack = Stack(spec)
    print(f"starting the mesh (state in {spec.state_dir}) …", flush=True)
    try:
        stack.start()
    except (PortTaken, StartError) as error:
        print(f"opsconductor up: {error}", file=sys.stderr)
        return 1
    _print_endpoints(stack.snapshot().labelled_endpoints())
    crash = lifecycle.run_foreground(stack, args.quiet, echo=lambda line: print(line, flush=True))
    if crash:
        print(f"opsconductor up: {crash}", file=sys.stderr)
        return 1
    print("stopped; no process left behind", flush=True)
    return 0


def _print_endpoints(rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print("\nthe mesh is up:")
    for name, address in rows:
        print(f"  {name:<{width}}  {address}")
    print(flush=True)


def run_status(args: argparse.Namespace) -> int:
    stack_state = state.StackState.read(args.state_dir)
    if not lifecycle.supervisor_alive(stack_state):
        print(f"no stack is running from {args.state_dir.resolve()}")
        return 1
    rows = lifecycle.component_health(stack_state)
    width = max(len(row.name) for row in rows)
    for row in rows:
        print(f"  {row.name:<{width}}  pid {row.pid:<7}  {'healthy' if row.healthy else 'NOT HEALTHY'}")
    healthy = all(row.healthy for row in rows)
    try:
        weights = EnvoyAdmin(stack_state.endpoint(state.ENVOY_ADMIN)).weights()
        print(f"\nweights: stable {weights.stable} % / canary {weights.canary} %")
    except AdminError as error:
        print(f"\nweights unknown: {error}")
        healthy = False
    return 0 if healthy else 1


def run_down(args: argparse.Namespace) -> int:
    if not lifecycle.stop(args.state_dir):
        print(f"no stack is running from {args.state_dir.resolve()}")
        return 0
    print("the mesh is stopped")
    return 0
