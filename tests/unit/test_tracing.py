"""Tracing in the services: the OTEL_* configuration, the samplers, the bounded export that
counts every span it drops, and the spans the pipeline adds (names, outcome, destination)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
import grpc
from prometheus_client import CollectorRegistry

from services.common.config import ConfigError, tracing_config
from services.common.spans import BoundedExport, sampler
from tests.unit.test_servicers import pipeline_call, pipeline_servicer

# --- configuration -----------------------------------------------------------------------------


def test_defaults_follow_the_standard_and_export_nothing_without_an_endpoint():
    config = tracing_config({}, "pipeline")
    assert (config.enabled, config.service_name, config.endpoint, config.exporting) == (True, "pipeline", "", False)
    assert (config.sampler, config.max_queue_size, config.schedule_delay_ms) == ("parentbased_always_on", 2048, 5000)


@pytest.mark.parametrize(("env", "endpoint"), [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, "http://collector:4317"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317/"}, "http://collector:4317"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example:443"}, "https://otel.example:443"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:2"}, "http://b:2"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_TRACES_EXPORTER": "none"}, ""),
])
def test_the_endpoint_comes_from_the_standard_variables(env, endpoint):
    assert tracing_config(env, "automation").endpoint == endpoint


@pytest.mark.parametrize(("env", "named"), [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://collector:4317"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://no-port"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
    ({"OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG"),
    ({"OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
    ({"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "200"}, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
    ({"OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED"),
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
])
def test_bad_values_name_their_variable(env, named):
    with pytest.raises(ConfigError, match=named):
        tracing_config(env, "automation")


def _decision(sampler_, flags: int | None, trace_id: int) -> Decision:
    context = None
    if flags is not None:
        parent = SpanContext(trace_id, 0xABC, is_remote=True, trace_flags=TraceFlags(flags))
        context = trace.set_span_in_context(NonRecordingSpan(parent))
    return sampler_.should_sample(context, trace_id, "call").decision


def test_parent_based_sampling_follows_the_callers_decision_and_samples_roots_by_ratio():
    config = tracing_config({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"})
    chosen = sampler(config)
    low, high = 1, (1 << 64) - 1  # the ratio sampler decides on the trace id's lower 64 bits
    assert _decision(chosen, 1, high) == Decision.RECORD_AND_SAMPLE  # the gateway (or a caller) forced it
    assert _decision(chosen, 0, low) == Decision.DROP  # the gateway decided against it
    assert _decision(chosen, None, low) == Decision.RECORD_AND_SAMPLE
    assert _decision(chosen, None, high) == Decision.DROP
    assert _decision(sampler(tracing_config({"OTEL_TRACES_SAMPLER": "always_off"})), 1, low) == Decision.DROP


# --- the bounded export ------------------------------------------------------------------------


class Exporter(SpanExporter):
    def __init__(self, result=SpanExportResult.SUCCESS, block: threading.Event | None = None) -> None:
        self.result, self.block, self.batches = result, block, []

    def export(self, spans):
        if self.block is not None:
            self.block.wait(10)
        self.batches.append(len(spans))
        return self.result

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        if self.block is not None:
            self.block.set()


def exporting(exporter: Exporter, queue: int = 50, delay_ms: int = 20):
    registry = CollectorRegistry()
    config = tracing_config({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_BSP_MAX_QUEUE_SIZE": str(queue),
                             "OTEL_BSP_SCHEDULE_DELAY": str(delay_ms)})
    processor = BoundedExport(exporter, config, registry)
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(processor)
    return processor, provider.get_tracer("test"), registry


def dropped(registry: CollectorRegistry, reason: str) -> float:
    return registry.get_sample_value("opsconductor_trace_spans_dropped_total", {"reason": reason})


def test_a_collector_that_hangs_drops_spans_beyond_the_queue_without_ever_holding_up_a_span_end():
    gate = threading.Event()
    processor, tracer, registry = exporting(Exporter(block=gate), queue=50)
    begin = time.perf_counter()
    for _ in range(500):
        tracer.start_span("call").end()
    assert time.perf_counter() - begin < 1.0  # no span end waited for the export
    assert dropped(registry, "queue_full") == 450
    assert registry.get_sample_value("opsconductor_trace_export_queue_spans") == 50
    begin = time.perf_counter()
    processor.shutdown(timeout_s=0.3)  # stops the exporter, which then lets go
    assert time.perf_counter() - begin < 2.0


def test_a_failing_collector_counts_each_lost_span_and_a_working_one_each_exported():
    processor, tracer, registry = exporting(Exporter(result=SpanExportResult.FAILURE))
    for _ in range(30):
        tracer.start_span("call").end()
    processor.force_flush()
    assert dropped(registry, "export_failed") == 30 and dropped(registry, "queue_full") == 0
    processor, tracer, registry = exporting(Exporter())
    for _ in range(30):
        tracer.start_span("call").end()
    processor.force_flush()
    assert registry.get_sample_value("opsconductor_trace_spans_exported_total") == 30
    assert registry.get_sample_value("opsconductor_trace_export_queue_spans") == 0


def test_spans_of_unsampled_calls_cost_no_export():
    exporter = Exporter()
    processor, _, registry = exporting(exporter)
    unsampled = TracerProvider(sampler=sampler(tracing_config({"OTEL_TRACES_SAMPLER": "always_off"})))
    unsampled.add_span_processor(processor)
    for _ in range(10):
        unsampled.get_tracer("t").start_span("call").end()
    processor.force_flush()
    assert exporter.batches == [] and dropped(registry, "queue_full") == 0


# --- the pipeline's spans ----------------------------------------------------------------------

_MEMORY = InMemorySpanExporter()


@pytest.fixture
def recorded() -> InMemorySpanExporter:
    """Spans of the code under test: the process's global provider, set once to record in memory."""
    provider = trace.get_tracer_provider()
    if not getattr(provider, "_opsconductor_test", False):
        provider = TracerProvider(sampler=ALWAYS_ON)
        provider.add_span_processor(SimpleSpanProcessor(_MEMORY))
        provider._opsconductor_test = True
        trace.set_tracer_provider(provider)
    _MEMORY.clear()
    return _MEMORY


