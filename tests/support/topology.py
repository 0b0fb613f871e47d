"""A mesh built by the test itself: service pairs per pool behind a real Envoy. Unlike
`opsconductor up`, nothing supervises it, so a test may SIGKILL any process and restart it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tests.support.gateway import Gateway, start_gateway
from tests.support.procs import Process
from opsconductor.stack.replica import ServicePair, service_pair
from services.common.names import AUTOMATION_SERVICE


@dataclass
class Topology:
    """Pools of service pairs and the gateway in front of them."""

    log_dir: Path
    pools: dict[str, list[ServicePair]]
    gateway: Gateway | None = None
    extra_gateways: list[Gateway] = field(default_factory=list)

    @property
    def stable(self) -> list[ServicePair]:
        return self.pools["stable"]

    @property
    def canary(self) -> list[ServicePair]:
        return self.pools["canary"]

    def pairs(self) -> list[ServicePair]:
        return [pair for pairs in self.pools.values() for pair in pairs]

    def services(self) -> list[Process]:
        return [process for pair in self.pairs() for process in (pair.pipeline, pair.automation)]

    def targets(self, pool: str) -> tuple[str, ...]:
        return tuple(pair.automation_target for pair in self.pools[pool])

    def add_gateway(self, name: str, **overrides: object) -> Gateway:
        """Another Envoy over the same pools (stopped with the topology)."""
        gateway = start_gateway(self.log_dir, self.targets("stable"), self.targets("canary"),
                                name=name, **overrides)
        self.extra_gateways.append(gateway)
        return gateway

    def heal(self) -> None:
        """Restarts whatever a test stopped or killed, and waits until Envoy has seen every host
        healthy for longer than one health check takes to overturn it."""
        restarted = False
        for pair in self.pairs():
            if not pair.pipeline.running():
                pair.start_pipeline()
                restarted = True
            if not pair.automation.running():
                pair.start_automation()
                restarted = True
            # An automation whose pipeline came back is ready again only once it has seen that.
            pair.automation.wait_healthy(pair.health_target("automation"), AUTOMATION_SERVICE, 30)
        if self.gateway is not None:
            self.gateway.set_weights(90, 10)
            hold_s = 1.5 * self.gateway.settings.health_check_interval_s if restarted else 0.0
            self.gateway.wait_pools_healthy({pool: len(pairs) for pool, pairs in self.pools.items()}, hold_s=hold_s)

    def stop(self) -> None:
        """Stops every process by PID: gateways first, so no call lands on a stopping service."""
        for gateway in [*self.extra_gateways, *([self.gateway] if self.gateway else [])]:
            gateway.stop()
        for pair in self.pairs():
            pair.stop()


def start_topology(log_dir: Path, *, stable: int = 1, canary: int = 1, gateway: bool = True,
                   service_env: dict[str, str] | None = None, **gateway_overrides: object) -> Topology:
    """Starts `stable` and `canary` pairs and, unless told not to, Envoy in front of them;
    everything started so far is stopped again when a start fails."""
    topology = Topology(log_dir, {"stable": [], "canary": []})
    env = service_env or {}
    try:
        for pool, count in (("stable", stable), ("canary", canary)):
            for index in range(count):
                pair = service_pair(log_dir, pool=pool, name=f"{pool}-{index + 1}", env=env)
                topology.pools[pool].append(pair)
                pair.start()
        if gateway:
            topology.gateway = start_gateway(log_dir, topology.targets("stable"),
                                             topology.targets("canary"), **gateway_overrides)
    except BaseException:
        topology.stop()
        raise
    return topology
