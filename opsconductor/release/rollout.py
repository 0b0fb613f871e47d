"""Automated canary analysis: step the canary's share (default 10 → 50 → 100), optionally after
a mirror step (the weight stays 0 while a share of calls is copied to the canary, its replies
discarded, and the canary is judged on its own metrics of those copies), let traffic flow for
an interval, and judge the canary against the SLO, against stable, and from the gateway's
view of its share. Too few canary calls holds the step; past the hold deadline the rollout
fails. A failure (or an abort) rolls back at once; passing every step promotes the canary. The
stack is acted on through callbacks and paused, resumed or aborted through a Control, so this
runs in tests with a fake query, fake actions and a fake clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from opsconductor.observability import edge
from opsconductor.release.analysis import (CanaryCriteria, EdgeReading, Query, Reading, comparison_notes,
                                           edge_problems, millis, percent, queries, read, read_edge,
                                           step_verdict, success, window_for)

# Without --hold-timeout, a step may hold for traffic this many intervals.
HOLD_INTERVALS = 5
# Samples for the report's plot taken within each interval.
SAMPLES_PER_INTERVAL = 6
PROMOTED, ROLLED_BACK, ABORTED, STOPPED = "promoted", "rolled back", "aborted", "stopped"


@dataclass(frozen=True)
class Policy:
    steps: tuple[int, ...] = (10, 50, 100)
    interval_s: float = 60.0
    hold_timeout_s: float | None = None  # None: HOLD_INTERVALS intervals
    criteria: CanaryCriteria = field(default_factory=CanaryCriteria)
    scrape_interval_s: float = 15.0  # of the Prometheus the analysis reads
    edge: bool = True  # judge the canary from the gateway's view as well
    smoke: bool = False  # a smoke test pinned to the canary before the first step and after each
    mirror: int = 0  # percent of calls mirrored to the canary in a first step at weight 0 (0: no such step)

    @property
    def window(self) -> str:
        return window_for(self.interval_s, self.scrape_interval_s)

    @property
    def sample_window(self) -> str:
        """The shorter window of the plot's samples (still four scrapes)."""
        return window_for(self.interval_s / SAMPLES_PER_INTERVAL, self.scrape_interval_s)

    @property
    def hold_timeout(self) -> float:
        return self.hold_timeout_s if self.hold_timeout_s is not None else HOLD_INTERVALS * self.interval_s


@dataclass
class Step:
    weight: int
    mirror: int = 0  # percent of calls mirrored to the canary (a mirror step: weight 0)
    canary: Reading | None = None
    stable: Reading | None = None
    edge: EdgeReading | None = None
    verdict: str = "pending"
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the verdict could not take into account
    started_at: float = 0.0
    ended_at: float | None = None
    judged: int = 0  # readings taken (more than one when the step held)
    samples: list[dict] = field(default_factory=list)  # for the plot

    @property
    def label(self) -> str:
        return f"mirror {self.mirror} %" if self.mirror else f"{self.weight} %"


@dataclass(frozen=True)
class Actions:
    """What the rollout does to the stack; `smoke` (optional) returns the checks that failed;
    `set_mirror(percent)` (needed for a mirror step) keeps the weight at 0 and mirrors that
    share of calls to the canary, 0 turning mirroring off."""

    set_weight: Callable[[int], object]
    promote: Callable[[], object]
    rollback: Callable[[], object]
    smoke: Callable[[], list[str]] | None = None
    set_mirror: Callable[[int], object] | None = None


class Control:
    """Pause, resume and abort, from another thread, reaching the rollout within a step;
    `stopping` is set when the stack stops (the restart policy then applies)."""

    def __init__(self, stopping: threading.Event | None = None) -> None:
        self.stopping = stopping or threading.Event()
        self.paused = threading.Event()
        self.aborted = threading.Event()
        self.abort_reason = ""
        self._poked = threading.Event()

    def pause(self) -> None:
        self.paused.set()

    def resume(self) -> None:
        self.paused.clear()
        self._poked.set()

    def abort(self, reason: str = "aborted on request") -> None:
        self.abort_reason = reason
        self.aborted.set()
        self._poked.set()

    def nap(self, seconds: float) -> None:
        """Sleeps up to `seconds`, woken early by resume or abort."""
        self._poked.wait(min(seconds, 0.25))  # short slices: `stopping` is someone else's Event
        self._poked.clear()

    def interrupted(self) -> str | None:
        if self.aborted.is_set():
            return ABORTED
        if self.stopping.is_set():
            return STOPPED
        return None


