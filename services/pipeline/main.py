"""Entry point of the pipeline service: `python -m services pipeline` or `opsconductor pipeline`."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence

from opsconductor.pipeline.v1 import pipeline_pb2_grpc
from services.common import server
from services.common.config import PipelineConfig, pipeline_config
from services.common.names import PIPELINE_METHODS, PIPELINE_SERVICE
from services.pipeline.allowlist import Allowlist
from services.pipeline.egress import Egress
from services.pipeline.faults import FaultInjector
from services.pipeline.metrics import PipelineMetrics
from services.pipeline.resolver import Resolver
from services.pipeline.runner import ToolRunner
from services.pipeline.selector import KeywordSelector
from services.pipeline.selector_eval import evaluate
from services.pipeline.servicer import PipelineServicer
from services.pipeline.tools import CATALOGUE, ToolContext

_LOGGER = logging.getLogger(__name__)
HOST_PLATFORM = "darwin" if sys.platform == "darwin" else "linux"


def run(config: PipelineConfig) -> int:
    spec = server.ServiceSpec(
        name="pipeline", grpc_service=PIPELINE_SERVICE, methods=PIPELINE_METHODS,
        common=config.common, grpc_addr=config.grpc_addr, metrics_addr=config.metrics_addr,
        health_addr=config.health_addr)

    async def setup(runtime: server.Runtime) -> Callable[[], Awaitable[None]]:
        selector = KeywordSelector(CATALOGUE, config.cache_size, config.cache_ttl_s)
        resolver = Resolver()
        egress = Egress(Allowlist(config.allowlist), resolver, config.mesh_ports)
        runner = ToolRunner(CATALOGUE, selector, ToolContext(egress), bypass_llm=config.bypass_llm,
                            host_platform=HOST_PLATFORM, max_waiting=config.tool_max_waiting)
        metrics = None
        if config.common.telemetry:
            platforms = sorted({platform for tool in CATALOGUE for platform in tool.platforms})
            metrics = PipelineMetrics(runtime.registry, [tool.name for tool in CATALOGUE], platforms)
            # A separate selector, so the evaluation leaves the serving cache untouched.
            evaluation = evaluate(KeywordSelector(CATALOGUE), HOST_PLATFORM)
            metrics.accuracy.set(evaluation.accuracy)
            metrics.eval_cases.set(evaluation.cases)
            _LOGGER.info("selector evaluated", extra={"accuracy": round(evaluation.accuracy, 4),
                                                      "cases": evaluation.cases})
        if config.faults.enabled:
            _LOGGER.warning("fault injection is ON", extra={"every_n": config.faults.every_n,
                                                             "rate": config.faults.rate,
                                                             "latency_ms": config.faults.latency_ms})
        servicer = PipelineServicer(runner, FaultInjector(config.faults), pool=config.common.pool,
                                    instance=config.common.instance, metrics=metrics)
        pipeline_pb2_grpc.add_PipelineServiceServicer_to_server(servicer, runtime.server)
        await runtime.set_ready(True)

        async def release() -> None:
            await resolver.close()

        return release

    return server.run(spec, setup)


def main(argv: Sequence[str] = (), env: Mapping[str, str] = os.environ) -> int:
    return server.main("pipeline", argv, lambda: pipeline_config(env), run)
