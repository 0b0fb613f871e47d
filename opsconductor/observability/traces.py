"""The trace store's client, and a trace shown as a waterfall in the terminal: one line per
span, indented under its parent, with its start offset, duration, status and a bar to scale."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

BAR_WIDTH = 24


class TraceError(RuntimeError):
    """The store knows no such trace, or refused the question."""


class StoreUnreachable(TraceError):
    """The store does not answer."""


def fetch(base_url: str, path: str, timeout: float = 5.0) -> dict:
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + path, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        try:
            message = json.load(error).get("error", "")
        except ValueError:
            message = ""
        raise TraceError(message or f"the trace store answered HTTP {error.code}") from None
    except (OSError, ValueError) as error:
        raise StoreUnreachable(f"the trace store at {base_url} does not answer ({error})") from None


def get_trace(base_url: str, trace_id: str) -> dict:
    return fetch(base_url, f"/v1/traces/{trace_id.strip().lower()}")


def slowest(base_url: str, count: int) -> list[dict]:
    return fetch(base_url, f"/v1/traces?slowest={count}")["traces"]


def waterfall_text(trace: dict) -> str:
    """The store's waterfall answer as text."""
    total = trace["duration_ms"] or 1e-9
    lines = [f"trace {trace['trace_id']}  {trace['duration_ms']:.2f} ms, {trace['span_count']} spans, "
             f"services: {', '.join(trace['services'])}" + ("" if trace["complete"] else "  (incomplete)"),
             f"{'offset':>10} {'duration':>10}  {'status':<18} {'':{BAR_WIDTH}}  span"]
    for span in trace["spans"]:
        start = round(span["offset_ms"] / total * BAR_WIDTH)
        width = max(1, round(span["duration_ms"] / total * BAR_WIDTH))
        bar = (" " * start + "█" * width)[:BAR_WIDTH].ljust(BAR_WIDTH)
        reason = span["reason"] if span["reason"] != span["outcome"] else ""
        status = f"{span['outcome']} {reason}".strip()
        mark = "  ← slowest (self %.2f ms)" % span["self_ms"] if span["slowest"] else ""
        lines.append(f"{span['offset_ms']:>7.2f} ms {span['duration_ms']:>7.2f} ms  {status:<18.18} {bar}  "
                     f"{'  ' * span['depth']}{span['service']}: {span['name']}{mark}")
    return "\n".join(lines)


def slowest_text(traces: list[dict]) -> str:
    if not traces:
        return "no traces in the store yet"
    lines = [f"{'duration':>10}  {'spans':>5}  {'errors':>6}  trace id                          root"]
    for t in traces:
        lines.append(f"{t['duration_ms']:>7.2f} ms  {t['span_count']:>5}  {t['errors']:>6}  {t['trace_id']}  "
                     f"{t['service']}: {t['name']}")
    return "\n".join(lines)
