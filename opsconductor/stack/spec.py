"""What `opsconductor up` is asked to run: the stack spec, and the version each pool runs."""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from opsconductor.identity.spec import TlsSpec
from opsconductor.stack.components import RestartPolicy
from opsconductor.stack.ports import Ports, check_layout, gateway_ports, replica_ports
from opsconductor.stack.traces import TraceSpec

ROOT = Path(__file__).resolve().parents[2]


class NotACheckout(ValueError):
    """A --stable-source or --canary-source directory is not a checkout of this project."""


@dataclass(frozen=True)
class Version:
    """What a pool runs: a checkout of the code, its version and extra environment."""

    source: Path
    version: str
    env: dict[str, str] = field(default_factory=dict)

    def command(self, service: str) -> list[str]:
        """The checkout's own entry point for `service`: `-m` with the checkout as working
        directory imports its code first. Releases before the services had `python -m
        services` ran them through their CLI (`mesh.cli`)."""
        if (self.source / "services" / "__main__.py").exists():
            return [sys.executable, "-m", "services", service]
        return [sys.executable, "-m", "mesh.cli", service]

    def listeners(self, ports: Mapping[str, int]) -> dict[str, int]:
        """The replica listeners of `ports` this checkout's services open: releases before the
        plaintext health-only ports (services/common/transport.py) open no *_health port, and
        are read for readiness on their gRPC port instead."""
        if (self.source / "services" / "common" / "transport.py").exists():
            return dict(ports)
        return {name: port for name, port in ports.items() if not name.endswith("_health")}

    def with_env(self, **env: str) -> Version:
        return replace(self, env={**self.env, **env})


def version_of(source: Path | None, env: dict[str, str]) -> Version:
    """This checkout (no source) or another one, with the version its pyproject.toml names."""
    if source is None:
        return Version(ROOT, "", env)
    source = source.resolve()
    pyproject = source / "pyproject.toml"
    if not pyproject.exists() or not (source / "services").is_dir():
        raise NotACheckout(f"{source} is not an OpsConductor Mesh checkout")
    return Version(source, tomllib.loads(pyproject.read_text())["project"]["version"], env)


@dataclass(frozen=True)
class StackSpec:
    """Everything `up` was asked for."""

    state_dir: Path
    ports: Ports = Ports()
    stable_replicas: int = 1
    canary_replicas: int = 1
    stable: Version = Version(ROOT, "")
    canary: Version = Version(ROOT, "", {"FEATURE_BYPASS_LLM": "true"})
    scrape_interval_s: float = 15.0
    with_prometheus: bool = True
    with_page: bool = True
    envoy_overrides: dict[str, object] = field(default_factory=dict)
    service_env: dict[str, str] = field(default_factory=dict)  # for every service process of both pools
    log_level: str = "INFO"
    auto_service_ports: bool = False  # free ports for the services instead of the port table
    base_ports: dict[str, int] = field(default_factory=dict)  # pool -> its replicas' first port
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    traces: TraceSpec = TraceSpec()  # sampling, and the local store or a real backend
    tls: TlsSpec = TlsSpec()  # mTLS inside the mesh (on), TLS at the edge (off)
    gateway_replicas: int = 1  # Envoys sharing the weights layer, each on its own ports
    gateway_base_port: int | None = None  # where replicas 1 … N-1 listen, instead of the table

    def __post_init__(self) -> None:
        gateways = [self.gateway_ports(i) for i in range(self.gateway_replicas)]
        check_layout(self.ports, {} if self.auto_service_ports else {
            pool: [self.replica_ports(pool, i) for i in range(self.replicas(pool))] for pool in ("stable", "canary")},
            gateways)

    def gateway_ports(self, index: int) -> dict[str, int]:
        """Gateway replica `index`'s listener, admin and stats ports (opsconductor/stack/ports.py)."""
        return gateway_ports(self.ports, index, self.gateway_base_port, self.gateway_replicas)

    def version(self, pool: str) -> Version:
        return self.stable if pool == "stable" else self.canary

    def replicas(self, pool: str) -> int:
        return self.stable_replicas if pool == "stable" else self.canary_replicas

    def replica_ports(self, pool: str, index: int) -> dict[str, int]:
        """Replica `index`'s ports: from the pool's base port when one was given, else the table."""
        return replica_ports(pool, index, self.base_ports.get(pool), self.replicas(pool))