@dataclass
class Result:
    outcome: str  # promoted, rolled back, aborted, stopped
    steps: list[Step]

    @property
    def promoted(self) -> bool:
        return self.outcome == PROMOTED


def check_mirror(value: object) -> int:
    """The mirrored share of a mirror step, 0 (none) to 100; ValueError naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ValueError(f"mirror must be a whole percentage from 0 to 100, not {value!r}")
    return value


def parse_steps(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"steps must be whole percentages separated by commas, not {text!r}") from None
    if not steps or any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(set(steps)):
        raise ValueError(f"steps must rise strictly within 1-100, not {text!r}")
    return steps


class _Run:
    """One rollout's loop, its clock and its pauses."""

    def __init__(self, query: Query, actions: Actions, policy: Policy, echo: Callable[[str], None],
                 sleep: Callable[[float], None], clock: Callable[[], float], observe: Callable[[list[Step]], object],
                 control: Control) -> None:
        self.query, self.actions, self.policy, self.echo = query, actions, policy, echo
        self.sleep, self.clock, self.observe, self.control = sleep, clock, observe, control
        self.steps: list[Step] = []

    def wait(self, seconds: float, step: Step) -> tuple[str | None, float]:
        """Lets `seconds` of unpaused time pass, sampling for the plot; returns (ABORTED or
        STOPPED when cut short, else None; the seconds spent paused)."""
        every = self.policy.interval_s / SAMPLES_PER_INTERVAL
        left, paused_for, since_sample = seconds, 0.0, 0.0
        while left > 0:
            stop = self.control.interrupted()
            if stop:
                return stop, paused_for
            started = self.clock()
            if self.control.paused.is_set():
                self.echo(f"paused at {step.label}: the weight stays; `canary rollout resume` goes on")
                self.observe(self.steps)
                while self.control.paused.is_set() and not self.control.interrupted():
                    self.sleep(1.0)
                paused_for += self.clock() - started
                if not self.control.interrupted():
                    self.echo(f"resumed at {step.label}")
                    self.observe(self.steps)
                continue
            self.sleep(min(left, every - since_sample, 1.0))
            spent = self.clock() - started
            left -= spent
            since_sample += spent
            if since_sample >= every - 1e-9:
                since_sample = 0.0
                self.sample(step)
        return None, paused_for

    def sample(self, step: Step) -> None:
        window = self.policy.sample_window
        point = {"at": time.time(), "weight": step.weight, "mirror": step.mirror}
        for pool in ("canary", "stable"):
            reading = read(self.query, window, pool)
            point[pool] = {"calls": reading.calls, "error_ratio": reading.error_ratio, "p99_s": reading.p99_s}
        if self.policy.edge:  # the canary's share as the gateway saw it
            seen = read_edge(self.query, window, "canary")
            point["gateway"] = {"calls": seen.calls, "error_ratio": seen.error_ratio, "p99_s": seen.p99_s}
        step.samples.append(point)

    def judge(self, step: Step) -> None:
        policy = self.policy
        step.canary = read(self.query, policy.window, "canary")
        step.stable = read(self.query, policy.window, "stable")
        step.verdict, step.reasons = step_verdict(step.weight, step.canary, step.stable, policy.criteria)
        step.notes = comparison_notes(step.weight, step.stable, policy.criteria)
        step.judged += 1
        if policy.edge:
            step.edge = read_edge(self.query, policy.window, "canary")
            # A mirror step routes no call to the canary's share (the copies go to its hosts
            # directly), so its hosts must be healthy as at any weight above 0.
            at_edge = edge_problems(step.weight or step.mirror, step.edge, policy.criteria)
            if at_edge:  # evidence even while too few calls reached the canary itself
                reasons = [] if step.verdict == "hold" else step.reasons
                step.verdict, step.reasons = "fail", reasons + at_edge

    def smoke(self, when: str) -> list[str]:
        if self.actions.smoke is None:
            return []
        failed = self.actions.smoke()
        self.echo(f"smoke test pinned to the canary {when}: {'FAILED ' + '; '.join(failed) if failed else 'passed'}")
        return failed

    def run(self) -> Result:
        policy = self.policy
        failed = self.smoke("before the first step")
        if failed:
            step = Step(0, verdict="fail", reasons=[f"smoke: {problem}" for problem in failed],
                        started_at=time.time(), ended_at=time.time())
            self.steps.append(step)
            return self.roll_back(ROLLED_BACK)
        planned = [Step(0, mirror=policy.mirror)] if policy.mirror else []
        for step in [*planned, *(Step(weight) for weight in policy.steps)]:
            verdict = self.run_step(step)
            if verdict == "fail":
                return self.roll_back(ROLLED_BACK)
            if verdict in (ABORTED, STOPPED):
                return self.roll_back(ABORTED) if verdict == ABORTED else self.finish(STOPPED)
        self.actions.promote()
        return self.finish(PROMOTED)

    def run_step(self, step: Step) -> str:
        """Sets the step up, watches and judges it; its verdict (or ABORTED, STOPPED). Mirroring
        is on during a mirror step only: off again whatever its verdict (a stop leaves that to
        the restart policy, which starts the gateways with none)."""
        set_mirror = self.actions.set_mirror
        if step.mirror:
            if set_mirror is None:
                raise ValueError("a mirror step needs the stack's set_mirror action")
            set_mirror(step.mirror)
        else:
            self.actions.set_weight(step.weight)
        step.started_at = time.time()
        try:
            return self.watch(step)
        finally:
            if step.mirror and set_mirror is not None and step.verdict != STOPPED:
                set_mirror(0)
                self.echo("mirroring to the canary is off")

    def watch(self, step: Step) -> str:
        policy = self.policy
        self.steps.append(step)
        self.observe(self.steps)
        what = (f"weight 0, {step.mirror} % of calls mirrored to the canary (replies discarded)" if step.mirror
                else f"{step.weight} %")
        self.echo(f"step {what}: watching for {policy.interval_s:g} s (window {policy.window}) …")
        held_since = self.clock()
        while True:
            stop, paused_for = self.wait(policy.interval_s, step)
            held_since += paused_for
            if stop:
                step.verdict, step.ended_at = stop, time.time()
                step.reasons.append(self.control.abort_reason if stop == ABORTED else "the stack stopped")
                return stop
            self.judge(step)
            self.observe(self.steps)
            self.echo(line(step))
            if step.verdict != "hold":
                break
            if self.clock() - held_since >= policy.hold_timeout:
                step.verdict = "fail"
                step.reasons.append(f"held {policy.hold_timeout:g} s without enough canary traffic")
                break
        if step.verdict == "pass":
            problems = self.smoke(f"after the {step.label} step")
            if problems:
                step.verdict, step.reasons = "fail", [f"smoke: {problem}" for problem in problems]
        step.ended_at = time.time()
        return step.verdict

    def roll_back(self, outcome: str) -> Result:
        started = time.monotonic()
        self.actions.rollback()
        self.echo(f"rolled back to stable in {(time.monotonic() - started) * 1000:.0f} ms")
        return self.finish(outcome)

    def finish(self, outcome: str) -> Result:
        self.observe(self.steps)
        return Result(outcome, self.steps)


