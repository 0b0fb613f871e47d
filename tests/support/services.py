"""A pipeline + automation pair as real processes, for integration tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import BIN, Process, free_port

AUTOMATION_SERVICE = "opsconductor.automation.v1.AutomationService"
PIPELINE_SERVICE = "opsconductor.pipeline.v1.PipelineService"


@dataclass
class ServicePair:
    pipeline: Process
    automation: Process
    pipeline_target: str
    automation_target: str
    pipeline_metrics: str
    automation_metrics: str

    def start_pipeline(self) -> None:
        self.pipeline.start()
        self.pipeline.wait_healthy(self.pipeline_target, PIPELINE_SERVICE)

    def start(self) -> ServicePair:
        self.start_pipeline()
        self.automation.start()
        self.automation.wait_healthy(self.automation_target, AUTOMATION_SERVICE)
        return self

    def stop(self) -> None:
        self.automation.stop()
        self.pipeline.stop()


def service_pair(log_dir: Path, *, pool: str = "stable", pipeline_env: Mapping[str, str] = {},
                 automation_env: Mapping[str, str] = {}, name: str = "") -> ServicePair:
    """Processes configured on fresh ports; call start() (and stop() in teardown)."""
    pipeline_target = f"127.0.0.1:{free_port()}"
    automation_target = f"127.0.0.1:{free_port()}"
    pipeline_metrics = f"127.0.0.1:{free_port()}"
    automation_metrics = f"127.0.0.1:{free_port()}"
    prefix = f"{name}-" if name else ""
    pipeline = Process(f"{prefix}pipeline", [str(BIN / "opsconductor"), "pipeline"], {
        "PIPELINE_GRPC_ADDR": pipeline_target, "PIPELINE_METRICS_ADDR": pipeline_metrics, "POOL": pool,
        "SHUTDOWN_GRACE_S": "10", **pipeline_env}, log_dir / f"{prefix}pipeline.log")
    automation = Process(f"{prefix}automation", [str(BIN / "opsconductor"), "automation"], {
        "AUTOMATION_GRPC_ADDR": automation_target, "AUTOMATION_METRICS_ADDR": automation_metrics,
        "PIPELINE_TARGET": pipeline_target, "POOL": pool, "SHUTDOWN_GRACE_S": "10", **automation_env},
        log_dir / f"{prefix}automation.log")
    return ServicePair(pipeline, automation, pipeline_target, automation_target, pipeline_metrics, automation_metrics)
