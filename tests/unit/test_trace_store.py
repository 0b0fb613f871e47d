"""The local trace store without sockets: OTLP spans checked and bounded, kept in SQLite within
their count and age bounds, answered as a waterfall; and the waterfall as the terminal shows it."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from opsconductor.observability.traces import slowest_text, waterfall_text
from services.traces.otlp import MAX_ATTRIBUTES, MAX_VALUE, decode_attributes, encode_attributes, records
from services.traces.store import SpanRecord, SpanStore
from services.traces.waterfall import waterfall

TRACE = "0af7651916cd43dd8448eb211c80319c"
MS = 1_000_000


def span(span_id: str, parent: str, start_ms: float, end_ms: float, kind: str = "INTERNAL", service: str = "pipeline",
         trace_id: str = TRACE, **attributes) -> SpanRecord:
    return SpanRecord(trace_id, span_id, parent, service, f"span {span_id}", kind, int(start_ms * MS), int(end_ms * MS),
                      attributes=attributes, encoded=encode_attributes(attributes))


def store(**bounds) -> SpanStore:
    return SpanStore(":memory:", **{"max_spans": 1000, "max_age_s": 60, **bounds}, decode=decode_attributes)


def call_tree() -> list[SpanRecord]:
    """gateway server → gateway client → automation server → automation client → pipeline server → tool."""
    return [
        span("a" * 16, "f" * 16, 0, 10, "SERVER", "gateway"),
        span("b" * 16, "a" * 16, 0.2, 9.8, "CLIENT", "gateway"),
        span("c" * 16, "b" * 16, 1, 9, "SERVER", "automation", **{"rpc.grpc.status_code": 5}),
        span("d" * 16, "c" * 16, 2, 8, "CLIENT", "automation"),
        span("e" * 16, "d" * 16, 3, 7.5, "SERVER", "pipeline"),
        span("1" * 16, "e" * 16, 3.5, 7, "INTERNAL", "pipeline", **{"error.type": "UNKNOWN_TOOL"}),
    ]


# --- OTLP in -------------------------------------------------------------------------------------


def otlp_span(trace_id: bytes, span_id: bytes, parent: bytes = b"", start: int = 10, **attributes) -> trace_pb2.Span:
    return trace_pb2.Span(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name="call",
                          kind=trace_pb2.Span.SPAN_KIND_SERVER, start_time_unix_nano=start,
                          end_time_unix_nano=start + 5,
                          status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="boom"),
                          attributes=[common_pb2.KeyValue(key=k, value=v) for k, v in attributes.items()])


def export(*spans: trace_pb2.Span, service: str = "automation") -> trace_service_pb2.ExportTraceServiceRequest:
    resource = resource_pb2.Resource(attributes=[
        common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value=service))])
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[
        trace_pb2.ResourceSpans(resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=list(spans))])])


def test_valid_spans_are_kept_with_their_service_kind_status_and_attributes():
    kept, rejected = records(export(otlp_span(bytes.fromhex(TRACE), b"\x01" * 8, b"\x02" * 8,
                                              code=common_pb2.AnyValue(int_value=7),
                                              ok=common_pb2.AnyValue(bool_value=True))))
    (record,) = kept
    assert rejected == 0
    assert (record.trace_id, record.span_id, record.parent_span_id) == (TRACE, "01" * 8, "02" * 8)
    assert (record.service, record.kind, record.status) == ("automation", "SERVER", "ERROR")
    assert record.status_message == "boom"
    assert decode_attributes(record.encoded) == {"code": 7, "ok": True}


def test_spans_with_bad_ids_or_no_start_are_rejected_and_counted():
    good = bytes.fromhex(TRACE)
    kept, rejected = records(export(
        otlp_span(b"\x00" * 16, b"\x01" * 8), otlp_span(good[:8], b"\x01" * 8), otlp_span(good, b"\x00" * 8),
        otlp_span(good, b"\x01" * 8, b"\x02" * 3), otlp_span(good, b"\x01" * 8, start=0), otlp_span(good, b"\x03" * 8)))
    assert (len(kept), rejected) == (1, 5)


def test_attributes_are_bounded_in_number_and_size():
    many = {f"k{i}": common_pb2.AnyValue(string_value="v" * 5000) for i in range(MAX_ATTRIBUTES + 10)}
    few = dict(list(many.items())[:6])
    (record,), _ = records(export(otlp_span(bytes.fromhex(TRACE), b"\x01" * 8, **few)))
    shown = decode_attributes(record.encoded)
    assert all(len(value) == MAX_VALUE for value in shown.values())
    many_small = {f"k{i}": common_pb2.AnyValue(int_value=i) for i in range(MAX_ATTRIBUTES + 10)}
    (record,), _ = records(export(otlp_span(bytes.fromhex(TRACE), b"\x01" * 8, **many_small)))
    assert len(decode_attributes(record.encoded)) == MAX_ATTRIBUTES
    # A span too big to keep is refused whole (the store's size bound counts spans).
    assert records(export(otlp_span(bytes.fromhex(TRACE), b"\x01" * 8, **many)))[1] == 1


# --- the store -------------------------------------------------------------------------------------


def test_a_trace_comes_back_by_start_time_and_a_resent_span_is_kept_once():
    spans = store(max_spans=100)
    tree = call_tree()
    spans.add(reversed(tree))
    spans.add(tree[:2])
    assert [s.span_id for s in spans.trace(TRACE)] == [s.span_id for s in tree]
    assert spans.trace(TRACE)[2].attributes == {"rpc.grpc.status_code": 5}
    assert spans.count == len(tree) and spans.trace("1" * 32) == []


def test_the_size_bound_drops_the_oldest_spans_first():
    store = SpanStore(":memory:", max_spans=100, max_age_s=60, decode=decode_attributes)
    for batch in range(3):
        store.add(span(f"{batch:02d}{i:014d}", "", 0, 1, trace_id=f"{batch:032x}") for i in range(60))
    assert store.count == 100
    assert store.trace(f"{0:032x}") == [] and len(store.trace(f"{2:032x}")) == 60


def test_the_age_bound_drops_what_arrived_too_long_ago():
    now = [0]
    store = SpanStore(":memory:", max_spans=1000, max_age_s=10, decode=decode_attributes, clock=lambda: now[0])
    store.add([span("a" * 16, "", 0, 1, trace_id="1" * 32)])
    now[0] = 5 * 10**9
    store.add([span("b" * 16, "", 0, 1, trace_id="2" * 32)])
    now[0] = 12 * 10**9
    assert store.prune() == (1, 0)
    assert store.trace("1" * 32) == [] and len(store.trace("2" * 32)) == 1


def test_the_slowest_traces_come_first_with_their_root_and_errors():
    store = SpanStore(":memory:", max_spans=1000, max_age_s=60, decode=decode_attributes)
    store.add([span("a" * 16, "", 0, 3, service="gateway", trace_id="1" * 32),
               span("b" * 16, "", 0, 30, service="gateway", trace_id="2" * 32),
               span("c" * 16, "b" * 16, 1, 29, trace_id="2" * 32)])
    slow, fast = store.slowest(5)
    assert (slow.trace_id, slow.duration_ns, slow.span_count, slow.service) == ("2" * 32, 30 * MS, 2, "gateway")
    assert fast.trace_id == "1" * 32 and store.slowest(1) == [slow]


# --- the waterfall ---------------------------------------------------------------------------------


def test_spans_are_ordered_under_their_parents_with_offsets_and_self_time():
    answer = waterfall(call_tree())
    rows = answer["spans"]
    assert [row["depth"] for row in rows] == [0, 1, 2, 3, 4, 5]
    assert [row["offset_ms"] for row in rows] == [0, 0.2, 1, 2, 3, 3.5]
    assert rows[2]["self_ms"] == 2.0 and rows[0]["self_ms"] == 0.4
    assert answer["complete"] and answer["root_parent_span_id"] == "f" * 16
    assert answer["services"] == ["automation", "gateway", "pipeline"]


def test_the_span_with_most_time_of_its_own_is_marked_slowest():
    tree = call_tree()
    tree[5] = span("1" * 16, "e" * 16, 3.5, 4, "INTERNAL")  # the tool is quick: the pipeline's own work is not
    rows = waterfall(tree)["spans"]
    assert [row["name"] for row in rows if row["slowest"]] == ["span " + "e" * 16]


def test_overlapping_children_count_once_in_their_parents_self_time():
    spans = [span("a" * 16, "", 0, 10), span("b" * 16, "a" * 16, 1, 6), span("c" * 16, "a" * 16, 4, 8)]
    rows = waterfall(spans)["spans"]
    assert rows[0]["self_ms"] == 3.0


def test_a_trace_missing_a_hop_is_not_complete():
    tree = call_tree()
    assert not waterfall(tree[:4])["complete"]  # the automation's client span has no server child yet
    assert not waterfall(tree[:2] + tree[4:])["complete"]  # two roots: a hop in the middle is missing


def test_outcomes_read_either_tracers_grpc_status():
    rows = waterfall(call_tree() + [span("9" * 16, "e" * 16, 4, 5, **{"grpc.status_code": "14"})])["spans"]
    by_id = {row["span_id"]: row for row in rows}
    assert by_id["c" * 16]["outcome"] == "NOT_FOUND" and by_id["9" * 16]["outcome"] == "UNAVAILABLE"
    assert by_id["1" * 16]["reason"] == "UNKNOWN_TOOL" and by_id["a" * 16]["outcome"] == "OK"


def test_the_terminal_waterfall_has_a_line_per_span_indented_by_parent():
    text = waterfall_text(waterfall(call_tree())).splitlines()
    assert text[0].startswith(f"trace {TRACE}  10.00 ms, 6 spans")
    lines = text[2:]
    assert len(lines) == 6
    assert "gateway: span " + "a" * 16 in lines[0] and "  automation: span " + "c" * 16 in lines[2]
    assert lines[2].split("NOT_FOUND")[0].strip().endswith("ms")
    assert sum("← slowest" in line for line in lines) == 1
    listing = slowest_text([{"trace_id": TRACE, "duration_ms": 10, "span_count": 6, "errors": 1, "service": "gateway",
                             "name": "automation"}])
    assert TRACE in listing and "gateway: automation" in listing
