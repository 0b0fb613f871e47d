"""One replica's processes: a pipeline and the automation service that calls it, started in
that order and each waited on through its readiness check. `up`, the benchmark and the tests
all start service pairs through `service_pair`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from opsconductor.stack.ports import free_replica_ports
from opsconductor.stack.processes import Child
from services.common.names import AUTOMATION_SERVICE, PIPELINE_SERVICE

START_TIMEOUT_S = 60


def default_command(service: str) -> list[str]:
    """This checkout's services, as the container runs them."""
    return [sys.executable, "-m", "services", service]


class ReplicaAddresses:
    """Where a replica's services listen on loopback, from its `ports` by listener name."""

    ports: dict[str, int]

    @property
    def automation_target(self) -> str:
        return f"127.0.0.1:{self.ports['automation']}"

    @property
    def pipeline_target(self) -> str:
        return f"127.0.0.1:{self.ports['pipeline']}"

    @property
    def automation_metrics(self) -> str:
        return f"127.0.0.1:{self.ports['automation_metrics']}"

    @property
    def pipeline_metrics(self) -> str:
        return f"127.0.0.1:{self.ports['pipeline_metrics']}"


@dataclass
class ServicePair(ReplicaAddresses):
    """A pipeline and the automation service in front of it, on loopback."""

    name: str  # prefix of both process names, e.g. "stable-1"
    pool: str
    ports: dict[str, int]  # automation, automation_metrics, pipeline, pipeline_metrics, *_health
    pipeline: Child
    automation: Child

    def health_target(self, service: str) -> str:
        """Where `service`'s health is read: its plaintext health port when it has one."""
        return f"127.0.0.1:{self.ports.get(f'{service}_health') or self.ports[service]}"

    def start_pipeline(self, timeout: float = START_TIMEOUT_S) -> None:
        self.pipeline.start()
        self.pipeline.wait_healthy(self.health_target("pipeline"), PIPELINE_SERVICE, timeout)

    def start_automation(self, timeout: float = START_TIMEOUT_S) -> None:
        self.automation.start()
        self.automation.wait_healthy(self.health_target("automation"), AUTOMATION_SERVICE, timeout)

    def start(self, timeout: float = START_TIMEOUT_S) -> ServicePair:
        """Both processes, pipeline first (the automation is ready only once its pipeline is)."""
        self.start_pipeline(timeout)
        self.start_automation(timeout)
        return self

    def stop(self, timeout: float = 20) -> None:
        """Automation first: it drains its calls before the pipeline goes."""
        self.automation.stop(timeout=timeout)
        self.pipeline.stop(timeout=timeout)


def service_processes(name: str, *, pool: str, ports: Mapping[str, int],
                      command: Callable[[str], list[str]] = default_command, env: Mapping[str, str] | None = None,
                      pipeline_env: Mapping[str, str] | None = None,
                      automation_env: Mapping[str, str] | None = None) -> dict[str, tuple[list[str], dict[str, str]]]:
    """argv and environment of a replica's pipeline and automation processes, keyed by
    "pipeline" and "automation". `env` goes to both, `pipeline_env` and `automation_env` to one each."""
    common = {"POOL": pool, **(env or {})}
    return {
        "pipeline": (command("pipeline"), {
            **common, "PIPELINE_GRPC_ADDR": f"127.0.0.1:{ports['pipeline']}",
            "PIPELINE_METRICS_ADDR": f"127.0.0.1:{ports['pipeline_metrics']}", **_health_env(ports, "pipeline"),
            **(pipeline_env or {})}),
        "automation": (command("automation"), {
            **common, "AUTOMATION_GRPC_ADDR": f"127.0.0.1:{ports['automation']}",
            "AUTOMATION_METRICS_ADDR": f"127.0.0.1:{ports['automation_metrics']}",
            "PIPELINE_TARGET": f"127.0.0.1:{ports['pipeline']}", **_health_env(ports, "automation"),
            **(automation_env or {})}),
    }


def _health_env(ports: Mapping[str, int], service: str) -> dict[str, str]:
    port = ports.get(f"{service}_health")
    return {f"{service.upper()}_HEALTH_ADDR": f"127.0.0.1:{port}"} if port else {}


def service_pair(log_dir: Path, name: str = "", *, pool: str = "stable", ports: Mapping[str, int] | None = None,
                 command: Callable[[str], list[str]] = default_command, cwd: Path | None = None,
                 env: Mapping[str, str] | None = None, pipeline_env: Mapping[str, str] | None = None,
                 automation_env: Mapping[str, str] | None = None) -> ServicePair:
    """A pair configured on `ports` (free ones by default), not started yet."""
    ports = dict(ports or free_replica_ports())
    prefix = f"{name}-" if name else ""
    processes = service_processes(name, pool=pool, ports=ports, command=command, env=env, pipeline_env=pipeline_env,
                                  automation_env=automation_env)
    pipeline, automation = (Child(f"{prefix}{service}", argv, service_env, log_dir / f"{prefix}{service}.log", cwd=cwd)
                            for service, (argv, service_env) in processes.items())
    return ServicePair(name, pool, ports, pipeline, automation)
