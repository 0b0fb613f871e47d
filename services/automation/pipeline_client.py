"""The automation service's client of the pipeline: calls with trace metadata and a deadline,
errors translated deliberately, and a health watch that drives the automation's readiness."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from opsconductor.pipeline.v1 import pipeline_pb2, pipeline_pb2_grpc
from services.common import rpc_spans, status
from services.common.errors import MeshError
from services.common.names import PIPELINE_EXECUTE, PIPELINE_LIST_TOOLS, PIPELINE_SERVICE

_LOGGER = logging.getLogger(__name__)

# Reconnect within seconds of the pipeline coming back, not gRPC's default of up to 120 s.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)
_WATCH_RETRY_S = 0.25


class UpstreamError(MeshError):
    """An error of the pipeline call, with the reason the automation service reports."""

    def __init__(self, reason: str, message: str, **metadata: str) -> None:
        super().__init__(message, **metadata)
        self.reason = reason


class PipelineClient:
    def __init__(self, target: str, on_readiness: Callable[[bool], Awaitable[None]],
                 on_tools: Callable[[list[str]], None] = lambda names: None) -> None:
        self.target = target
        self._channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._stub = pipeline_pb2_grpc.PipelineServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._on_readiness = on_readiness
        self._on_tools = on_tools
        self._watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch(), name="pipeline-health-watch")

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        await self._channel.close()

    async def execute(self, request: pipeline_pb2.ExecuteRequest, trace_id: str,
                      timeout_s: float) -> pipeline_pb2.ExecuteResponse:
        try:
            with rpc_spans.client_span(PIPELINE_EXECUTE, trace_id) as call:
                return await self._stub.Execute(request, timeout=timeout_s, metadata=call.metadata or None)
        except grpc.aio.AioRpcError as error:
            raise _translate(error, timeout_s) from None

    async def list_tools(self, platform: str, trace_id: str, timeout_s: float) -> pipeline_pb2.ListToolsResponse:
        try:
            with rpc_spans.client_span(PIPELINE_LIST_TOOLS, trace_id) as call:
                return await self._stub.ListTools(pipeline_pb2.ListToolsRequest(platform=platform),
                                                  timeout=timeout_s, metadata=call.metadata or None)
        except grpc.aio.AioRpcError as error:
            raise _translate(error, timeout_s) from None

    async def _watch(self) -> None:
        """Follows the pipeline's readiness for as long as the service runs."""
        request = health_pb2.HealthCheckRequest(service=PIPELINE_SERVICE)
        while True:
            try:
                # wait_for_ready: while the pipeline is down, wait for it instead of failing in a loop.
                async for reply in self._health.Watch(request, wait_for_ready=True):
                    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
                    if serving:
                        await self._learn_tools()
                    await self._on_readiness(serving)
                    _LOGGER.info("pipeline readiness", extra={"target": self.target, "serving": serving})
            except grpc.aio.AioRpcError as error:
                _LOGGER.info("pipeline health watch ended", extra={"target": self.target, "code": error.code().name})
            await self._on_readiness(False)
            await asyncio.sleep(_WATCH_RETRY_S)  # the channel's own backoff paces reconnects

    async def _learn_tools(self) -> None:
        try:
            reply = await self._stub.ListTools(pipeline_pb2.ListToolsRequest(), timeout=5)
        except grpc.aio.AioRpcError as error:
            _LOGGER.warning("cannot list the pipeline's tools", extra={"code": error.code().name})
            return
        self._on_tools([tool.name for tool in reply.tools])


def _translate(error: grpc.aio.AioRpcError, timeout_s: float) -> UpstreamError:
    code = error.code()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UpstreamError("TIMEOUT", f"the pipeline did not answer within {timeout_s:.3g} s")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return UpstreamError("BAD_GATEWAY", f"the pipeline is unavailable: {error.details()}")
    info = status.error_info(error)
    if (info is not None and info.domain == status.DOMAIN
            and status.STATUS_BY_REASON.get(info.reason) == code):
        metadata = {key: value for key, value in info.metadata.items() if key != "trace_id"}
        return UpstreamError(info.reason, error.details() or "", **metadata)
    _LOGGER.error("unexpected pipeline error", extra={"code": code.name, "details": error.details()})
    return UpstreamError("INTERNAL_ERROR", "the pipeline failed unexpectedly")