def rollout(query: Query, actions: Actions, policy: Policy, echo: Callable[[str], None] = print,
            sleep: Callable[[float], None] | None = None, clock: Callable[[], float] = time.monotonic,
            observe: Callable[[list[Step]], object] = lambda steps: None,
            control: Control | None = None) -> Result:
    """Runs the analysis. `observe` sees the steps after each change (a weight set, a verdict
    given), for whoever shows the rollout as it runs."""
    control = control or Control()
    return _Run(query, actions, policy, echo, sleep or control.nap, clock, observe, control).run()


def line(step: Step) -> str:
    """One judged reading of a step, as the rollout prints it."""
    canary = step.canary
    assert canary is not None
    edge = ""
    if step.edge is not None:
        edge = (f"; gateway {step.edge.calls:.0f} calls, {step.edge.bad:.0f} failed/refused/failed over")
    notes = f" ({'; '.join(step.notes)})" if step.notes else ""
    return (f"  {step.label}: canary {canary.calls:.0f} calls, errors {percent(canary.error_ratio)}, "
            f"p99 {millis(canary.p99_s)}{edge} → {step.verdict}"
            f"{': ' + '; '.join(step.reasons) if step.reasons else ''}{notes}")


def step_data(step: Step) -> dict:
    """A step as data: what `-o json` shows and the rollout's records hold."""
    return {"weight": step.weight, "mirror": step.mirror, "verdict": step.verdict, "reasons": list(step.reasons),
            "notes": list(step.notes),
            "canary": asdict(step.canary) if step.canary else None,
            "stable": asdict(step.stable) if step.stable else None,
            "edge": asdict(step.edge) if step.edge else None,
            "started_at": step.started_at, "ended_at": step.ended_at,
            "took_s": None if step.ended_at is None else round(step.ended_at - step.started_at, 2),
            "judged": step.judged, "samples": list(step.samples)}


