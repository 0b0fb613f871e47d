"""The Envoy gateway as a real process in front of running pools, for integration tests."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from opsconductor.gateway import runtime
from opsconductor.gateway.admin import AdminError, EnvoyAdmin, Weights, validate_weights
from opsconductor.gateway.config import render, to_yaml
from opsconductor.gateway.settings import EnvoySettings
from opsconductor.stack.weights import wait_applied
from tests.support.procs import BIN, Process, free_port, wait_held


@dataclass
class Gateway:
    process: Process
    settings: EnvoySettings
    admin: EnvoyAdmin

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.settings.listen_port}"

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.stats_port}"

    @property
    def access_log(self) -> Path:
        return Path(self.settings.access_log_path)

    def wait_pools_healthy(self, healthy: dict[str, int], timeout: float = 30.0, hold_s: float = 0.0) -> None:
        """Waits until Envoy's health checks see exactly `healthy` hosts per pool (for `hold_s` in
        a row: a check sent before the hosts recovered can still mark one down)."""
        def reached() -> bool:
            if not self.process.running():
                raise RuntimeError(f"envoy exited:\n{self.process.log_tail()}")
            try:
                counts = {pool: h.healthy for pool, h in self.admin.pool_health().items()}
            except AdminError:
                return False
            return all(counts.get(pool) == n for pool, n in healthy.items())

        wait_held(reached, hold_s, timeout, f"envoy to see healthy hosts {healthy}")

    @property
    def runtime_dir(self) -> Path:
        return Path(self.settings.runtime_dir)

    def set_weights(self, stable: object, canary: object, mirror: object = 0) -> Weights:
        """Publishes the split (and the share mirrored to the canary) to the weights layer this
        gateway reads; returns once it applies it."""
        weights = validate_weights(stable, canary, mirror)
        runtime.publish(self.runtime_dir, weights)
        wait_applied([self.admin], weights)
        return weights

    def stop(self) -> None:
        self.process.stop()


def start_gateway(log_dir: Path, stable: tuple[str, ...], canary: tuple[str, ...],
                  name: str = "envoy", healthy: dict[str, int] | None = None, **overrides: object) -> Gateway:
    """Envoy on free loopback ports in front of automation targets ("host:port"); returns
    once the admin answers and every pool host (or `healthy` hosts per pool) passed its health check."""
    def hosts(targets: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
        return tuple((t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in targets)

    settings = replace(EnvoySettings(
        stable_hosts=hosts(stable), canary_hosts=hosts(canary),
        listen_port=free_port(), admin_port=free_port(), stats_port=free_port(),
        access_log_path=str(log_dir / f"{name}-access.log"), runtime_dir=str(log_dir / f"{name}-runtime"),
    ), **overrides)
    Path(settings.runtime_dir).mkdir(parents=True, exist_ok=True)
    config = log_dir / f"{name}.yaml"
    config.write_text(to_yaml(render(settings)))
    # --disable-hot-restart: several Envoys (and a developer's own) share the machine.
    # Access log lines are written within a second (Envoy's default buffers them for 10 s).
    process = Process(name, [str(BIN / "envoy"), "-c", str(config), "--disable-hot-restart",
                             "--concurrency", "1", "--log-level", "warn",
                             "--file-flush-interval-msec", "1000"], {},
                      log_dir / f"{name}.log").start()
    gateway = Gateway(process, settings, EnvoyAdmin(f"http://127.0.0.1:{settings.admin_port}"))
    try:
        gateway.wait_pools_healthy(healthy if healthy is not None else {"stable": len(stable), "canary": len(canary)})
    except BaseException:
        gateway.stop()
        raise
    return gateway
