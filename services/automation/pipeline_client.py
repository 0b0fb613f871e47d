"""The automation service's client of the pipeline: calls with trace metadata and a deadline,
errors translated deliberately, and a health watch that drives the automation's readiness."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from opsconductor.pipeline.v1 import pipeline_pb2, pipeline_pb2_grpc
from services.common import mirroring, rpc_spans, spiffe, status
from services.common.certificates import CertificateWatcher, Material
from services.common.errors import MeshError
from services.common.mtls import channel_credentials
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
    """`certificates` given: mTLS as this workload, and the pipeline must prove it is `pool`'s
    (its certificate's name is checked, wherever the target points); a renewed certificate
    moves new calls to a new channel while the old one drains its calls (`drain_s`)."""

    def __init__(self, target: str, on_readiness: Callable[[bool], Awaitable[None]],
                 on_tools: Callable[[list[str]], None] = lambda names: None, *,
                 certificates: CertificateWatcher | None = None, pool: str = "stable",
                 drain_s: float = 30.0) -> None:
        self.target = target
        self._options = CHANNEL_OPTIONS
        if certificates is not None:
            self._options += (("grpc.ssl_target_name_override", spiffe.server_name(pool, "pipeline")),)
            certificates.subscribe(self._renewed)
        self._connect(certificates.material if certificates else None)
        self._draining: set[asyncio.Task[None]] = set()
        self._drain_s = drain_s
        self._on_readiness = on_readiness
        self._on_tools = on_tools
        self._watcher: asyncio.Task[None] | None = None

    def _connect(self, material: Material | None) -> None:
        if material is None:
            self._channel = grpc.aio.insecure_channel(self.target, options=self._options)
        else:
            self._channel = grpc.aio.secure_channel(self.target, channel_credentials(material), options=self._options)
        self._stub = pipeline_pb2_grpc.PipelineServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def _renewed(self, material: Material) -> None:
        # grpc has no reloading client credentials: calls from now on go over a new channel
        # (a new handshake with the new certificate); the old one finishes what it carries.
        old = self._channel
        self._connect(material)
        task = asyncio.create_task(old.close(grace=self._drain_s), name="pipeline-channel-drain")
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch(), name="pipeline-health-watch")

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        await self._channel.close()
        for task in list(self._draining):
            task.cancel()

    async def execute(self, request: pipeline_pb2.ExecuteRequest, trace_id: str,
                      timeout_s: float, mirrored: bool = False) -> pipeline_pb2.ExecuteResponse:
        """`mirrored`: the call is the gateway's copy, so the pipeline runs read-only tools only."""
        try:
            with rpc_spans.client_span(PIPELINE_EXECUTE, trace_id) as call:
                metadata = (*(call.metadata or ()), *mirroring.MARK) if mirrored else call.metadata
                return await self._stub.Execute(request, timeout=timeout_s, metadata=metadata or None)
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
            channel = self._channel
            try:
                # wait_for_ready: while the pipeline is down, wait for it instead of failing in a loop.
                async for reply in self._health.Watch(request, wait_for_ready=True):
                    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
                    if serving:
                        await self._learn_tools()
                    await self._on_readiness(serving)
                    _LOGGER.info("pipeline readiness", extra={"target": self.target, "serving": serving})
            except grpc.aio.AioRpcError as error:
                if channel is not self._channel:
                    continue  # a renewed certificate's channel took over: no readiness flap
                _LOGGER.info("pipeline health watch ended", extra={"target": self.target, "code": error.code().name})
            except asyncio.CancelledError:
                if channel is self._channel:
                    raise
                continue  # the drained channel's watch was cut: follow the new one
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
        # grpc's details name the pipeline's address ("ipv4:127.0.0.1:8010: Failed to connect"):
        # logged here, never shown to public callers.
        _LOGGER.info("pipeline unavailable", extra={"code": code.name, "details": error.details()})
        return UpstreamError("BAD_GATEWAY", "the pipeline is unavailable; retry shortly")
    info = status.error_info(error)
    if (info is not None and info.domain == status.DOMAIN
            and status.STATUS_BY_REASON.get(info.reason) == code):
        metadata = {key: value for key, value in info.metadata.items() if key != "trace_id"}
        return UpstreamError(info.reason, error.details() or "", **metadata)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        # grpc's own limit (calls in flight, metadata size) answered before any servicer ran.
        return UpstreamError("OVERLOADED", "the pipeline is at its limit of calls in flight; retry later")
    _LOGGER.error("unexpected pipeline error", extra={"code": code.name, "details": error.details()})
    return UpstreamError("INTERNAL_ERROR", "the pipeline failed unexpectedly")
