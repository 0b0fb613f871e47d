"""`opsconductor up`, `status` and `down`: run the whole mesh on this machine, no Docker."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from pathlib import Path

import psutil

from mesh import control, envoy_admin
from mesh.envoy_settings import JwtSettings
from mesh.ports import Ports, PortTaken
from mesh.processes import health_status, SERVING
from mesh.stack import (AUTOMATION, PIPELINE, ROOT, STATE_FILE, Stack, StackSpec, StartError, Version,
                        with_version)

DEFAULT_STATE_DIR = Path(os.environ.get("OPSCONDUCTOR_STATE_DIR", ".opsconductor"))


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
    up.add_argument("--no-prometheus", action="store_true", help="do not start Prometheus")
    up.add_argument("--no-page", action="store_true", help="do not serve the Exec Sandbox page")
    up.add_argument("--quiet", action="store_true", help="do not stream the components' logs")
    up.set_defaults(func=run_up)
    for command, function, text in (("status", run_status, "show the health of a detached stack"),
                                    ("down", run_down, "stop a detached stack")):
        parser = commands.add_parser(command, help=text, description=text)
        parser.set_defaults(func=function)
    for parser in commands.choices.values():
        if parser.get_default("func") in (run_up, run_status, run_down):
            parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                                help=f"state directory (OPSCONDUCTOR_STATE_DIR, default {DEFAULT_STATE_DIR})")


def _version(source: Path | None, env: dict[str, str]) -> Version:
    if source is None:
        return Version(ROOT, "", env)
    source = source.resolve()
    pyproject = source / "pyproject.toml"
    if not (source / "mesh" / "cli.py").exists() or not pyproject.exists():
        raise SystemExit(f"opsconductor up: {source} is not an OpsConductor Mesh checkout")
    return Version(source, tomllib.loads(pyproject.read_text())["project"]["version"], env)


def spec_from_args(args: argparse.Namespace) -> StackSpec:
    canary_env = {"FEATURE_BYPASS_LLM": "true"}
    for item in args.canary_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"opsconductor up: --canary-env takes KEY=VALUE, not {item!r}")
        canary_env[key] = value
    ports = Ports(**{name: getattr(args, f"port_{name}") for name in vars(Ports())})
    envoy: dict[str, object] = {}
    if args.jwt_jwks:
        if not args.jwt_jwks.is_file():
            raise SystemExit(f"opsconductor up: --jwt-jwks {args.jwt_jwks} is not a file")
        envoy["jwt"] = JwtSettings(issuer=args.jwt_issuer, audiences=tuple(args.jwt_audience or ["opsconductor-mesh"]),
                                   jwks_path=str(args.jwt_jwks.resolve()))
    if args.rate_limit:
        envoy["rate_limit_per_s"] = args.rate_limit
    return StackSpec(state_dir=args.state_dir.resolve(), ports=ports, stable_replicas=args.stable_replicas,
                     canary_replicas=args.canary_replicas, stable=_version(args.stable_source, {}),
                     canary=_version(args.canary_source, canary_env), scrape_interval_s=args.scrape_interval,
                     with_prometheus=not args.no_prometheus, with_page=not args.no_page,
                     auto_service_ports=args.service_ports == "auto", envoy_overrides=envoy)


def run_up(args: argparse.Namespace) -> int:
    if not 1 <= args.stable_replicas <= 20 or not 1 <= args.canary_replicas <= 20:
        print("opsconductor up: replicas must be between 1 and 20", file=sys.stderr)
        return 2
    spec = spec_from_args(args)
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    if _supervisor_alive(spec.state_dir):
        print(f"opsconductor up: a stack is already running from {spec.state_dir} (see `opsconductor status`)",
              file=sys.stderr)
        return 1
    if args.detach:
        return _detach(args, spec)
    stack = Stack(spec)
    print(f"starting the mesh (state in {spec.state_dir}) …", flush=True)
    try:
        stack.start()
    except (PortTaken, StartError) as error:
        print(f"opsconductor up: {error}", file=sys.stderr)
        return 1
    _print_endpoints(stack.endpoints)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    listener = control.serve(spec.state_dir / "control.sock", lambda command, say: _handle(stack, command, say))
    if not args.quiet:
        threading.Thread(target=_stream_logs, args=(stack, stop), daemon=True).start()
    _mark_ready(spec.state_dir)
    crash = stack.watch(stop)
    listener.close()
    print("stopping the mesh …", flush=True)
    stack.stop()
    (spec.state_dir / STATE_FILE).unlink(missing_ok=True)
    if crash:
        print(f"opsconductor up: {crash}", file=sys.stderr)
        return 1
    print("stopped; no process left behind", flush=True)
    return 0


def _handle(stack: Stack, command: dict, say) -> None:
    """Control commands: from `opsconductor canary`, and stop/start of service processes for
    outage drills and tests."""
    if command["op"] == "restart":
        pool = command["pool"]
        base = stack.spec.canary if pool == "canary" else stack.spec.stable
        current = next(r.version for r in stack.replicas if r.pool == pool) if stack.replicas else base
        stack.restart_pool(pool, with_version(current, **command.get("env", {})), say)
    elif command["op"] == "promote":
        canary = next(r.version for r in stack.replicas if r.pool == "canary")
        weights = stack.admin.set_weights(0, 100)
        stack.save_weights(weights)
        say("canary takes 100 % while the stable pool restarts on its version")
        stack.restart_pool("stable", Version(canary.source, canary.version,
                                             {k: v for k, v in canary.env.items()}), say)
        stack.save_weights(stack.admin.set_weights(100, 0))
        say("stable now runs the canary's version and takes 100 % again")
    elif command["op"] == "stop":
        stack.stop_components(command["components"])
    elif command["op"] == "start":
        stack.start_components(command["components"])
    else:
        raise ValueError(f"unknown command {command['op']!r}")


def _mark_ready(state_dir: Path) -> None:
    path = state_dir / STATE_FILE
    state = json.loads(path.read_text())
    state["ready"] = True
    path.write_text(json.dumps(state, indent=2))


def _detach(args: argparse.Namespace, spec: StackSpec) -> int:
    argv = [a for a in sys.argv[1:] if a != "--detach"]
    if "--quiet" not in argv:
        argv.append("--quiet")
    log = spec.state_dir / "up.log"
    with open(log, "ab") as out:
        child = subprocess.Popen([sys.executable, "-m", "mesh.cli", *argv], stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True, cwd=os.getcwd())
    state_path = spec.state_dir / STATE_FILE
    while True:
        if child.poll() is not None:
            print(f"opsconductor up: the stack did not start:\n{log.read_text(errors='replace')[-3000:]}",
                  file=sys.stderr)
            return 1
        try:
            state = json.loads(state_path.read_text())
            if state.get("ready") and state.get("supervisor_pid") == child.pid:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    _print_endpoints(state["endpoints"])
    print(f"running in the background (pid {child.pid}); `opsconductor status`, `opsconductor down`")
    return 0


def _print_endpoints(endpoints: dict[str, str]) -> None:
    width = max(len(name) for name in endpoints)
    print("\nthe mesh is up:")
    for name, address in endpoints.items():
        print(f"  {name:<{width}}  {address}")
    print(flush=True)


def _stream_logs(stack: Stack, stop: threading.Event) -> None:
    """Prints every component's new log lines, prefixed by its name."""
    offsets: dict[Path, int] = {}
    while not stop.wait(0.2):
        for path in sorted(stack.logs.glob("*.log")):
            if path.name == "envoy-access.log":
                continue
            with open(path, "rb") as log:
                log.seek(offsets.get(path, 0))
                data = log.read()
            complete = data.rfind(b"\n") + 1
            offsets[path] = offsets.get(path, 0) + complete
            for line in data[:complete].decode(errors="replace").splitlines():
                print(f"{path.stem:>22} | {line}", flush=True)


