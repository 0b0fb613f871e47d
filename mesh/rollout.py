"""`opsconductor canary rollout`: automated canary analysis on the running stack.

Steps the canary's share (default 10 → 50 → 100). At each step it lets traffic flow for an
interval, then compares the canary with the SLO (success by gRPC status, p95, p99) and, while
stable still has enough calls to compare, with stable. Too few canary calls holds the step;
past the hold deadline the rollout fails. A failure rolls back at once; passing every step
promotes the canary.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field

from mesh import promclient, slo


@dataclass(frozen=True)
class Policy:
    steps: tuple[int, ...] = (10, 50, 100)
    interval_s: float = 60.0
    min_calls: int = 50
    hold_timeout_s: float = 300.0
    max_error_ratio: float = slo.MAX_ERROR_RATIO
    max_p95_s: float = slo.MAX_P95_S
    max_p99_s: float = slo.MAX_P99_S
    # Canary against stable: at most this much worse in error ratio (absolute) and latency (ratio).
    max_error_delta: float = 0.005
    max_latency_ratio: float = 1.5
    latency_floor_s: float = 0.025  # below this, latency differences are noise


@dataclass
class PoolReading:
    calls: float
    error_ratio: float | None
    p95_s: float | None
    p99_s: float | None


@dataclass
class Step:
    weight: int
    canary: PoolReading | None = None
    stable: PoolReading | None = None
    verdict: str = "pending"
    reasons: list[str] = field(default_factory=list)


def queries(window: str, pool: str) -> dict[str, str]:
    return {"calls": slo.calls(window, pool), "error_ratio": slo.error_ratio(window, pool),
            "p95_s": slo.latency_quantile(0.95, window, pool), "p99_s": slo.latency_quantile(0.99, window, pool)}


def read_pool(prometheus_url: str, window: str, pool: str) -> PoolReading:
    values = {}
    for name, expr in queries(window, pool).items():
        value = promclient.scalar(prometheus_url, expr)
        values[name] = None if value is None or math.isnan(value) else value
    return PoolReading(calls=values["calls"] or 0.0, error_ratio=values["error_ratio"], p95_s=values["p95_s"],
                       p99_s=values["p99_s"])


def judge(step: Step, policy: Policy) -> None:
    """Sets the step's verdict: "hold" (too few calls), "fail" or "pass", with reasons."""
    canary, stable = step.canary, step.stable
    step.reasons = []
    if canary is None or canary.calls < policy.min_calls:
        step.verdict = "hold"
        step.reasons.append(f"{0 if canary is None else canary.calls:.0f} canary calls < {policy.min_calls}")
        return
    error = canary.error_ratio or 0.0
    if error >= policy.max_error_ratio:
        step.reasons.append(f"error rate {error:.2%} ≥ SLO {policy.max_error_ratio:.2%}")
    if canary.p95_s is not None and canary.p95_s >= policy.max_p95_s:
        step.reasons.append(f"p95 {canary.p95_s * 1000:.0f} ms ≥ SLO {policy.max_p95_s * 1000:.0f} ms")
    if canary.p99_s is not None and canary.p99_s >= policy.max_p99_s:
        step.reasons.append(f"p99 {canary.p99_s * 1000:.0f} ms ≥ SLO {policy.max_p99_s * 1000:.0f} ms")
    if stable is not None and stable.calls >= policy.min_calls and step.weight < 100:
        stable_error = stable.error_ratio or 0.0
        if error > stable_error + policy.max_error_delta:
            step.reasons.append(f"error rate {error:.2%} vs stable {stable_error:.2%}")
        if canary.p99_s is not None and stable.p99_s is not None:
            limit = max(stable.p99_s * policy.max_latency_ratio, policy.latency_floor_s)
            if canary.p99_s > limit:
                step.reasons.append(f"p99 {canary.p99_s * 1000:.0f} ms vs stable {stable.p99_s * 1000:.0f} ms")
    step.verdict = "fail" if step.reasons else "pass"


