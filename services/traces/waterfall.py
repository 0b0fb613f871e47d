"""A trace as a waterfall: spans ordered depth-first under their parents, each with its start
offset, duration and self time, the span with the most self time marked as the slowest, and
whether the trace looks complete. Plain Python; the CLI and the page both show this shape."""

from __future__ import annotations

from collections.abc import Sequence

from google.rpc import code_pb2

from services.traces.store import SpanRecord

# Where each tracer puts a call's gRPC status: the Python instrumentation, and Envoy.
_GRPC_STATUS_KEYS = ("rpc.grpc.status_code", "grpc.status_code")


def waterfall(spans: Sequence[SpanRecord]) -> dict:
    """The JSON answer for one trace (spans as the store returns them, by start time)."""
    if not spans:
        return {"trace_id": "", "spans": [], "span_count": 0, "complete": False}
    ids = {span.span_id for span in spans}
    children: dict[str, list[SpanRecord]] = {}
    roots: list[SpanRecord] = []
    for span in spans:
        if span.parent_span_id and span.parent_span_id in ids and span.parent_span_id != span.span_id:
            children.setdefault(span.parent_span_id, []).append(span)
        else:
            roots.append(span)  # a root, or a span whose parent has not arrived (or never will)
    start = min(span.start_ns for span in spans)
    end = max(span.end_ns for span in spans)
    rows: list[dict] = []

    def visit(span: SpanRecord, depth: int, seen: set[str]) -> None:
        seen.add(span.span_id)
        kids = [kid for kid in children.get(span.span_id, ()) if kid.span_id not in seen]
        rows.append({
            "span_id": span.span_id, "parent_span_id": span.parent_span_id, "depth": depth,
            "service": span.service, "name": span.name, "kind": span.kind,
            "offset_ms": _ms(span.start_ns - start), "duration_ms": _ms(span.end_ns - span.start_ns),
            "self_ms": _ms(_self_ns(span, kids)), "status": span.status, "status_message": span.status_message,
            "outcome": outcome(span), "reason": str(span.attributes.get("error.type", "")),
            "attributes": span.attributes, "slowest": False,
        })
        for kid in kids:
            visit(kid, depth + 1, seen)

    seen: set[str] = set()
    for root in roots:
        visit(root, 0, seen)
    slowest = max(rows, key=lambda row: row["self_ms"])
    slowest["slowest"] = True
    client_spans = {row["span_id"] for row in rows if row["kind"] == "CLIENT"}
    return {
        "trace_id": spans[0].trace_id,
        "start_unix_ms": start / 1e6,
        "duration_ms": _ms(end - start),
        "span_count": len(rows),
        "services": sorted({row["service"] for row in rows}),
        "root_parent_span_id": roots[0].parent_span_id,
        # Complete as far as can be told: one root, and every client span's callee has reported.
        "complete": len(roots) == 1 and client_spans <= set(children),
        "spans": rows,
    }


def outcome(span: SpanRecord) -> str:
    """The gRPC status name the span recorded ("OK", "NOT_FOUND"...), else OK or ERROR."""
    for key in _GRPC_STATUS_KEYS:
        raw = span.attributes.get(key)
        if raw is not None and str(raw).lstrip("-").isdigit():
            number = int(raw)
            if number in code_pb2.Code.values():
                return code_pb2.Code.Name(number)
    return "ERROR" if span.status == "ERROR" else "OK"


def _self_ns(span: SpanRecord, kids: Sequence[SpanRecord]) -> int:
    """The span's duration not covered by any child (children overlapping each other count once)."""
    covered, cursor = 0, span.start_ns
    for kid_start, kid_end in sorted((max(k.start_ns, span.start_ns), min(k.end_ns, span.end_ns)) for k in kids):
        if kid_end <= cursor:
            continue
        covered += kid_end - max(kid_start, cursor)
        cursor = kid_end
    return max(span.end_ns - span.start_ns - covered, 0)


def _ms(nanoseconds: int) -> float:
    return round(nanoseconds / 1e6, 3)
