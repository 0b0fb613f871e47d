"""Automated canary analysis: step the canary's share (default 10 → 50 → 100), let traffic flow
for an interval, and judge the canary against the SLO and against stable. Too few canary calls
holds the step; past the hold deadline the rollout fails. A failure rolls back at once; passing
every step promotes the canary. The stack is acted on through callbacks, so this runs in tests
with a fake query and fake actions."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from opsconductor.release.analysis import (CanaryCriteria, Query, Reading, millis, percent, queries, read,
                                           step_verdict, success)


@dataclass(frozen=True)
class Policy:
    steps: tuple[int, ...] = (10, 50, 100)
    interval_s: float = 60.0
    hold_timeout_s: float = 300.0
    criteria: CanaryCriteria = field(default_factory=CanaryCriteria)

    @property
    def window(self) -> str:
        return f"{max(int(self.interval_s), 5)}s"


@dataclass
class Step:
    weight: int
    canary: Reading | None = None
    stable: Reading | None = None
    verdict: str = "pending"
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Actions:
    """What the rollout does to the stack."""

    set_weight: Callable[[int], object]
    promote: Callable[[], object]
    rollback: Callable[[], object]


def parse_steps(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"steps must be whole percentages separated by commas, not {text!r}") from None
    if not steps or any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(set(steps)):
        raise ValueError(f"steps must rise strictly within 1-100, not {text!r}")
    return steps


def rollout(query: Query, actions: Actions, policy: Policy, echo: Callable[[str], None] = print,
            sleep: Callable[[float], None] = time.sleep,
            clock: Callable[[], float] = time.monotonic,
            observe: Callable[[list[Step]], object] = lambda steps: None) -> tuple[bool, list[Step]]:
    """Runs the analysis; returns (promoted, steps). `observe` sees the steps after each change
    (a weight set, a verdict given), for whoever shows the rollout as it runs."""
    steps: list[Step] = []
    for weight in policy.steps:
        actions.set_weight(weight)
        step = Step(weight)
        steps.append(step)
        observe(steps)
        echo(f"step {weight} %: watching for {policy.interval_s:g} s …")
        held_since = clock()
        while True:
            sleep(policy.interval_s)  # the step's observation interval
            step.canary = read(query, policy.window, "canary")
            step.stable = read(query, policy.window, "stable")
            step.verdict, step.reasons = step_verdict(weight, step.canary, step.stable, policy.criteria)
            observe(steps)
            echo(f"  {weight} %: canary {step.canary.calls:.0f} calls, errors {percent(step.canary.error_ratio)}, "
                 f"p99 {millis(step.canary.p99_s)} → {step.verdict}"
                 f"{': ' + '; '.join(step.reasons) if step.reasons else ''}")
            if step.verdict != "hold":
                break
            if clock() - held_since >= policy.hold_timeout_s:
                step.verdict = "fail"
                step.reasons.append(f"held {policy.hold_timeout_s:g} s without enough canary traffic")
                break
        if step.verdict == "fail":
            started = time.monotonic()
            actions.rollback()
            echo(f"rolled back to stable in {(time.monotonic() - started) * 1000:.0f} ms")
            return False, steps
    actions.promote()
    return True, steps


def step_data(step: Step) -> dict:
    """A step as data: what `-o json` shows and the mesh view's rollout record holds."""
    return {"weight": step.weight, "verdict": step.verdict, "reasons": list(step.reasons),
            "canary": asdict(step.canary) if step.canary else None,
            "stable": asdict(step.stable) if step.stable else None}


def record(policy: Policy, steps: list[Step], started_at: float, outcome: str | None = None) -> dict:
    """The rollout as data (what the mesh view reads): running until `outcome` is given."""
    return {"running": outcome is None, "outcome": outcome, "started_at": started_at, "updated_at": time.time(),
            "interval_s": policy.interval_s, "steps": list(policy.steps),
            "weight": steps[-1].weight if steps else None, "history": [step_data(step) for step in steps]}


def report(steps: list[Step], outcome: str) -> str:
    lines = [f"\n{'step':>5} {'pool':7} {'calls':>7} {'success':>9} {'p95':>10} {'p99':>10}  verdict"]
    for step in steps:
        for name, reading in (("canary", step.canary), ("stable", step.stable)):
            if reading is None:
                continue
            verdict = f"{step.verdict.upper()} {'; '.join(step.reasons)}" if name == "canary" else ""
            lines.append(f"{step.weight:>4}% {name:7} {reading.calls:>7.0f} {success(reading):>9} "
                         f"{millis(reading.p95_s):>10} {millis(reading.p99_s):>10}  {verdict}")
    lines.append(f"\nrollout {outcome}")
    return "\n".join(lines)


def plan(policy: Policy) -> str:
    """What --dry-run prints: the steps, the criteria and every query."""
    c = policy.criteria
    lines = [f"steps {', '.join(f'{s} %' for s in policy.steps)}; {policy.interval_s:g} s each; at least "
             f"{c.min_calls} canary calls (hold up to {policy.hold_timeout_s:g} s)",
             f"SLO: error rate < {percent(c.slo.max_error_ratio)}, p95 < {millis(c.slo.max_p95_s, 0)}, "
             f"p99 < {millis(c.slo.max_p99_s, 0)}; against stable: error rate at most "
             f"+{percent(c.max_error_delta)}, p99 at most ×{c.max_latency_ratio:g}"]
    for pool in ("canary", "stable"):
        for name, expr in queries(policy.window, pool).items():
            lines.append(f"  {pool} {name}: {expr}")
    return "\n".join(lines)