def spans_by_name(memory: InMemorySpanExporter) -> dict[str, dict]:
    return {span.name: {**span.attributes, "_status": span.status.status_code.name}
            for span in memory.get_finished_spans()}


def test_a_denied_destination_shows_on_the_tool_span_without_the_input(recorded):
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("server") as server:
        reply, context = pipeline_call(pipeline_servicer(), input="host.example:22 extra words",
                                       tool="tcp_check", trace_id="caller-7")
        trace_id = format(server.get_span_context().trace_id, "032x")
    assert reply is None and context.trailing_value("x-trace-id") == trace_id
    spans = spans_by_name(recorded)
    assert spans["select tool"]["opsconductor.selection"] == "named"
    assert spans["server"]["opsconductor.caller_trace_id"] == "caller-7"
    assert spans["server"]["error.type"] == "VALIDATION_ERROR"  # the words make it no host:port
    with tracer.start_as_current_span("server"):
        reply, _ = pipeline_call(pipeline_servicer(), input="192.0.2.7:22", tool="tcp_check")
    run = spans_by_name(recorded)["run tcp_check"]
    destination = (run["server.address"], run["server.port"], run["opsconductor.destination.allowed"])
    assert destination == ("192.0.2.7", 22, False)
    assert (run["opsconductor.outcome"], run["error.type"], run["_status"]) == ("error", "DESTINATION_DENIED", "ERROR")
    # No input (nor output) on any span: only the destination the allowlist checked.
    assert all("192.0.2.7:22" != value for span in recorded.get_finished_spans() for value in span.attributes.values())


def test_a_tool_that_ran_has_its_outcome_and_the_selectors_choice(recorded):
    with trace.get_tracer("test").start_as_current_span("server"):
        reply, _ = pipeline_call(pipeline_servicer(), input="sleep 1")
    spans = spans_by_name(recorded)
    assert reply.tool == "delay"
    select = spans["select tool"]
    assert (select["opsconductor.tool"], select["opsconductor.selection"]) == ("delay", "selected")
    assert spans["run delay"]["opsconductor.outcome"] == "ok" and spans["run delay"]["_status"] == "UNSET"
    assert isinstance(spans["select tool"]["opsconductor.selector.cached"], bool)


def test_a_call_whose_trace_is_not_sampled_makes_no_spans(recorded):
    parent = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0xABC, is_remote=True, trace_flags=TraceFlags(0))
    with trace.use_span(NonRecordingSpan(parent)):
        reply, context = pipeline_call(pipeline_servicer(), input="sleep 1")
    assert reply.tool == "delay" and recorded.get_finished_spans() == ()
    assert context.trailing_value("x-trace-id") == "4bf92f3577b34da6a3ce929d0e0e4736"


# --- client spans --------------------------------------------------------------------------------


def _call_under(parent_flags: int | None, body):
    """Runs `body(call)` inside client_span, under a recording span or a remote parent."""
    from services.common.rpc_spans import client_span

    async def run():
        with client_span("/opsconductor.pipeline.v1.PipelineService/Execute", "0" * 31 + "1") as call:
            return await body(call)

    if parent_flags is None:
        with trace.get_tracer("test").start_as_current_span("server"):
            return asyncio.run(run())
    parent = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0xABC, is_remote=True,
                         trace_flags=TraceFlags(parent_flags))
    with trace.use_span(NonRecordingSpan(parent)):
        return asyncio.run(run())


