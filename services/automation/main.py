"""Entry point of the automation service: `opsconductor automation`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from opsconductor.automation.v1 import automation_pb2, automation_pb2_grpc
from services.automation.metrics import ExecuteMetrics
from services.automation.pipeline_client import PipelineClient
from services.automation.servicer import AutomationServicer
from services.common import server
from services.common.config import AutomationConfig

SERVICE = automation_pb2.DESCRIPTOR.services_by_name["AutomationService"]


def run(config: AutomationConfig) -> int:
    spec = server.ServiceSpec(
        name="automation", grpc_service=SERVICE.full_name, methods=tuple(m.name for m in SERVICE.methods),
        common=config.common, grpc_addr=config.grpc_addr, metrics_addr=config.metrics_addr)

    async def setup(runtime: server.Runtime) -> Callable[[], Awaitable[None]]:
        metrics = ExecuteMetrics(runtime.registry) if config.common.telemetry else None
        # Readiness follows the pipeline's: a gateway stops sending calls this instance cannot serve.
        pipeline = PipelineClient(config.pipeline_target, on_readiness=runtime.set_ready,
                                  on_tools=metrics.learn_tools if metrics else (lambda names: None))
        servicer = AutomationServicer(config, pipeline, metrics)
        automation_pb2_grpc.add_AutomationServiceServicer_to_server(servicer, runtime.server)
        pipeline.start()
        return pipeline.close

    return server.run(spec, setup)
