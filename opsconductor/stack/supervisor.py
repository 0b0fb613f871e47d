"""The local stack behind `opsconductor up`: both pools, Envoy, the page and Prometheus as
child processes, started in order and waited on through their health checks, watched while
they run, changed on command (restart a pool, promote the canary, outage drills), and stopped
gracefully, all of them, whatever happened."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opsconductor.gateway import admin as envoy_admin
from opsconductor.gateway.config import EnvoySettings, render, to_yaml
from opsconductor.gateway.variants import local_settings
from opsconductor.identity import stack as identity
from opsconductor.observability import prometheus_config
from opsconductor.observability.prometheus_config import ScrapeTarget
from opsconductor.stack import state, traces
from opsconductor.stack.ports import check_free, free_replica_ports, replica_ports
from opsconductor.stack.processes import BIN, Child, wait_for
from opsconductor.stack.replica import START_TIMEOUT_S, ServicePair, service_pair
from opsconductor.stack.spec import ROOT, StackSpec, Version
from opsconductor.stack.weights import set_canary_share

_LOGGER = logging.getLogger(__name__)

# Longer than Envoy's outlier-detection sweep (1 s) plus a health-check interval (1 s).
POOL_SETTLE_S = 2.5
RULE_FILES = ROOT / "observability" / "prometheus" / "rules" / "*.yml"


@dataclass
class Replica:
    """One replica of a pool and the version it runs now."""

    pool: str
    index: int
    ports: dict[str, int]
    version: Version
    pair: ServicePair | None = None

    @property
    def name(self) -> str:
        return f"{self.pool}-{self.index + 1}"

    @property
    def automation_addr(self) -> str:
        return f"127.0.0.1:{self.ports['automation']}"


class StartError(RuntimeError):
    """A component did not come up; everything started so far has been stopped."""


class Stack:
    def __init__(self, spec: StackSpec, echo: Callable[[str], None] = print) -> None:
        self.spec = spec
        self.echo = echo
        self.logs = spec.state_dir / "logs"
        self.replicas = [Replica(pool, i, free_replica_ports() if spec.auto_service_ports else replica_ports(pool, i),
                                 spec.version(pool))
                         for pool, count in (("stable", spec.stable_replicas), ("canary", spec.canary_replicas))
                         for i in range(count)]
        self.children: dict[str, Child] = {}
        self.endpoints: dict[str, str] = {}
        self._expected_down: set[str] = set()
        self._lock = threading.RLock()  # components change under the control thread too
        self.ready = False  # set once every component serves and the control socket listens
        self.admin = envoy_admin.EnvoyAdmin(f"http://127.0.0.1:{spec.ports.envoy_admin}")
        self.identity: identity.MeshIdentity | None = None  # the mesh's certificates, once issued
        self.tls = identity.effective_tls(spec.tls, (spec.stable.source, spec.canary.source), echo)

    # --- start ---------------------------------------------------------------------------------

    def required_ports(self) -> dict[str, int]:
        ports = {"gateway": self.spec.ports.gateway, "Envoy admin": self.spec.ports.envoy_admin,
                 "Envoy stats": self.spec.ports.envoy_stats}
        if self.page_available():
            ports["page"] = self.spec.ports.page
        if self.prometheus_binary():
            ports["Prometheus"] = self.spec.ports.prometheus
        ports.update(traces.required_ports(self.spec.traces, self.spec.ports))
        for replica in self.replicas:
            ports.update({f"{replica.name} {use}": port for use, port in replica.ports.items()})
        return ports

    def start(self) -> None:
        """Starts every component in order; on any failure stops them all and raises StartError."""
        check_free(self.required_ports())
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            self.identity = identity.start_identity(self.spec.state_dir, self.tls)
            if self.spec.traces.local_store:
                self._start_trace_store()
            for replica in self.replicas:
                self._start_replica(replica, replica.version)
            self._start_envoy()
            if self.page_available():
                self._start_page()
            else:
                self.echo("page: web_client/dist is not built (run `npm ci && npm run build` in web_client); "
                          "starting without it")
            if self.prometheus_binary():
                self._start_prometheus()
            else:
                self.echo("prometheus: not installed; starting without it. Install it with "
                          "`apt-get install --no-install-recommends prometheus` (or `make setup`).")
        except Exception as error:
            self.stop()
            raise StartError(str(error)) from None
        self.write_state()

    def _child(self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> Child:
        child = Child(name, argv, env, self.logs / f"{name}.log", cwd=cwd).start()
        with self._lock:
            self.children[name] = child
        return child

    def _start_replica(self, replica: Replica, version: Version) -> None:
        pair = service_pair(
            self.logs, replica.name, pool=replica.pool, ports=replica.ports, command=version.command,
            cwd=version.source, env={"SERVICE_VERSION": version.version, "LOG_LEVEL": self.spec.log_level,
                                     "PYTHONPATH": str(version.source),
                                     **traces.service_env(self.spec.traces, self.spec.ports),
                                     **self.spec.service_env, **version.env},
            # Every port of the stack, so the tools never reach the gateway, admin, metrics,
            # Prometheus or the trace collector.
            pipeline_env={"INSTANCE_NAME": f"{replica.name}-pipeline",
                          "MESH_PORTS": ",".join(map(str, sorted({
                              *self.required_ports().values(), *traces.mesh_ports(self.spec.traces)}))),
                          **identity.service_env(self.identity, self.tls, replica.pool, "pipeline")},
            automation_env={"INSTANCE_NAME": f"{replica.name}-automation",
                            **identity.service_env(self.identity, self.tls, replica.pool, "automation")})
        for child, start in ((pair.pipeline, pair.start_pipeline), (pair.automation, pair.start_automation)):
            with self._lock:
                self.children[child.name] = child
            start()
        replica.version, replica.pair = version, pair

    def envoy_settings(self) -> EnvoySettings:
        ports = self.spec.ports
        hosts = {pool: tuple(("127.0.0.1", r.ports["automation"]) for r in self.replicas if r.pool == pool)
                 for pool in ("stable", "canary")}
        return local_settings(
            stable_hosts=hosts["stable"], canary_hosts=hosts["canary"], listen_port=ports.gateway,
            admin_port=ports.envoy_admin, stats_port=ports.envoy_stats,
            cors_origins=(f"http://127.0.0.1:{ports.page}", f"http://localhost:{ports.page}"),
            access_log_path=str(self.logs / "envoy-access.log"),
            tracing=traces.envoy_tracing(self.spec.traces, ports),
            **identity.envoy_overrides(self.identity, self.tls, self.spec.state_dir), **self.spec.envoy_overrides)

    def _start_envoy(self) -> None:
        config = self.spec.state_dir / "envoy.yaml"
        config.write_text(to_yaml(render(self.envoy_settings())))
        envoy = self._child("envoy", [str(BIN / "envoy"), "-c", str(config), "--disable-hot-restart",
                                      "--concurrency", "1", "--log-level", "warning",
                                      # access-log lines reach the file within a second, not ten
                                      "--file-flush-interval-msec", "1000"], {})

        def ready() -> bool:
            if not envoy.running():
                raise RuntimeError(f"envoy exited with code {envoy.popen.returncode}:\n{envoy.log_tail()}")
            try:
                health = self.admin.pool_health()
            except envoy_admin.AdminError:
                return False
            return all(health.get(pool) and health[pool].healthy == health[pool].total for pool in ("stable", "canary"))

        wait_for(ready, START_TIMEOUT_S, "Envoy to see every pool healthy")
        saved = state.read_weights(self.spec.state_dir)
        if saved is not None:
            self.admin.set_weights(saved.stable, saved.canary)
            self.echo(f"envoy: re-applied saved weights stable {saved.stable} / canary {saved.canary}")
        self.endpoints[state.GATEWAY] = f"127.0.0.1:{self.spec.ports.gateway}"
        self.endpoints[state.ENVOY_ADMIN] = f"http://127.0.0.1:{self.spec.ports.envoy_admin}"
        scheme = "https" if self.tls.mesh else "http"  # mTLS: Prometheus's or the operator's certificate
        self.endpoints[state.ENVOY_STATS] = f"{scheme}://127.0.0.1:{self.spec.ports.envoy_stats}/stats/prometheus"

    def _start_trace_store(self) -> None:
        self.endpoints[state.TRACES] = traces.start_store(self._child, self.spec.ports, self.spec.state_dir,
                                                          START_TIMEOUT_S)

    def page_available(self) -> bool:
        return self.spec.with_page and (ROOT / "web_client" / "dist" / "index.html").exists()

    def _start_page(self) -> None:
        url = f"http://127.0.0.1:{self.spec.ports.page}"
        # The mesh view reads Prometheus (started after the page, on a port known now) and the
        # state file a running rollout keeps.
        prometheus = f"http://127.0.0.1:{self.spec.ports.prometheus}" if self.prometheus_binary() else ""
        page = self._child("page", [sys.executable, "-m", "services", "page", "--directory",
                                    str(ROOT / "web_client" / "dist"), "--addr", f"127.0.0.1:{self.spec.ports.page}",
                                    "--gateway-url", self.gateway_url(),
                                    "--prometheus-url", prometheus,
                                    "--rollout-file", str(self.spec.state_dir.resolve() / state.ROLLOUT_FILE),
                                    *traces.page_args(self.spec.traces, self.spec.ports)],
                           {}, cwd=ROOT)
        wait_for(lambda: _http_ok(f"{url}/healthz", page), START_TIMEOUT_S, "the page server")
        self.endpoints[state.PAGE] = url

    def gateway_url(self) -> str:
        """The gateway as a browser calls it (https when the edge speaks TLS)."""
        scheme = "https" if self.tls.edge else "http"
        return f"{scheme}://127.0.0.1:{self.spec.ports.gateway}"

    def prometheus_binary(self) -> str | None:
        return shutil.which("prometheus") if self.spec.with_prometheus else None

    def _start_prometheus(self) -> None:
        config = self.spec.state_dir / "prometheus.yml"
        targets = [ScrapeTarget("envoy", "", "gateway", f"127.0.0.1:{self.spec.ports.envoy_stats}")]
        for replica in self.replicas:
            for service in ("automation", "pipeline"):
                targets.append(ScrapeTarget(service, replica.pool, f"{replica.name}-{service}",
                                            f"127.0.0.1:{replica.ports[service + '_metrics']}"))
        prometheus_config.write_config(config, targets, scrape_interval=self.spec.scrape_interval_s,
                                       rule_files=(str(RULE_FILES),),
                                       tls=identity.prometheus_tls(self.identity, self.tls))
        storage = self.spec.state_dir / "prometheus-data"
        url = f"http://127.0.0.1:{self.spec.ports.prometheus}"
        prometheus = self._child("prometheus", [
            self.prometheus_binary(), f"--config.file={config}", f"--storage.tsdb.path={storage}",
            f"--web.listen-address=127.0.0.1:{self.spec.ports.prometheus}", "--enable-feature=exemplar-storage",
            "--web.enable-lifecycle", "--log.level=warn"], {})
        wait_for(lambda: _http_ok(f"{url}/-/ready", prometheus), START_TIMEOUT_S, "Prometheus")
        self.endpoints[state.PROMETHEUS] = url

    # --- run -----------------------------------------------------------------------------------

    def watch(self, stop: threading.Event) -> str | None:
        """Returns None when `stop` is set, or a report of the component that crashed."""
        while not stop.wait(0.2):
            with self._lock:
                for name, child in self.children.items():
                    if name not in self._expected_down and not child.running():
                        return (f"{name} crashed (exit code {child.popen.returncode}); its last lines:\n"
                                f"{child.log_tail(15)}")
        return None

    def stop(self) -> None:
        """Stops every child, newest first, gracefully (SIGTERM, then SIGKILL after a grace)."""
        with self._lock:
            self._expected_down.update(self.children)
            for name, child in reversed(list(self.children.items())):
                code = child.stop(signal.SIGTERM, timeout=20)
                _LOGGER.info("stopped %s (exit code %s)", name, code)
            if self.identity is not None:
                self.identity.stop()

    # --- changes while running -------------------------------------------------------------------

    def handle(self, command: dict, say: Callable[[str], None]) -> None:
        """A control command (from `opsconductor canary`, outage drills and tests)."""
        op = command.get("op")
        if op == "restart":
            pool = command["pool"]
            self.restart_pool(pool, self.current_version(pool).with_env(**command.get("env", {})), say)
        elif op == "promote":
            self.promote(say)
        elif op == "stop":
            self.stop_components(command["components"])
        elif op == "start":
            self.start_components(command["components"])
        elif op == "rotate":
            if self.identity is None:
                raise ValueError("this stack runs without certificates")
            say(f"renewed {', '.join(self.identity.rotate())}; picked up without a restart")
        else:
            raise ValueError(f"unknown command {op!r}")

    def current_version(self, pool: str) -> Version:
        return next((r.version for r in self.replicas if r.pool == pool), self.spec.version(pool))

    def promote(self, say: Callable[[str], None]) -> None:
        """Canary to 100 %, the stable pool restarted on the canary's version, then all-stable."""
        canary = self.current_version("canary")
        set_canary_share(self.admin, self.spec.state_dir, 100)
        say("canary takes 100 % while the stable pool restarts on its version")
        self.restart_pool("stable", Version(canary.source, canary.version, dict(canary.env)), say)
        set_canary_share(self.admin, self.spec.state_dir, 0)
        say("stable now runs the canary's version and takes 100 % again")

    def restart_pool(self, pool: str, version: Version, progress: Callable[[str], None]) -> None:
        """Restarts a pool's replicas on `version`, one at a time; Envoy drains each around it."""
        for replica in [r for r in self.replicas if r.pool == pool]:
            names = [f"{replica.name}-automation", f"{replica.name}-pipeline"]
            with self._lock:
                self._expected_down.update(names)
                if replica.pair is not None:
                    replica.pair.stop()
            self._start_replica(replica, version)
            with self._lock:
                self._expected_down.difference_update(names)
            self._wait_pool_settled(pool, f"Envoy to take {replica.name} back")
            progress(f"{replica.name} restarted on version {version.version or '(working tree)'}")
        self.write_state()

    def _wait_pool_settled(self, pool: str, what: str) -> None:
        """Waits until every host of `pool` has been healthy in Envoy's eyes for POOL_SETTLE_S.
        Healthy once is not enough: connection failures while a replica was down can still get
        it ejected by outlier detection at the next sweep, and traffic would go elsewhere."""
        healthy_since: list[float] = []

        def settled() -> bool:
            health = self.admin.pool_health()[pool]
            if health.healthy != health.total:
                healthy_since.clear()
                return False
            if not healthy_since:
                healthy_since.append(time.monotonic())
            return time.monotonic() - healthy_since[0] >= POOL_SETTLE_S

        wait_for(settled, START_TIMEOUT_S, what, interval=0.1)

    def stop_components(self, names: list[str]) -> None:
        """Stops service processes on purpose (outage drills): no crash is reported for them."""
        with self._lock:
            # The trace store too: a drill of a collector outage, which no call may notice.
            unknown = [name for name in names if name not in self.children
                       or not (name.startswith(("stable-", "canary-")) or name == traces.STORE)]
            if unknown:
                raise ValueError(f"no such service process: {', '.join(unknown)}")
            self._expected_down.update(names)
            for name in names:
                self.children[name].stop(signal.SIGTERM, timeout=20)

    def start_components(self, names: list[str]) -> None:
        """Starts stopped service processes again as they were, and waits for their health."""
        for name in names:
            with self._lock:
                if self.children[name].running():
                    continue
            if name == traces.STORE:
                self._start_trace_store()
                with self._lock:
                    self._expected_down.discard(name)
                continue
            replica = next(r for r in self.replicas if name.startswith(r.name + "-"))
            if name.endswith("-pipeline"):
                replica.pair.start_pipeline()
            else:
                replica.pair.start_automation()
            with self._lock:
                self._expected_down.discard(name)
        self.write_state()

    def mark_ready(self) -> None:
        self.ready = True
        self.write_state()

    def write_state(self) -> None:
        """What `status`, `down` and `canary` read: PIDs, addresses and versions."""
        self.snapshot().write(self.spec.state_dir)

    def snapshot(self) -> state.StackState:
        with self._lock:
            return state.StackState(
                supervisor_pid=os.getpid(),
                ports=vars(self.spec.ports).copy(),
                endpoints=dict(self.endpoints),
                components={name: state.ComponentState(child.pid, str(child.log_path))
                            for name, child in self.children.items()},
                replicas=[state.ReplicaState(
                    name=r.name, pool=r.pool, automation=r.automation_addr,
                    pipeline=f"127.0.0.1:{r.ports['pipeline']}",
                    automation_metrics=f"127.0.0.1:{r.ports['automation_metrics']}",
                    pipeline_metrics=f"127.0.0.1:{r.ports['pipeline_metrics']}",
                    version=r.version.version, source=str(r.version.source),
                    automation_health=f"127.0.0.1:{r.ports['automation_health']}",
                    pipeline_health=f"127.0.0.1:{r.ports['pipeline_health']}") for r in self.replicas],
                control_socket=str(self.spec.state_dir / state.CONTROL_SOCKET),
                ready=self.ready, tls=self.tls.mesh, gateway_tls=self.tls.edge,
            )


def _http_ok(url: str, child: Child) -> bool:
    if not child.running():
        raise RuntimeError(f"{child.name} exited with code {child.popen.returncode}:\n{child.log_tail()}")
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False