def test_a_sampled_call_has_a_client_span_that_its_callee_hangs_under(recorded):
    async def body(call):
        return call

    call = _call_under(None, body)
    (header,) = [value for key, value in call.metadata if key == "traceparent"]
    client = next(span for span in recorded.get_finished_spans() if span.kind == trace.SpanKind.CLIENT)
    assert header[:-3] == f"00-{client.context.trace_id:032x}-{client.context.span_id:016x}"
    assert int(header[-2:], 16) & 1  # sampled (the SDK also sets W3C's "random trace id" bit)
    assert client.attributes["rpc.grpc.status_code"] == 0 and client.attributes["rpc.method"] == "Execute"


@pytest.mark.parametrize(("raised", "code"), [
    (asyncio.CancelledError(), 1),
    (grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), grpc.aio.Metadata(), "no tool"), 5),
])
def test_a_failed_or_cancelled_call_ends_its_client_span_with_that_status(recorded, raised, code):
    async def body(call):
        raise raised

    with pytest.raises(type(raised)):
        _call_under(None, body)
    client = next(span for span in recorded.get_finished_spans() if span.kind == trace.SpanKind.CLIENT)
    assert client.attributes["rpc.grpc.status_code"] == code and client.status.status_code.name == "ERROR"


def test_an_unsampled_call_carries_its_trace_on_without_a_span(recorded):
    async def body(call):
        return call

    call = _call_under(0, body)
    assert call.span is None and recorded.get_finished_spans() == ()
    assert dict(call.metadata)["traceparent"] == "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-00"


# --- the egress check and the exemplars, as traces see them ------------------------------------


def _checked(host: str, port: int, table: dict[str, tuple[str, ...]], mesh_ports: tuple[int, ...] = ()):
    """The attributes the egress check leaves on the current span, and what it raised."""
    from services.common.errors import DestinationDeniedError
    from services.pipeline.allowlist import Allowlist
    from services.pipeline.egress import Egress, parse_host
    from tests.unit.fakes import FakeResolver

    egress = Egress(Allowlist(["127.0.0.0/8", "checked.test"]), FakeResolver(table), mesh_ports)
    with trace.get_tracer("test").start_as_current_span("run tool") as span:
        try:
            asyncio.run(egress.destination(parse_host(host), port, 1.0))
            raised = None
        except DestinationDeniedError as error:
            raised = error.reason
    return dict(span.attributes), raised


def test_the_egress_check_puts_the_destination_as_written_and_the_addresses_it_allowed_on_the_span(recorded):
    attributes, raised = _checked("checked.test", 8443, {"checked.test": ("127.0.0.5", "10.9.9.9")})
    assert raised is None
    assert (attributes["server.address"], attributes["server.port"]) == ("checked.test", 8443)
    assert attributes["opsconductor.destination.allowed"] is True
    # Only the address the tool may connect to: the private one outside the allowlist is not named.
    assert attributes["opsconductor.destination.addresses"] == ("127.0.0.5",)


@pytest.mark.parametrize(("host", "port", "mesh_ports"), [
    ("checked.test", 9901, (9901,)),  # a port of the mesh (the trace store's among them)
    ("internal.test", 80, ()),  # a name that is not listed: never looked up
    ("10.9.9.9", 80, ()),  # an address outside the listed networks
])
def test_a_refused_destination_is_on_the_span_without_any_address_it_resolved_to(recorded, host, port, mesh_ports):
    attributes, raised = _checked(host, port, {"checked.test": ("127.0.0.5",), "internal.test": ("10.0.0.1",)},
                                  mesh_ports)
    assert raised == "DESTINATION_DENIED"
    assert (attributes["server.address"], attributes["opsconductor.destination.allowed"]) == (host, False)
    assert "opsconductor.destination.addresses" not in attributes


def _exemplars(registry: CollectorRegistry, family: str) -> list[str]:
    return [sample.exemplar.labels["trace_id"] for metric in registry.collect() if metric.name == family
            for sample in metric.samples if sample.exemplar is not None]


def test_a_failure_keeps_its_trace_id_as_an_exemplar_even_unsampled_a_latency_sample_only_when_sampled():
    from services.automation.metrics import ExecuteMetrics

    registry = CollectorRegistry()
    metrics = ExecuteMetrics(registry)
    metrics.observe("none", "NOT_FOUND", "UNKNOWN_TOOL", 0.002, "a" * 32, sampled=False)
    metrics.observe("none", "OK", None, 0.003, "b" * 32, sampled=False)
    assert _exemplars(registry, "ai_request_errors") == ["a" * 32]  # the failure finds its log lines
    assert _exemplars(registry, "ai_request_duration_seconds") == []  # no trace a backend could show
    metrics.observe("none", "OK", None, 0.004, "c" * 32, sampled=True)
    assert _exemplars(registry, "ai_request_duration_seconds") == ["c" * 32]