def parse_steps(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"steps must be whole percentages separated by commas, not {text!r}") from None
    if not steps or any(not 0 < s <= 100 for s in steps) or list(steps) != sorted(set(steps)):
        raise ValueError(f"steps must rise strictly within 1-100, not {text!r}")
    return steps


def _fmt(value: float | None, scale: float = 1000, unit: str = " ms") -> str:
    return "—" if value is None else f"{value * scale:.1f}{unit}"


def print_report(steps: list[Step], outcome: str) -> None:
    print(f"\n{'step':>5} {'pool':7} {'calls':>7} {'success':>9} {'p95':>10} {'p99':>10}  verdict")
    for step in steps:
        for name, reading in (("canary", step.canary), ("stable", step.stable)):
            if reading is None:
                continue
            success = "—" if reading.error_ratio is None else f"{(1 - reading.error_ratio) * 100:.2f} %"
            verdict = f"{step.verdict.upper()} {'; '.join(step.reasons)}" if name == "canary" else ""
            print(f"{step.weight:>4}% {name:7} {reading.calls:>7.0f} {success:>9} {_fmt(reading.p95_s):>10} "
                  f"{_fmt(reading.p99_s):>10}  {verdict}")
    print(f"\nrollout {outcome}")


def rollout(prometheus_url: str, set_weight, promote, rollback, policy: Policy, echo=print) -> tuple[bool, list[Step]]:
    """Runs the analysis; returns (promoted, steps). `set_weight`, `promote` and `rollback` act
    on the stack, so this stays testable without one."""
    window = f"{max(int(policy.interval_s), 5)}s"
    steps: list[Step] = []
    for weight in policy.steps:
        set_weight(weight)
        step = Step(weight)
        steps.append(step)
        echo(f"step {weight} %: watching for {policy.interval_s:g} s …")
        held_since = time.monotonic()
        while True:
            time.sleep(policy.interval_s)  # the step's observation interval
            step.canary = read_pool(prometheus_url, window, "canary")
            step.stable = read_pool(prometheus_url, window, "stable")
            judge(step, policy)
            echo(f"  {weight} %: canary {step.canary.calls:.0f} calls, "
                 f"errors {_fmt(step.canary.error_ratio, 100, ' %')}, p99 {_fmt(step.canary.p99_s)} → "
                 f"{step.verdict}{': ' + '; '.join(step.reasons) if step.reasons else ''}")
            if step.verdict != "hold":
                break
            if time.monotonic() - held_since >= policy.hold_timeout_s:
                step.verdict = "fail"
                step.reasons.append(f"held {policy.hold_timeout_s:g} s without enough canary traffic")
                break
        if step.verdict == "fail":
            started = time.monotonic()
            rollback()
            echo(f"rolled back to stable in {(time.monotonic() - started) * 1000:.0f} ms")
            return False, steps
    promote()
    return True, steps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", default="10,50,100", help="canary shares in order (default 10,50,100)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds per step (default 60)")
    parser.add_argument("--min-calls", type=int, default=50, help="canary calls needed to judge a step")
    parser.add_argument("--hold-timeout", type=float, default=300.0, help="seconds a step may hold for traffic")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the queries, change nothing")


def policy_from(args: argparse.Namespace) -> Policy:
    return Policy(steps=parse_steps(args.steps), interval_s=args.interval, min_calls=args.min_calls,
                  hold_timeout_s=args.hold_timeout)


def dry_run(policy: Policy) -> None:
    window = f"{max(int(policy.interval_s), 5)}s"
    print(f"steps {', '.join(f'{s} %' for s in policy.steps)}; {policy.interval_s:g} s each; at least "
          f"{policy.min_calls} canary calls (hold up to {policy.hold_timeout_s:g} s)")
    print(f"SLO: error rate < {policy.max_error_ratio:.2%}, p95 < {policy.max_p95_s * 1000:.0f} ms, "
          f"p99 < {policy.max_p99_s * 1000:.0f} ms; against stable: error rate at most "
          f"+{policy.max_error_delta:.2%}, p99 at most ×{policy.max_latency_ratio:g}")
    for pool in ("canary", "stable"):
        for name, expr in queries(window, pool).items():
            print(f"  {pool} {name}: {expr}")