def _load_state(state_dir: Path) -> dict | None:
    try:
        return json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _supervisor_alive(state_dir: Path) -> bool:
    state = _load_state(state_dir)
    return bool(state) and psutil.pid_exists(state["supervisor_pid"])


def run_status(args: argparse.Namespace) -> int:
    state = _load_state(args.state_dir)
    if state is None or not psutil.pid_exists(state["supervisor_pid"]):
        print(f"no stack is running from {args.state_dir.resolve()}")
        return 1
    rows, healthy = [], True
    for name, info in state["components"].items():
        ok = psutil.pid_exists(info["pid"]) and _component_ok(name, state)
        healthy &= ok
        rows.append((name, info["pid"], "healthy" if ok else "NOT HEALTHY"))
    width = max(len(row[0]) for row in rows)
    for name, pid, verdict in rows:
        print(f"  {name:<{width}}  pid {pid:<7}  {verdict}")
    try:
        admin = envoy_admin.EnvoyAdmin(state["endpoints"]["Envoy admin"])
        weights = admin.weights()
        print(f"\nweights: stable {weights.stable} % / canary {weights.canary} %")
    except (KeyError, envoy_admin.AdminError) as error:
        print(f"\nweights unknown: {error}")
        healthy = False
    return 0 if healthy else 1


def _component_ok(name: str, state: dict) -> bool:
    replica = next((r for r in state["replicas"] if name.startswith(r["name"] + "-")), None)
    if replica is not None:
        automation = name.endswith("-automation")
        target, service = (replica["automation"], AUTOMATION) if automation else (replica["pipeline"], PIPELINE)
        return health_status(target, service) == SERVING
    url = {"envoy": state["endpoints"].get("Envoy admin", "") + "/ready",
           "page": state["endpoints"].get("Exec Sandbox page", "") + "/healthz",
           "prometheus": state["endpoints"].get("Prometheus", "") + "/-/ready"}.get(name)
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def run_down(args: argparse.Namespace) -> int:
    state = _load_state(args.state_dir)
    if state is None:
        print(f"no stack is running from {args.state_dir.resolve()}")
        return 0
    pid = state["supervisor_pid"]
    if psutil.pid_exists(pid):
        os.kill(pid, signal.SIGTERM)
        try:
            psutil.Process(pid).wait(90)
        except psutil.NoSuchProcess:
            pass
    # Whatever the supervisor could not stop (it crashed, say) is stopped here.
    for info in state["components"].values():
        try:
            child = psutil.Process(info["pid"])
            child.terminate()
            child.wait(20)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            child.kill()
    (args.state_dir / STATE_FILE).unlink(missing_ok=True)
    print("the mesh is stopped")
    return 0
