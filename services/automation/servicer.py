"""AutomationService: validates, resolves the trace id, forwards to the pipeline with a
deadline, maps failures to real statuses and records metrics."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from opsconductor.automation.v1 import automation_pb2, automation_pb2_grpc
from opsconductor.pipeline.v1 import pipeline_pb2
from services.automation.metrics import NO_TOOL, ExecuteMetrics
from services.automation.pipeline_client import PipelineClient
from services.common import mirroring, status, tracing
from services.common.config import AutomationConfig
from services.common.errors import MeshError, ValidationError
from services.common.validation import check_execute

_LOGGER = logging.getLogger(__name__)

# When the caller's deadline is the shorter one, the pipeline call gets a little more than it:
# the caller's own deadline then ends the call (grpc cancels this handler, and the pipeline call
# with it), so a deadline the caller chose is its own outcome (CANCELLED here), never a timeout
# this service reports as its fault. DEADLINE_EXCEEDED from this service means EXECUTE_TIMEOUT_S.
CALLER_DEADLINE_SLACK_S = 0.05


class AutomationServicer(automation_pb2_grpc.AutomationServiceServicer):
    def __init__(self, config: AutomationConfig, pipeline: PipelineClient, metrics: ExecuteMetrics | None) -> None:
        self._timeout_s = config.execute_timeout_s
        self._pool = config.common.pool
        self._instance = config.common.instance
        self._version = config.common.version
        self._pipeline = pipeline
        self._metrics = metrics  # None when TELEMETRY=off: no per-call metrics or logs

    async def Execute(self, request: automation_pb2.ExecuteRequest, context: grpc.aio.ServicerContext):
        start = time.perf_counter()
        metadata = context.invocation_metadata() or ()
        trace_id, _ = tracing.resolve(request.trace_id, metadata)
        mirrored = mirroring.is_mirrored(metadata)
        try:
            if request.trace_id and not tracing.is_valid(request.trace_id):
                raise ValidationError("trace_id must be 1-64 characters of [A-Za-z0-9._-]", field="trace_id")
            check_execute(request.input, request.tool, request.platform, request.arguments)
            reply = await self._pipeline.execute(
                pipeline_pb2.ExecuteRequest(input=request.input, tool=request.tool, platform=request.platform,
                                            trace_id=trace_id, arguments=request.arguments),
                trace_id, self._pipeline_timeout(context), mirrored=mirrored)
        except MeshError as error:
            tracing.record_failure(error.reason, error.message)
            self._record(request.tool, status.STATUS_BY_REASON[error.reason].name, error.reason, start, trace_id,
                         mirrored)
            await status.abort(context, status.status_for(error, trace_id))
        except asyncio.CancelledError:
            # The caller went away; cancelling this task has cancelled the pipeline call too.
            tracing.record_failure("CANCELLED", "the caller cancelled the call")
            self._record(request.tool, "CANCELLED", "CANCELLED", start, trace_id, mirrored)
            raise
        except Exception:
            _LOGGER.exception("execute failed unexpectedly")
            tracing.record_failure("INTERNAL_ERROR")
            self._record(request.tool, "INTERNAL", "INTERNAL_ERROR", start, trace_id, mirrored)
            await status.abort(context, status.rich_status(
                grpc.StatusCode.INTERNAL, f"internal error (trace id {trace_id})", "INTERNAL_ERROR", trace_id))
        context.set_trailing_metadata(((status.TRACE_ID_KEY, trace_id),))
        self._record(reply.tool, "OK", None, start, trace_id, mirrored)
        return automation_pb2.ExecuteResponse(
            success=True, output=reply.output, trace_id=trace_id, duration_ms=(time.perf_counter() - start) * 1000,
            tool=reply.tool, pool=self._pool, instance=self._instance, pipeline_instance=reply.instance,
            version=self._version)

    async def ListTools(self, request: automation_pb2.ListToolsRequest, context: grpc.aio.ServicerContext):
        trace_id, _ = tracing.resolve("", context.invocation_metadata() or ())
        try:
            reply = await self._pipeline.list_tools(request.platform, trace_id, self._pipeline_timeout(context))
        except MeshError as error:
            tracing.record_failure(error.reason, error.message)
            await status.abort(context, status.status_for(error, trace_id))
        context.set_trailing_metadata(((status.TRACE_ID_KEY, trace_id),))
        return automation_pb2.ListToolsResponse(tools=[
            automation_pb2.Tool(
                name=tool.name, description=tool.description, platforms=tool.platforms, input_hint=tool.input_hint,
                arguments=[automation_pb2.ToolArgument(name=a.name, description=a.description, required=a.required,
                                                       default_value=a.default_value, type=a.type)
                           for a in tool.arguments],
                read_only=tool.read_only)
            for tool in reply.tools])

    def _pipeline_timeout(self, context: grpc.aio.ServicerContext) -> float:
        """min(EXECUTE_TIMEOUT_S, the caller's remaining time plus a little)."""
        remaining = context.time_remaining()
        if remaining is None:
            return self._timeout_s
        return min(self._timeout_s, max(remaining, 0.0) + CALLER_DEADLINE_SLACK_S)

    def _record(self, tool: str, code: str, reason: str | None, start: float, trace_id: str,
                mirrored: bool = False) -> None:
        if self._metrics is None:
            return
        seconds = time.perf_counter() - start
        self._metrics.observe(tool or NO_TOOL, code, reason, seconds, trace_id, tracing.sampled(), mirrored)
        # Successful calls log at DEBUG: Envoy's access log already records every call, and a
        # JSON line per call at INFO costs more CPU than the call's own work.
        level = logging.WARNING if code in _SERVER_FAULTS else logging.DEBUG if code == "OK" else logging.INFO
        if _LOGGER.isEnabledFor(level):
            _LOGGER.log(level, "execute", extra={"tool": tool, "code": code, "reason": reason,
                                                 "duration_ms": round(seconds * 1000, 3)})


_SERVER_FAULTS = {"INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "UNKNOWN"}

