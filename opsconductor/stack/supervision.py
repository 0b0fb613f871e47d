"""The supervisor: starts components and waits for their readiness, restarts one that exits
unasked (exponential backoff, then crash-looping past the limit), replaces one on command, and
stops them all, newest first. It knows nothing of the mesh; the stack hands it ComponentSpecs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from opsconductor.stack.components import CRASH_LOOPING, RESTARTING, RUNNING, STARTING, STOPPED, ComponentSpec
from opsconductor.stack.processes import Child, exit_reason

_LOGGER = logging.getLogger(__name__)
WATCH_INTERVAL_S = 0.1


class StartError(RuntimeError):
    """A component did not become ready (it exited, or timed out); the message has its last lines."""


class Stopping(RuntimeError):
    """The supervisor is stopping: nothing more is started."""


@dataclass
class Supervised:
    """A component and what happened to it."""

    spec: ComponentSpec
    child: Child | None = None
    state: str = STOPPED
    started_at: float | None = None  # wall clock of the current process's start
    ready_since: float | None = None  # monotonic, while it has been ready
    restarts: int = 0  # restarts done automatically
    failures: int = 0  # unasked exits in a row
    last_exit: str = ""  # e.g. "signal 9 (SIGKILL)", "exit code 2"
    last_exit_at: float | None = None
    held: bool = False  # an operation or a drill owns it: no automatic restart
    restarter: threading.Thread | None = field(default=None, repr=False)
    wake: threading.Event = field(default_factory=threading.Event, repr=False)  # ends a backoff early

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None and self.child.popen is not None else None


class Supervisor:
    def __init__(self, log_dir: Path, on_change: Callable[[], None] = lambda: None) -> None:
        self.log_dir = log_dir
        self.on_change = on_change
        self.components: dict[str, Supervised] = {}  # in start order
        # Held while the table changes; whoever reads the table (the state writer) takes it first.
        self.lock = threading.RLock()
        self._stopping = threading.Event()
        self._gave_up: list[str] = []  # essential components that could not be kept up

    # --- starting ------------------------------------------------------------------------------

    def start(self, spec: ComponentSpec) -> None:
        """Starts a new component and waits until it is ready; raises StartError."""
        with self.lock:
            if spec.name in self.components and self.components[spec.name].state != STOPPED:
                raise ValueError(f"{spec.name} is already running")
            entry = self.components.setdefault(spec.name, Supervised(spec))
            entry.spec, entry.held = spec, True
        try:
            self._run_once(entry)
        finally:
            entry.held = False

    def _run_once(self, entry: Supervised) -> None:
        """Spawns the component's process and waits for it to be ready."""
        spec = entry.spec
        with self.lock:
            if self._stopping.is_set():
                raise Stopping(f"not starting {spec.name}: the stack is stopping")
            try:
                if spec.before_start is not None:
                    spec.before_start()
                entry.child = Child(spec.name, spec.argv, spec.env, self.log_dir / f"{spec.name}.log",
                                    cwd=spec.cwd).start()
            except (OSError, ValueError, RuntimeError) as error:  # a missing binary, a config it cannot write
                raise StartError(f"{spec.name} could not be started: {error}") from None
            # A restart shows as "restarting" until the new process is ready.
            entry.state = RESTARTING if entry.state == RESTARTING else STARTING
            entry.started_at, entry.ready_since = time.time(), None
        self.on_change()
        try:
            entry.child.wait_until(lambda: self._stopping.is_set() or spec.ready(), spec.start_timeout_s,
                                   f"{spec.name} to be ready")
        except (RuntimeError, TimeoutError) as error:
            entry.child.stop(timeout=spec.stop_timeout_s)
            raise StartError(str(error)) from None
        if self._stopping.is_set():
            raise Stopping(f"{spec.name} started while the stack was stopping")
        if spec.after_ready is not None:
            spec.after_ready()
        with self.lock:
            entry.state, entry.ready_since = RUNNING, time.monotonic()
        self.on_change()

    # --- watching ------------------------------------------------------------------------------

    def watch(self, stop: threading.Event) -> str | None:
        """Restarts what exits unasked until `stop` is set (returns None) or an essential
        component cannot be kept up (returns why)."""
        while not stop.wait(WATCH_INTERVAL_S):
            with self.lock:
                for entry in self.components.values():
                    if entry.state == RUNNING and not entry.held and not entry.child.running():
                        self._exited(entry)
                if self._gave_up:
                    return self._gave_up[0]
        return None

    def _exited(self, entry: Supervised) -> None:
        """Called with the lock held when a running component's process has ended."""
        spec, now = entry.spec, time.monotonic()
        if entry.ready_since is not None and now - entry.ready_since >= spec.restart.stable_after_s:
            entry.failures = 0
        entry.failures += 1
        entry.last_exit, entry.last_exit_at = exit_reason(entry.child.popen.returncode), time.time()
        entry.ready_since = None
        if entry.failures > spec.restart.crash_loop_limit:
            self._give_up(entry)
            return
        delay = spec.restart.delay(entry.failures)
        entry.state = RESTARTING
        entry.wake.clear()
        _LOGGER.warning("%s exited (%s); restarting in %.1f s (failure %d in a row, limit %d)", spec.name,
                        entry.last_exit, delay, entry.failures, spec.restart.crash_loop_limit,
                        extra={"component": spec.name})
        entry.restarter = threading.Thread(target=self._restart, args=(entry, delay), name=f"restart {spec.name}",
                                           daemon=True)
        entry.restarter.start()
        self.on_change()

    def _give_up(self, entry: Supervised) -> None:
        spec = entry.spec
        entry.state = CRASH_LOOPING
        lines = entry.child.log_tail(15) if entry.child else ""
        report = (f"{spec.name} is crash-looping: {entry.failures} failures in a row, the last one {entry.last_exit}; "
                  f"not restarting it again. Its last lines:\n{lines}")
        _LOGGER.error("%s", report, extra={"component": spec.name})
        if spec.essential:
            self._gave_up.append(f"{spec.name} could not be kept up, so the stack stops: {report}")
        self.on_change()

    def _restart(self, entry: Supervised, delay: float) -> None:
        """The restart thread: waits out the backoff, starts the process, waits for readiness;
        a start that fails counts as another failure."""
        while True:
            entry.wake.wait(delay)
            if self._stopping.is_set() or entry.held:
                return
            try:
                self._run_once(entry)
            except Stopping:
                return
            except StartError as error:
                with self.lock:
                    entry.state = RESTARTING
                    entry.failures += 1
                    entry.last_exit = error.args[0].splitlines()[0]
                    entry.last_exit_at = time.time()
                    if entry.failures > entry.spec.restart.crash_loop_limit:
                        self._give_up(entry)
                        return
                    delay = entry.spec.restart.delay(entry.failures)
                _LOGGER.warning("%s did not come back (%s); next try in %.1f s", entry.spec.name, entry.last_exit,
                                delay, extra={"component": entry.spec.name})
                continue
            with self.lock:
                entry.restarts += 1
            _LOGGER.info("%s is back (restart %d, pid %s)", entry.spec.name, entry.restarts, entry.pid,
                         extra={"component": entry.spec.name})
            self.on_change()
            return

    # --- changes on command --------------------------------------------------------------------

    @contextmanager
    def holding(self, name: str) -> Iterator[Supervised]:
        """While inside, the component is the caller's: it is not restarted automatically, and
        a restart already under way is waited out first."""
        with self.lock:
            entry = self.components[name]
            entry.held = True
            entry.wake.set()
            restarter = entry.restarter
        if restarter is not None and restarter is not threading.current_thread():
            restarter.join(entry.spec.start_timeout_s + entry.spec.restart.max_backoff_s)
        try:
            yield entry
        finally:
            entry.held = False

    def stop_component(self, name: str) -> None:
        """Stops one component on purpose; it stays down until start_component or replace."""
        with self.holding(name) as entry:
            if entry.child is not None:
                code = entry.child.stop(timeout=entry.spec.stop_timeout_s)
                _LOGGER.info("stopped %s (%s)", name, exit_reason(code), extra={"component": name})
            entry.state, entry.ready_since, entry.started_at = STOPPED, None, None
        self.on_change()

    def start_component(self, name: str) -> None:
        """Starts a stopped or crash-looping component again, with a fresh failure count."""
        with self.holding(name) as entry:
            if entry.state in (RUNNING, STARTING):
                return
            entry.failures = 0
            self._run_once(entry)

    def replace(self, *specs: ComponentSpec) -> None:
        """Stops the components (the last one first) and starts them as `specs` say, in order
        (a new version, other environment); raises StartError when one does not become ready
        (what was not started stays stopped, for the caller to put back)."""
        with ExitStack() as held:
            entries = [held.enter_context(self.holding(spec.name)) for spec in specs]
            for entry in reversed(entries):
                if entry.child is not None:
                    entry.child.stop(timeout=entry.spec.stop_timeout_s)
                entry.state, entry.started_at, entry.ready_since = STOPPED, None, None
            self.on_change()
            for entry, spec in zip(entries, specs, strict=True):
                entry.spec, entry.failures = spec, 0
                self._run_once(entry)

    # --- stopping ------------------------------------------------------------------------------

    def stop_all(self) -> None:
        """Stops every component, newest first, gracefully (SIGTERM, SIGKILL after its grace)."""
        with self.lock:
            self._stopping.set()
            entries = list(self.components.values())
            for entry in entries:
                entry.wake.set()
        for entry in reversed(entries):
            entry.held = True
            if entry.child is not None and entry.child.running():
                code = entry.child.stop(timeout=entry.spec.stop_timeout_s)
                _LOGGER.info("stopped %s (%s)", entry.spec.name, exit_reason(code),
                             extra={"component": entry.spec.name})
            entry.state = STOPPED
        self.on_change()

    def running_children(self) -> list[Child]:
        with self.lock:
            return [e.child for e in self.components.values() if e.child is not None and e.child.running()]
