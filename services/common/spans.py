"""The OpenTelemetry SDK of one service: resource, sampler, its server spans (rpc_spans.py), and
a batched OTLP/gRPC export whose queue is bounded. Export runs on the SDK's own thread: a
collector that is down or slow only makes spans drop, counted in
`opsconductor_trace_spans_dropped_total`, never a call wait or fail."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import filters
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry, Counter, Gauge

from services.common import rpc_spans
from services.common.config import TracingConfig

_LOGGER = logging.getLogger(__name__)

# The SDK logs every dropped span and every failed export attempt; with a collector down that is
# a line per span. The drops counter counts them and the exporter below logs each outage once.
for _noisy in ("opentelemetry.sdk._shared_internal", "opentelemetry.exporter.otlp.proto.grpc.exporter"):
    logging.getLogger(_noisy).setLevel(logging.CRITICAL)

# Health checks (Envoy's, every second per host) and reflection are not calls anyone traces.
_UNTRACED = filters.negate(filters.any_of(filters.health_check(), filters.service_prefix("grpc.reflection")))
DROP_REASONS = ("queue_full", "export_failed", "shutdown")


@dataclass(frozen=True)
class ServiceIdentity:
    """What the resource of every span says about the process that made it."""

    name: str
    version: str
    instance: str
    pool: str


class Tracing:
    """The SDK of a running service: `server_interceptor` goes on its server (calls to other
    services make their client spans with rpc_spans.client_span); `shutdown` flushes what it can
    within a bound."""

    def __init__(self, config: TracingConfig, identity: ServiceIdentity, registry: CollectorRegistry) -> None:
        resource = Resource.create({"service.name": config.service_name or identity.name,
                                    "service.version": identity.version,
                                    "service.instance.id": identity.instance,
                                    "opsconductor.pool": identity.pool})
        self.provider = TracerProvider(resource=resource, sampler=sampler(config))
        self._processor: BoundedExport | None = None
        if config.exporting:
            exporter = OTLPSpanExporter(endpoint=config.endpoint, insecure=config.endpoint.startswith("http://"),
                                        timeout=config.export_timeout_ms / 1000)
            self._processor = BoundedExport(exporter, config, registry)
            self.provider.add_span_processor(self._processor)
        trace.set_tracer_provider(self.provider)

    def server_interceptor(self) -> grpc.aio.ServerInterceptor:
        return rpc_spans.server_interceptor(self.provider, _UNTRACED)

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Exports what is queued, for at most `timeout_s` (a collector that is down must not
        hold up the exit)."""
        if self._processor is not None:
            self._processor.shutdown(timeout_s)


def sampler(config: TracingConfig) -> sampling.Sampler:
    """The OTEL_TRACES_SAMPLER named in the config. Behind the gateway every call has a parent,
    so a parent-based sampler follows the gateway's decision; the argument applies to calls that
    arrive without a trace context (the service is then the edge)."""
    ratio = sampling.TraceIdRatioBased(config.sampler_arg)
    roots = {"always_on": sampling.ALWAYS_ON, "always_off": sampling.ALWAYS_OFF, "traceidratio": ratio}
    name = config.sampler.removeprefix("parentbased_")
    if config.sampler.startswith("parentbased_"):
        return sampling.ParentBased(roots[name])
    return roots[name]


class BoundedExport(SpanProcessor):
    """A BatchSpanProcessor whose queue bound this class keeps, so that every dropped span is
    counted: a span is admitted while fewer than `max_queue_size` are pending (queued or being
    exported), else dropped as queue_full; a batch the exporter fails is dropped as export_failed."""

    def __init__(self, exporter: SpanExporter, config: TracingConfig, registry: CollectorRegistry) -> None:
        self._limit = config.max_queue_size
        self._pending = 0
        self._lock = threading.Lock()
        self._failing = False
        self._dropped = Counter("opsconductor_trace_spans_dropped_total",
                                "Finished spans never exported: the queue was full, the export failed, or the "
                                "service was stopping.", ("reason",), registry=registry)
        for reason in DROP_REASONS:
            self._dropped.labels(reason)
        self._exported = Counter("opsconductor_trace_spans_exported_total", "Spans the collector accepted.",
                                 registry=registry)
        Gauge("opsconductor_trace_export_queue_spans", "Finished spans waiting for export.",
              registry=registry).set_function(lambda: self._pending)
        self._exporter = exporter
        # The SDK's queue is as long as ours, so it never drops a span on its own.
        self._batch = BatchSpanProcessor(_CountingExporter(exporter, self), max_queue_size=self._limit,
                                         schedule_delay_millis=config.schedule_delay_ms,
                                         max_export_batch_size=config.max_export_batch_size,
                                         export_timeout_millis=config.export_timeout_ms)
        self._stopping = False

    def on_start(self, span, parent_context=None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        with self._lock:
            admitted = self._pending < self._limit and not self._stopping
            if admitted:
                self._pending += 1
        if not admitted:
            self._dropped.labels("shutdown" if self._stopping else "queue_full").inc()
            return
        self._batch.on_end(span)

    def exported(self, count: int, ok: bool) -> None:
        with self._lock:
            self._pending -= count
            changed, self._failing = self._failing == ok, not ok
        if ok:
            self._exported.inc(count)
        else:
            self._dropped.labels("export_failed").inc(count)
        if changed:
            if ok:
                _LOGGER.info("span export recovered")
            else:
                _LOGGER.warning("span export failing: spans are dropped until the collector answers")

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Exports what is queued within `timeout_s`; then stops the exporter, which ends its
        retries at once (the SDK's own shutdown would wait for each batch's full timeout)."""
        with self._lock:
            self._stopping = True
        flushing = threading.Thread(target=self._batch.shutdown, name="span-export-shutdown", daemon=True)
        flushing.start()
        flushing.join(timeout_s)
        if flushing.is_alive():
            self._exporter.shutdown()
            flushing.join(0.5)
        with self._lock:
            left, self._pending = self._pending, 0
        if left:
            self._dropped.labels("shutdown").inc(left)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._batch.force_flush(timeout_millis)


class _CountingExporter(SpanExporter):
    """Reports each batch's outcome to the BoundedExport that queued it."""

    def __init__(self, exporter: SpanExporter, owner: BoundedExport) -> None:
        self._exporter = exporter
        self._owner = owner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._exporter.export(spans)
        except Exception:  # an exporter bug must not kill the export thread
            _LOGGER.exception("span exporter raised")
            result = SpanExportResult.FAILURE
        self._owner.exported(len(spans), result == SpanExportResult.SUCCESS)
        return result

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        self._exporter.shutdown(timeout_millis=timeout_millis)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)
