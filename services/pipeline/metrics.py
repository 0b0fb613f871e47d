"""The pipeline's own metrics: selector searches, cache, choices, accuracy, and tool runs."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.metrics import DURATION_BUCKETS

SELECTOR_ERROR_REASONS = ("no_match", "unknown_tool", "platform")
RUN_OUTCOMES = ("ok", "error", "cancelled", "refused")
# The platform label's value for any platform no tool runs on: callers name platforms, and a
# label value per name would let them mint series.
OTHER_PLATFORM = "other"


class PipelineMetrics:
    def __init__(self, registry: CollectorRegistry, tool_names: Iterable[str], platforms: Iterable[str]) -> None:
        self.searches = Counter("selector_search_total", "Selector searches (calls that named no tool).",
                                ("platform",), registry=registry)
        self.search_seconds = Histogram("selector_search_duration_seconds", "Time to choose a tool.",
                                        ("platform",), buckets=DURATION_BUCKETS, registry=registry)
        self.cache_hits = Counter("selector_cache_hits_total", "Selector answers served from the cache.",
                                  registry=registry)
        self.cache_misses = Counter("selector_cache_misses_total", "Selector answers computed afresh.",
                                    registry=registry)
        self.selections = Counter("selector_selections_total", "Tools chosen by the selector.", ("tool",),
                                  registry=registry)
        self.selector_errors = Counter("selector_errors_total", "Requests for which no tool could be chosen.",
                                       ("reason",), registry=registry)
        self.accuracy = Gauge("selector_accuracy_ratio",
                              "Share of the shipped labelled inputs for which the selector picks the expected tool.",
                              registry=registry)
        self.eval_cases = Gauge("selector_eval_cases", "Number of labelled inputs behind selector_accuracy_ratio.",
                                registry=registry)
        self.tool_runs = Counter("pipeline_tool_runs_total", "Tool runs by outcome.", ("tool", "outcome"),
                                 registry=registry)
        self._platforms = frozenset(platforms)
        # Series exist from the start, so ratios read 0 rather than "no data".
        for platform in (*sorted(self._platforms), OTHER_PLATFORM):
            self.searches.labels(platform)
            self.search_seconds.labels(platform)
        for reason in SELECTOR_ERROR_REASONS:
            self.selector_errors.labels(reason)
        for tool in tool_names:
            self.selections.labels(tool)
            for outcome in RUN_OUTCOMES:
                self.tool_runs.labels(tool, outcome)

    def platform_label(self, platform: str) -> str:
        return platform if platform in self._platforms else OTHER_PLATFORM
