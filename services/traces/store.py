"""Recent spans in SQLite, bounded in count and age: add, look up by trace id, list the slowest
traces. Plain Python; one connection shared by the receiver and the query threads under a lock."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

# A trace with more spans than this is answered with its earliest ones (a runaway or hostile
# sender cannot make one answer unbounded).
MAX_SPANS_PER_TRACE = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT NOT NULL,
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT NOT NULL,
    attributes BLOB NOT NULL,
    received_ns INTEGER NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_by_arrival ON spans (received_ns);
"""


@dataclass(frozen=True)
class SpanRecord:
    """One finished span, as kept: ids in lowercase hex, times in Unix nanoseconds."""

    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root
    service: str
    name: str
    kind: str  # SERVER, CLIENT, INTERNAL, PRODUCER, CONSUMER or UNSPECIFIED
    start_ns: int
    end_ns: int
    status: str = "UNSET"  # UNSET, OK or ERROR
    status_message: str = ""
    attributes: Mapping[str, str | int | float | bool] = field(default_factory=dict)  # as read back
    # The attributes as kept: opaque to the store, encoded and decoded by its user (otlp.py keeps
    # the span's own OTLP bytes, so an export costs no conversion; only a lookup decodes).
    encoded: bytes = b""


@dataclass(frozen=True)
class TraceSummary:
    """One trace in a listing."""

    trace_id: str
    service: str  # of its earliest span
    name: str
    start_ns: int
    duration_ns: int
    span_count: int
    errors: int


class SpanStore:
    def __init__(self, path: str, max_spans: int, max_age_s: float,
                 decode: Callable[[bytes], Mapping[str, str | int | float | bool]] = lambda encoded: {},
                 clock: Callable[[], int] = time.time_ns) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        # A disk file survives a crash; losing the last seconds of spans in one is acceptable.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._lock = threading.Lock()
        self._max_spans = max_spans
        self._max_age_ns = int(max_age_s * 1e9)
        self._clock = clock
        self._decode = decode
        self._count = self._db.execute("SELECT COUNT(*) FROM spans").fetchone()[0]

    def add(self, spans: Iterable[SpanRecord]) -> int:
        """Stores spans (a span sent twice is kept once); returns how many the size bound then
        pruned. The age bound is applied by `prune`, which the service runs periodically."""
        now = self._clock()
        rows = [(s.trace_id, s.span_id, s.parent_span_id, s.service, s.name, s.kind, s.start_ns, s.end_ns,
                 s.status, s.status_message, s.encoded, now) for s in spans]
        if not rows:
            return 0
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN")
            # A span sent again (an export retried after a lost answer) keeps its first copy.
            self._db.executemany("INSERT OR IGNORE INTO spans VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            self._db.execute("COMMIT")
            self._count += self._db.total_changes - before
            return self._prune_size()

    def prune(self) -> tuple[int, int]:
        """Drops spans older than the age bound, then the oldest beyond the size bound; returns
        (by age, by size)."""
        cutoff = self._clock() - self._max_age_ns
        with self._lock:
            aged = self._db.execute("DELETE FROM spans WHERE received_ns < ?", (cutoff,)).rowcount
            self._count -= aged
            return aged, self._prune_size()

    def _prune_size(self) -> int:
        excess = self._count - self._max_spans
        if excess <= 0:
            return 0
        removed = self._db.execute(
            "DELETE FROM spans WHERE rowid IN (SELECT rowid FROM spans ORDER BY received_ns, rowid LIMIT ?)",
            (excess,)).rowcount
        self._count -= removed
        return removed

    @property
    def count(self) -> int:
        return self._count

    def trace(self, trace_id: str) -> list[SpanRecord]:
        """The trace's spans by start time (at most MAX_SPANS_PER_TRACE); [] when unknown."""
        with self._lock:
            rows = self._db.execute(
                "SELECT trace_id, span_id, parent_span_id, service, name, kind, start_ns, end_ns, status, "
                "status_message, attributes FROM spans WHERE trace_id = ? ORDER BY start_ns, span_id LIMIT ?",
                (trace_id, MAX_SPANS_PER_TRACE)).fetchall()
        return [SpanRecord(*row[:10], attributes=self._decode(row[10])) for row in rows]

    def slowest(self, limit: int) -> list[TraceSummary]:
        """The `limit` recent traces that took longest, first to last span end."""
        with self._lock:
            rows = self._db.execute(
                "SELECT trace_id, MIN(start_ns), MAX(end_ns) - MIN(start_ns) AS duration, COUNT(*), "
                "SUM(status = 'ERROR') FROM spans GROUP BY trace_id ORDER BY duration DESC, trace_id LIMIT ?",
                (limit,)).fetchall()
            summaries = []
            for trace_id, start, duration, count, errors in rows:
                service, name = self._db.execute(
                    "SELECT service, name FROM spans WHERE trace_id = ? ORDER BY start_ns, end_ns DESC LIMIT 1",
                    (trace_id,)).fetchone()
                summaries.append(TraceSummary(trace_id, service, name, start, duration, count, errors))
        return summaries

    def close(self) -> None:
        with self._lock:
            self._db.close()
