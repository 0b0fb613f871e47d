"""The query definitions evaluated on the processes' own /metrics pages, for a stack without
Prometheus: two scrapes of every target make a window, and rate, increase, ratio and
histogram quantile follow Prometheus's own rules (counter resets, linear interpolation within
a bucket, the highest finite bound when the rank falls in +Inf)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opsconductor.observability import queries
from opsconductor.observability.prometheus import Sample, scrape
from opsconductor.observability.queries import Scope, Series

Key = tuple[str, ...]


@dataclass(frozen=True)
class Target:
    """A /metrics page and the labels Prometheus would give its samples."""

    url: str
    job: str
    pool: str
    instance: str


@dataclass(frozen=True)
class Snapshot:
    """Every target's samples at one moment, target labels added; targets that did not answer
    are listed, so a missing process reads as unknown rather than as zero."""

    at: float
    samples: tuple[Sample, ...]
    unreachable: tuple[str, ...] = ()


def take(targets: Iterable[Target], read: Callable[[str], dict[str, list[Sample]]] = scrape,
         clock: Callable[[], float] = time.time) -> Snapshot:
    samples, unreachable = [], []
    for target in targets:
        try:
            page = read(target.url)
        except OSError:
            unreachable.append(target.instance)
            continue
        extra = {"job": target.job, "pool": target.pool, "instance": target.instance}
        for name, items in page.items():
            samples.extend(Sample({**item.labels, **extra, "__name__": name}, item.value) for item in items)
    return Snapshot(clock(), tuple(samples), tuple(unreachable))


class Window:
    """The change between two snapshots, queried like Prometheus over that window."""

    def __init__(self, old: Snapshot, new: Snapshot) -> None:
        self.old, self.new = old, new
        self.seconds = new.at - old.at
        if self.seconds <= 0:
            raise ValueError("a window needs two snapshots taken one after the other")

    def _deltas(self, series: Series, scope: Scope) -> list[tuple[dict[str, str], float]]:
        """Per series, how much the counter grew (a reset counts from zero, as rate() does)."""
        def selected(snapshot: Snapshot) -> dict[frozenset, tuple[dict[str, str], float]]:
            wanted = Series(series.metric, (*series.matchers, *scope.matchers()))
            return {frozenset(s.labels.items()): (s.labels, s.value) for s in snapshot.samples
                    if s.labels.get("__name__") == series.metric and wanted.matches(s.labels)}

        before, after = selected(self.old), selected(self.new)
        deltas = []
        for key, (labels, value) in after.items():
            if key not in before:
                continue  # a series first seen now has no rate yet, as in Prometheus
            previous = before[key][1]
            deltas.append((labels, value - previous if value >= previous else value))
        return deltas

    def increase(self, series: Series, scope: Scope, *extra: str) -> dict[Key, float]:
        groups: dict[Key, float] = {}
        for labels, delta in self._deltas(series, scope):
            key = tuple(labels.get(label, "") for label in (*scope.by, *extra))
            groups[key] = groups.get(key, 0.0) + delta
        return groups

    def rate(self, series: Series, scope: Scope, *extra: str) -> dict[Key, float]:
        return {key: value / self.seconds for key, value in self.increase(series, scope, *extra).items()}

    # --- the golden signals, as queries.py defines them ----------------------------------------

    def request_rate(self, scope: Scope) -> dict[Key, float]:
        return self.rate(queries.CALLS, scope)

    def calls(self, scope: Scope) -> dict[Key, float]:
        return self.increase(queries.CALLS, scope)

    def error_ratio(self, scope: Scope) -> dict[Key, float | None]:
        every, faults = self.increase(queries.CALLS, scope), self.increase(queries.FAULTS, scope)
        return {key: (faults.get(key, 0.0) / total if total else None) for key, total in every.items()}

    def latency_quantile(self, quantile: float, scope: Scope) -> dict[Key, float | None]:
        buckets: dict[Key, dict[float, float]] = {}
        for key, count in self.increase(queries.EXECUTE_DURATION, scope, "le").items():
            *group, le = key
            buckets.setdefault(tuple(group), {})[float(le)] = count
        return {key: histogram_quantile(quantile, counts) for key, counts in buckets.items()}


def histogram_quantile(quantile: float, buckets: dict[float, float]) -> float | None:
    """Prometheus's histogram_quantile over cumulative bucket counts by upper bound; None when
    the histogram is empty (where Prometheus says NaN)."""
    bounds = sorted(buckets)
    if not bounds or bounds[-1] != math.inf:
        return None
    total = buckets[math.inf]
    if total <= 0:
        return None
    rank = quantile * total
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == math.inf:
                return previous_bound if len(bounds) > 1 else None
            if count == previous_count:
                return bound
            start = previous_bound if previous_bound < bound else 0.0
            return start + (bound - start) * (rank - previous_count) / (count - previous_count)
        previous_bound, previous_count = bound, count
    return None
