"""The automation service's call metrics: ai_requests_total, ai_request_duration_seconds
and ai_request_errors_total (both with the call's trace id as exemplar), and
ai_mirrored_requests_total, the share of those calls that were the gateway's mirrored copies."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.common.metrics import DURATION_BUCKETS, PRECREATED_CODES
from services.common.status import ERROR_REASONS

NO_TOOL = "none"


class ExecuteMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter("ai_requests_total", "Execute calls by tool and gRPC status.", ("tool", "status"),
                                 registry=registry)
        self._duration = Histogram("ai_request_duration_seconds", "Execute duration in the automation service.",
                                   ("tool",), buckets=DURATION_BUCKETS, registry=registry)
        self._errors = Counter("ai_request_errors_total", "Failed Execute calls by tool and error type.",
                               ("tool", "error_type"), registry=registry)
        # A mirrored call counts in the series above like any call (the canary's own metrics are
        # what a mirror step of a rollout judges: its weight is 0, so they hold mirrored calls
        # and pinned checks only), and here too, so a reader can tell how many were copies.
        # Stable never gets a mirrored call, so comparing the pools mixes nothing.
        self._mirrored = Counter("ai_mirrored_requests_total", "Execute calls that were the gateway's mirrored "
                                 "copies (replies discarded), by gRPC status.", ("status",), registry=registry)
        for code in PRECREATED_CODES:
            self._mirrored.labels(code)
        # Label values come only from the pipeline's catalogue, so a caller cannot mint series.
        self._known_tools: set[str] = set()
        for code in PRECREATED_CODES:
            self._requests.labels(NO_TOOL, code)
        for reason in ERROR_REASONS:
            self._errors.labels(NO_TOOL, reason)
        self._duration.labels(NO_TOOL)

    def learn_tools(self, names: list[str]) -> None:
        for name in names:
            if name not in self._known_tools:
                self._known_tools.add(name)
                # Every series a call of this tool can touch exists from now on, so no call
                # changes how many series there are.
                for code in PRECREATED_CODES:
                    self._requests.labels(name, code)
                for reason in ERROR_REASONS:
                    self._errors.labels(name, reason)
                self._duration.labels(name)

    def tool_label(self, name: str) -> str:
        return name if name in self._known_tools else NO_TOOL

    def observe(self, tool: str, code: str, reason: str | None, seconds: float, trace_id: str,
                sampled: bool = True, mirrored: bool = False) -> None:
        """`trace_id` (the OpenTelemetry trace id) is the exemplar of a failure, and of the
        latency sample when the call's spans were recorded (`sampled`): a latency exemplar
        should point at a trace a backend can show."""
        label = self.tool_label(tool)
        self._requests.labels(label, code).inc()
        if mirrored:
            self._mirrored.labels(code).inc()
        self._duration.labels(label).observe(seconds, exemplar={"trace_id": trace_id} if sampled else None)
        if reason is not None:
            # Every failure's trace id, sampled or not: it finds the call's log lines and its
            # line in Envoy's access log, and its timeline too when it was sampled.
            self._errors.labels(label, reason).inc(exemplar={"trace_id": trace_id})
