"""Entry point of the automation service: `python -m services automation` or `opsconductor automation`."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence

from opsconductor.automation.v1 import automation_pb2_grpc
from services.automation.metrics import ExecuteMetrics
from services.automation.pipeline_client import PipelineClient
from services.automation.servicer import AutomationServicer
from services.common import server
from services.common.config import AutomationConfig, automation_config
from services.common.names import AUTOMATION_METHODS, AUTOMATION_SERVICE


def run(config: AutomationConfig) -> int:
    spec = server.ServiceSpec(
        name="automation", grpc_service=AUTOMATION_SERVICE, methods=AUTOMATION_METHODS,
        common=config.common, grpc_addr=config.grpc_addr, metrics_addr=config.metrics_addr,
        health_addr=config.health_addr)

    async def setup(runtime: server.Runtime) -> Callable[[], Awaitable[None]]:
        metrics = ExecuteMetrics(runtime.registry) if config.common.telemetry else None
        # Readiness follows the pipeline's: a gateway stops sending calls this instance cannot serve.
        pipeline = PipelineClient(config.pipeline_target, on_readiness=runtime.set_ready,
                                  on_tools=metrics.learn_tools if metrics else (lambda names: None),
                                  certificates=runtime.transport.watcher, pool=config.common.pool,
                                  drain_s=config.execute_timeout_s + 1)
        servicer = AutomationServicer(config, pipeline, metrics)
        automation_pb2_grpc.add_AutomationServiceServicer_to_server(servicer, runtime.server)
        pipeline.start()
        return pipeline.close

    return server.run(spec, setup)


def main(argv: Sequence[str] = (), env: Mapping[str, str] = os.environ) -> int:
    return server.main("automation", argv, lambda: automation_config(env), run)
