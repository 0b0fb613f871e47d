"""The OTLP/gRPC TraceService (the official opentelemetry-proto definitions): each exported
span checked and bounded (ids, names, attribute count and size) before the store keeps it."""

from __future__ import annotations

import asyncio
import logging

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from prometheus_client import CollectorRegistry, Counter, Gauge

from services.traces.store import SpanRecord, SpanStore

_LOGGER = logging.getLogger(__name__)

TRACE_SERVICE = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name
MAX_NAME = 256
MAX_ATTRIBUTES = 64
MAX_KEY = 128
MAX_VALUE = 1024
MAX_SPAN_BYTES = 32 * 1024  # a span (attributes, events) larger than this is refused
_KINDS = {value: name.removeprefix("SPAN_KIND_") for name, value in trace_pb2.Span.SpanKind.items()}
_STATUSES = {value: name.removeprefix("STATUS_CODE_") for name, value in trace_pb2.Status.StatusCode.items()}


def records(request: trace_service_pb2.ExportTraceServiceRequest) -> tuple[list[SpanRecord], int]:
    """The request's valid spans, and how many were rejected."""
    kept: list[SpanRecord] = []
    rejected = 0
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = str(resource.get("service.name", "unknown_service"))[:MAX_NAME]
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                record = _record(span, service)
                if record is None:
                    rejected += 1
                else:
                    kept.append(record)
    return kept, rejected


def _record(span: trace_pb2.Span, service: str) -> SpanRecord | None:
    if len(span.trace_id) != 16 or not any(span.trace_id) or len(span.span_id) != 8 or not any(span.span_id):
        return None
    if len(span.parent_span_id) not in (0, 8) or span.start_time_unix_nano == 0:
        return None
    encoded = span.SerializeToString()
    if len(encoded) > MAX_SPAN_BYTES:
        return None
    return SpanRecord(
        trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex() if any(span.parent_span_id) else "",
        service=service, name=span.name[:MAX_NAME] or "(unnamed)", kind=_KINDS.get(span.kind, "UNSPECIFIED"),
        start_ns=span.start_time_unix_nano, end_ns=max(span.end_time_unix_nano, span.start_time_unix_nano),
        status=_STATUSES.get(span.status.code, "UNSET"), status_message=span.status.message[:MAX_VALUE],
        encoded=encoded)


def decode_attributes(encoded: bytes) -> dict[str, str | int | float | bool]:
    """A stored span's attributes, bounded in number and size (the store's `decode`)."""
    return _attributes(trace_pb2.Span.FromString(encoded).attributes) if encoded else {}


def encode_attributes(attributes: dict[str, str | int | float | bool]) -> bytes:
    """Attributes of a span made outside OTLP, encoded as a stored span's are."""
    return trace_pb2.Span(attributes=[common_pb2.KeyValue(key=key, value=_any_value(value))
                                      for key, value in attributes.items()]).SerializeToString()


def _any_value(value: str | int | float | bool) -> common_pb2.AnyValue:
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    return common_pb2.AnyValue(string_value=str(value))


def _attributes(pairs) -> dict[str, str | int | float | bool]:
    result: dict[str, str | int | float | bool] = {}
    for pair in list(pairs)[:MAX_ATTRIBUTES]:
        result[pair.key[:MAX_KEY]] = _value(pair.value)
    return result


def _value(value: common_pb2.AnyValue) -> str | int | float | bool:
    kind = value.WhichOneof("value")
    if kind in ("bool_value", "int_value", "double_value"):
        return getattr(value, kind)
    if kind == "string_value":
        return value.string_value[:MAX_VALUE]
    if kind == "bytes_value":
        return value.bytes_value[:MAX_VALUE // 2].hex()
    if kind == "array_value":
        return ",".join(str(_value(item)) for item in value.array_value.values)[:MAX_VALUE]
    return ""  # kvlist values and empty values are not shown


class TraceReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, store: SpanStore, registry: CollectorRegistry) -> None:
        self._store = store
        self._received = Counter("opsconductor_traces_spans_received_total", "Spans received and kept.",
                                 registry=registry)
        self._rejected = Counter("opsconductor_traces_spans_rejected_total",
                                 "Spans received with bad ids or times, not kept.", registry=registry)
        self.pruned = Counter("opsconductor_traces_spans_pruned_total", "Spans removed by the size or age bound.",
                              ("bound",), registry=registry)
        for bound in ("size", "age"):
            self.pruned.labels(bound)
        Gauge("opsconductor_traces_spans_stored", "Spans in the store.", registry=registry).set_function(
            lambda: self._store.count)

    async def Export(self, request: trace_service_pb2.ExportTraceServiceRequest,
                     context: grpc.aio.ServicerContext) -> trace_service_pb2.ExportTraceServiceResponse:
        kept, rejected = records(request)
        # SQLite work off the event loop, so one exporter's batch never holds up another's.
        pruned = await asyncio.to_thread(self._store.add, kept)
        self._received.inc(len(kept))
        self.pruned.labels("size").inc(pruned)
        response = trace_service_pb2.ExportTraceServiceResponse()
        if rejected:
            self._rejected.inc(rejected)
            response.partial_success.rejected_spans = rejected
            response.partial_success.error_message = "spans need 16-byte trace ids, 8-byte span ids and a start time"
        return response
