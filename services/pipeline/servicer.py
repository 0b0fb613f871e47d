"""PipelineService: translates proto ↔ domain, records metrics and maps errors."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from opentelemetry import trace

from opsconductor.pipeline.v1 import pipeline_pb2, pipeline_pb2_grpc
from services.common import mirroring, status, tracing
from services.common.errors import MeshError, NotReadOnlyError, OverloadedError, UnknownToolError, ValidationError
from services.common.validation import check_execute
from services.pipeline.faults import FaultInjector
from services.pipeline.metrics import PipelineMetrics
from services.pipeline.runner import Plan, ToolRunner
from services.pipeline.selector import NoMatch
from services.pipeline.tools import Tool

_LOGGER = logging.getLogger(__name__)
_TRACER = trace.get_tracer(__name__)


class PipelineServicer(pipeline_pb2_grpc.PipelineServiceServicer):
    def __init__(self, runner: ToolRunner, faults: FaultInjector, *, pool: str, instance: str,
                 metrics: PipelineMetrics | None) -> None:
        self._runner = runner
        self._faults = faults
        self._pool = pool
        self._instance = instance
        self._metrics = metrics  # None when TELEMETRY=off: no per-call metrics or logs

    async def Execute(self, request: pipeline_pb2.ExecuteRequest, context: grpc.aio.ServicerContext):
        start = time.perf_counter()
        metadata = context.invocation_metadata() or ()
        trace_id, _ = tracing.resolve(request.trace_id, metadata)
        context.set_trailing_metadata(((status.TRACE_ID_KEY, trace_id),))
        plan: Plan | None = None
        try:
            if request.trace_id and not tracing.is_valid(request.trace_id):
                raise ValidationError("trace_id must be 1-64 characters of [A-Za-z0-9._-]", field="trace_id")
            check_execute(request.input, request.tool, request.platform, request.arguments)
            await self._faults.apply()
            plan = self._traced_plan(request)
            if not plan.tool.read_only and mirroring.is_mirrored(metadata):
                raise NotReadOnlyError(f"tool {plan.tool.name!r} is not read-only, so it does not run from a call "
                                       "mirrored to the canary", tool=plan.tool.name)
            output = await self._traced_run(plan, request, context.time_remaining())
        except MeshError as error:
            tracing.record_failure(error.reason, error.message)
            self._finished(plan, "refused" if isinstance(error, OverloadedError) else "error", start, error.reason)
            await status.abort(context, status.status_for(error, trace_id))
        except asyncio.CancelledError:
            # The caller cancelled or its deadline passed: the tool has stopped with the call.
            tracing.record_failure("CANCELLED", "the caller cancelled the call")
            self._finished(plan, "cancelled", start, "CANCELLED")
            raise
        except Exception:
            _LOGGER.exception("tool failed unexpectedly", extra={"tool": plan.tool.name if plan else ""})
            tracing.record_failure("INTERNAL_ERROR")
            self._finished(plan, "error", start, "INTERNAL_ERROR")
            await status.abort(context, status.rich_status(
                grpc.StatusCode.INTERNAL, f"internal error in the pipeline (trace id {trace_id})",
                "INTERNAL_ERROR", trace_id))
        self._finished(plan, "ok", start, "OK")
        return pipeline_pb2.ExecuteResponse(
            output=output, trace_id=trace_id, duration_ms=(time.perf_counter() - start) * 1000,
            tool=plan.tool.name, pool=self._pool, instance=self._instance, selection=plan.how)

    async def ListTools(self, request: pipeline_pb2.ListToolsRequest, context: grpc.aio.ServicerContext):
        tools = [tool for tool in self._runner.catalogue if not request.platform or request.platform in tool.platforms]
        return pipeline_pb2.ListToolsResponse(tools=[_tool_message(tool) for tool in tools])

    def _traced_plan(self, request: pipeline_pb2.ExecuteRequest) -> Plan:
        """Chooses the tool in a span of its own: how it was chosen and whether from the cache.
        (A call whose trace is not sampled gets no spans: they would only cost.)"""
        if not trace.get_current_span().is_recording():
            return self._plan(request)
        with _TRACER.start_as_current_span("select tool", record_exception=False,
                                           set_status_on_exception=False) as span:
            try:
                plan = self._plan(request)
            except MeshError as error:
                tracing.record_failure(error.reason)
                raise
            if span.is_recording():
                span.set_attributes({"opsconductor.tool": plan.tool.name, "opsconductor.selection": plan.how})
                if plan.selection is not None:
                    span.set_attributes({"opsconductor.selector.cached": plan.selection.cached,
                                         "opsconductor.selector.score": plan.selection.score})
            return plan

    async def _traced_run(self, plan: Plan, request: pipeline_pb2.ExecuteRequest, time_left_s: float | None) -> str:
        """Runs the tool in a span naming it and its outcome; a network tool adds the destination
        it checked (see Allowlist.check). Neither the input nor the output goes on the span."""
        if not trace.get_current_span().is_recording():
            return await self._runner.run(plan, request.input, request.arguments, time_left_s)
        with _TRACER.start_as_current_span(f"run {plan.tool.name}", record_exception=False,
                                           set_status_on_exception=False,
                                           attributes={"opsconductor.tool": plan.tool.name}) as span:
            outcome = "error"
            try:
                output = await self._runner.run(plan, request.input, request.arguments, time_left_s)
                outcome = "ok"
                return output
            except MeshError as error:
                # A tool that waits and found its lane full never ran: "refused", as its metric says.
                outcome = "refused" if isinstance(error, OverloadedError) else "error"
                tracing.record_failure(error.reason)
                raise
            except asyncio.CancelledError:
                outcome = "cancelled"
                tracing.record_failure("CANCELLED")
                raise
            except Exception:
                tracing.record_failure("INTERNAL_ERROR")
                raise
            finally:
                span.set_attribute("opsconductor.outcome", outcome)

    def _plan(self, request: pipeline_pb2.ExecuteRequest) -> Plan:
        metrics = self._metrics
        if metrics is None:
            return self._runner.plan(request.input, request.tool, request.platform)
        begin = time.perf_counter()
        try:
            plan = self._runner.plan(request.input, request.tool, request.platform)
        except UnknownToolError as error:
            reason = "no_match" if isinstance(error, NoMatch) else (
                "platform" if "platform" in error.metadata else "unknown_tool")
            metrics.selector_errors.labels(reason).inc()
            raise
        finally:
            if not request.tool:
                # A closed set: any other platform a caller names is counted as "other".
                platform = metrics.platform_label(request.platform or self._runner.host_platform)
                metrics.searches.labels(platform).inc()
                metrics.search_seconds.labels(platform).observe(time.perf_counter() - begin)
        if plan.selection is not None:
            (metrics.cache_hits if plan.selection.cached else metrics.cache_misses).inc()
            metrics.selections.labels(plan.tool.name).inc()
        return plan

    def _finished(self, plan: Plan | None, outcome: str, start: float, code: str) -> None:
        if self._metrics is None:
            return
        tool = plan.tool.name if plan else "none"
        if plan is not None:
            self._metrics.tool_runs.labels(tool, outcome).inc()
        # Successes log at DEBUG (see the automation servicer); failures and cancels at INFO.
        level = logging.DEBUG if outcome == "ok" else logging.INFO
        if _LOGGER.isEnabledFor(level):
            _LOGGER.log(level, "execute", extra={"tool": tool, "outcome": outcome, "code": code,
                                                 "selection": plan.how if plan else "",
                                                 "duration_ms": round((time.perf_counter() - start) * 1000, 3)})


def _tool_message(tool: Tool) -> pipeline_pb2.Tool:
    return pipeline_pb2.Tool(
        name=tool.name, description=tool.description, platforms=tool.platforms, input_hint=tool.input_hint,
        arguments=[pipeline_pb2.ToolArgument(name=argument.name, description=argument.description,
                                             required=argument.required, default_value=argument.default,
                                             type=argument.type) for argument in tool.arguments],
        read_only=tool.read_only)