def record(policy: Policy, steps: list[Step], started_at: float, outcome: str | None = None, **extra: object) -> dict:
    """The rollout as data (what the mesh view and `canary rollout status|history` read):
    running until `outcome` is given."""
    return {"running": outcome is None, "outcome": outcome, "started_at": started_at, "updated_at": time.time(),
            "ended_at": None if outcome is None else time.time(),
            "interval_s": policy.interval_s, "window": policy.window, "hold_timeout_s": policy.hold_timeout,
            "scrape_interval_s": policy.scrape_interval_s, "min_calls": policy.criteria.min_calls,
            "edge": policy.edge, "smoke": policy.smoke, "mirror": policy.mirror,
            "steps": list(policy.steps), "weight": steps[-1].weight if steps else None,
            "history": [step_data(step) for step in steps], **extra}


def report(steps: list[Step], outcome: str) -> str:
    lines = [f"\n{'step':>5} {'pool':7} {'calls':>7} {'success':>9} {'p95':>10} {'p99':>10}  verdict"]
    for step in steps:
        for name, reading in (("canary", step.canary), ("stable", step.stable)):
            if reading is None:
                continue
            verdict = f"{step.verdict.upper()} {'; '.join(step.reasons)}" if name == "canary" else ""
            lines.append(f"{_tag(step)} {name:7} {reading.calls:>7.0f} {success(reading):>9} "
                         f"{millis(reading.p95_s):>10} {millis(reading.p99_s):>10}  {verdict}")
        if step.edge is not None:
            lines.append(f"{_tag(step)} {'gateway':7} {step.edge.calls:>7.0f} "
                         f"{'—' if step.edge.error_ratio is None else f'{(1 - step.edge.error_ratio) * 100:.2f} %':>9} "
                         f"{'':>10} {millis(step.edge.p99_s):>10}  {step.edge.failovers:.0f} failed over, "
                         f"{step.edge.upstream_failures:.0f} refused/reset")
        for note in step.notes:
            lines.append(f"{_tag(step)} note: {note}")
    lines.append(f"\nrollout {outcome}")
    return "\n".join(lines)


def _tag(step: Step) -> str:
    """A step in the report's first column: "  50%", or "m 20%" for a mirror step."""
    return f"m{step.mirror:>3}%" if step.mirror else f"{step.weight:>4}%"


def plan(policy: Policy) -> str:
    """What --dry-run prints: the steps, the criteria and every query."""
    c = policy.criteria
    mirror = [f"mirror {policy.mirror} % at weight 0"] if policy.mirror else []
    lines = [f"steps {', '.join([*mirror, *(f'{s} %' for s in policy.steps)])}; {policy.interval_s:g} s each (window "
             f"{policy.window}, Prometheus scrapes every {policy.scrape_interval_s:g} s); at least "
             f"{c.min_calls} canary calls (hold up to {policy.hold_timeout:g} s)",
             f"SLO: error rate < {percent(c.slo.max_error_ratio)}, p95 < {millis(c.slo.max_p95_s, 0)}, "
             f"p99 < {millis(c.slo.max_p99_s, 0)}; against stable: error rate at most "
             f"+{percent(c.max_error_delta)}, p99 at most ×{c.max_latency_ratio:g}"]
    if policy.smoke:
        lines.append("smoke test pinned to the canary (x-canary: always) before the first step and after each")
    for pool in ("canary", "stable"):
        for name, expr in queries(policy.window, pool).items():
            lines.append(f"  {pool} {name}: {expr}")
    if policy.edge:
        for name, expr in edge.queries(policy.window, "canary").items():
            lines.append(f"  gateway canary {name}: {expr}")
    return "\n".join(lines)
