"""Changes the supervisor carries out, one at a time. Each is an operation with an id, run on a
thread of the supervisor's own (so a client that goes away cannot cut it in half), its
progress kept in the state directory after every step and streamed to whoever follows it.
A second change while one runs is refused with "busy: … in progress", or waits its turn."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from opsconductor.stack import state

_LOGGER = logging.getLogger(__name__)

Say = Callable[[str], None]


class Progress:
    """What an operation's work is handed: call it with a line to report a step (kept and sent
    to every follower at once); `stop_requested` is set when the work should stop at its next
    safe point (the stack is stopping), so a long operation can end cleanly between steps."""

    def __init__(self, say: Say) -> None:
        self._say = say
        self.stop_requested = threading.Event()

    def __call__(self, line: str) -> None:
        self._say(line)


# The work of an operation: reports progress through its Progress, returns its result (or None).
Work = Callable[[Progress], dict | None]


class Busy(RuntimeError):
    """Another operation is running."""

    def __init__(self, running: state.OperationState) -> None:
        age = time.time() - running.started_at
        super().__init__(f"busy: {running.kind} in progress (operation {running.id}, started {age:.0f} s ago)")
        self.running = running


class Operations:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._changed = threading.Condition()
        self._current: state.OperationState | None = None
        self._known: dict[int, state.OperationState] = {op.id: op for op in state.read_operations(state_dir)}
        self._next_id = max(self._known, default=0) + 1
        self._closed = False
        self._progress: Progress | None = None  # the running operation's

    def submit(self, kind: str, description: str, work: Work) -> state.OperationState:
        """Starts `work` as a new operation and returns it at once; raises Busy."""
        with self._changed:
            if self._closed:
                raise RuntimeError("the stack is stopping; it takes no more commands")
            if self._current is not None:
                raise Busy(self._current)
            operation = state.OperationState(self._next_id, kind, description, started_at=time.time())
            self._next_id += 1
            self._current = self._known[operation.id] = operation
            self._save(operation)
        _LOGGER.info("operation %d: %s", operation.id, description)
        threading.Thread(target=self._run, args=(operation, work), name=f"operation {operation.id}",
                         daemon=True).start()
        return operation

    def wait_idle(self, timeout: float) -> bool:
        """Waits up to `timeout` s for no operation to be running; whether none is."""
        with self._changed:
            return self._changed.wait_for(lambda: self._current is None, timeout)

    def _run(self, operation: state.OperationState, work: Work) -> None:
        progress = Progress(lambda line: self._say(operation, line))
        with self._changed:
            self._progress = progress
            if self._closed:
                progress.stop_requested.set()
        try:
            result = work(progress)
            outcome = {"state": "succeeded", "result": result or {}}
        except Exception as error:  # the operation fails; the stack and its control channel go on
            _LOGGER.warning("operation %d (%s) failed: %s", operation.id, operation.kind, error)
            outcome = {"state": "failed", "error": str(error)}
        with self._changed:
            if operation.finished:  # cut short by close(): the record says so already
                return
            for key, value in outcome.items():
                setattr(operation, key, value)
            operation.ended_at = time.time()
            self._save(operation)
            if self._current is operation:
                self._current = None
            self._changed.notify_all()

    def _say(self, operation: state.OperationState, line: str) -> None:
        _LOGGER.info("operation %d: %s", operation.id, line)
        with self._changed:
            operation.progress.append(line)
            self._save(operation)
            self._changed.notify_all()

    def _save(self, operation: state.OperationState) -> None:
        state.write_operation(self.state_dir, operation)

    def get(self, operation_id: int) -> state.OperationState | None:
        with self._changed:
            found = self._known.get(operation_id)
            return None if found is None else replace(found, progress=list(found.progress))

    def current(self) -> state.OperationState | None:
        with self._changed:
            return None if self._current is None else replace(self._current, progress=list(self._current.progress))

    def follow(self, operation_id: int, heartbeat_s: float = 5.0) -> Iterator[str | state.OperationState | None]:
        """Yields each progress line of the operation as it comes (from the first), None as a
        heartbeat every `heartbeat_s` without news, and at the end the finished operation."""
        operation, seen = self._known[operation_id], 0

        def news() -> bool:
            return len(operation.progress) > seen or operation.finished

        while True:
            with self._changed:
                self._changed.wait_for(news, heartbeat_s)
                lines, finished = operation.progress[seen:], operation.finished
                snapshot = replace(operation, progress=list(operation.progress))
            seen += len(lines)
            yield from lines
            if finished:
                yield snapshot
                return
            if not lines:
                yield None

    def close(self, reason: str) -> None:
        """Takes no more operations; a running one is recorded as cut short by `reason`."""
        with self._changed:
            self._closed = True
            if self._progress is not None:
                self._progress.stop_requested.set()
            running = self._current
            if running is not None:
                running.state, running.error, running.ended_at = "failed", reason, time.time()
                self._save(running)
                self._current = None
            self._changed.notify_all()
