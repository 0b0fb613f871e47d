"""The canary rollout carried out by the supervisor: a long operation (opsconductor/stack/
operations.py) that steps the weights, judges each step from Prometheus and keeps its record in
the state directory after every change; pause, resume and abort reach it at once through the
control channel's signals, never as operations of their own (one is running: the rollout).

Restart policy: a stack that stops mid-rollout leaves its record running; the next start
rolls the canary's share back to 0 before Envoy takes a call, and records the rollout as
rolled back ("the stack restarted mid-rollout"). An unproven canary never keeps traffic it
was given by a rollout nobody watches any more."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from opsconductor.gateway.admin import Weights
from opsconductor.observability import prometheus
from opsconductor.release import rollout
from opsconductor.release.analysis import CanaryCriteria, check_interval
from opsconductor.release.checks import run_checks
from opsconductor.release.smoke import pinned_checks
from opsconductor.stack import changes, state
from opsconductor.stack.control import Signal
from opsconductor.stack.operations import Progress, Work
from opsconductor.stack.weights import set_canary_share

if TYPE_CHECKING:
    from opsconductor.stack.supervisor import Stack

_LOGGER = logging.getLogger(__name__)
MAX_INTERVAL_S = 24 * 3600.0
MAX_MIN_CALLS = 10_000_000
RESTART_REASON = "the stack restarted mid-rollout: rolled back to stable (restart policy)"


def policy_of(args: dict, scrape_interval_s: float) -> rollout.Policy:
    """The policy a client asked for, checked (ValueError names the field): it may send anything."""
    steps = args.get("steps", [10, 50, 100])
    if not isinstance(steps, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
        raise ValueError("steps must be a list of whole percentages")
    parsed = rollout.parse_steps(",".join(map(str, steps)))
    interval = _number(args.get("interval_s", 60.0), "interval_s", MAX_INTERVAL_S)
    hold = args.get("hold_timeout_s")
    hold_s = None if hold is None else _number(hold, "hold_timeout_s", 10 * MAX_INTERVAL_S)
    min_calls = args.get("min_calls", 50)
    if isinstance(min_calls, bool) or not isinstance(min_calls, int) or not 1 <= min_calls <= MAX_MIN_CALLS:
        raise ValueError("min_calls must be a whole number from 1 to 10000000")
    mirror = rollout.check_mirror(args.get("mirror", 0))
    check_interval(interval, scrape_interval_s)
    return rollout.Policy(mirror=mirror, steps=parsed, interval_s=interval, hold_timeout_s=hold_s,
                          criteria=CanaryCriteria(min_calls=min_calls), scrape_interval_s=scrape_interval_s,
                          edge=args.get("edge", True) is not False, smoke=args.get("smoke") is True)


def _number(value: object, name: str, most: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= most:
        raise ValueError(f"{name} must be a number of seconds above 0 and at most {most:g}")
    return float(value)


def finish(state_dir: Path, record: dict) -> dict:
    """Keeps a finished rollout: rollout.json (the mesh view), its history record and plot."""
    record["plot"] = str(state.history_path(state_dir, int(record["id"]), ".svg"))
    state.write_rollout(state_dir, record)
    state.write_history(state_dir, record)
    try:
        from opsconductor.release.plot import write_plot  # matplotlib loads in a second: only when drawing

        write_plot(record, Path(record["plot"]))
    except Exception as error:  # the record matters more than its picture
        _LOGGER.warning("rollout %s: no plot: %s", record["id"], error)
        record["plot"] = None
        state.write_history(state_dir, record)
    return record


def recover(state_dir: Path, echo: Callable[[str], None]) -> dict | None:
    """The restart policy, applied before the gateway starts: a rollout the last stack left
    running is rolled back (the weights Envoy starts with) and recorded so."""
    record = state.read_rollout(state_dir)
    if not record or not record.get("running") or "id" not in record:
        return None
    state.write_weights(state_dir, Weights(stable=100, canary=0))
    history = record.get("history") or []
    if history and history[-1].get("ended_at") is None:
        history[-1].update(verdict="stopped", ended_at=record.get("updated_at"),
                           reasons=[*history[-1].get("reasons", []), "the stack stopped"])
    record.update(running=False, outcome=rollout.ROLLED_BACK, reason=RESTART_REASON, ended_at=time.time(),
                  updated_at=time.time(), recovered=True)
    finish(state_dir, record)
    echo(f"rollout {record['id']}: {RESTART_REASON}")
    return record


class Rollouts:
    """The rollout command and its signals, sharing the running rollout's Control."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.control: rollout.Control | None = None

    def commands(self) -> dict[str, Callable[[dict], tuple[str, Work]]]:
        return {"rollout": self._start}

    def signals(self) -> dict[str, Signal]:
        return {"rollout-pause": self._signal("pause"), "rollout-resume": self._signal("resume"),
                "rollout-abort": self._signal("abort")}

    def _signal(self, name: str) -> Signal:
        def send(args: dict) -> dict:
            control = self.control
            if control is None:
                raise ValueError("no rollout is running")
            if name == "abort":
                control.abort("aborted on request")
            else:
                getattr(control, name)()
            return {"rollout": name, "paused": control.paused.is_set(), "aborted": control.aborted.is_set()}

        return send

    def _start(self, args: dict) -> tuple[str, Work]:
        url = self.stack.endpoints.get(state.PROMETHEUS, "")
        if not url:
            raise ValueError("the stack runs without Prometheus; canary analysis needs it")
        policy = policy_of(args, self.stack.spec.scrape_interval_s)

        def work(progress: Progress) -> dict:
            return self._run(policy, url, progress)

        mirror = [f"mirror {policy.mirror} %"] if policy.mirror else []
        steps = ", ".join([*mirror, *(f"{s} %" for s in policy.steps)])
        return f"canary rollout: {steps}, {policy.interval_s:g} s each", work

    def _run(self, policy: rollout.Policy, url: str, progress: Progress) -> dict:
        stack, directory = self.stack, self.stack.spec.state_dir
        current = stack.operations.current()
        rollout_id = current.id if current else int(time.time())
        started = time.time()
        control = rollout.Control(stopping=progress.stop_requested)
        seen: list[rollout.Step] = []

        def observe(steps: list[rollout.Step]) -> None:
            seen[:] = steps
            record = rollout.record(policy, steps, started, None, id=rollout_id, operation=rollout_id,
                                    paused=control.paused.is_set())
            state.write_rollout(directory, record)

        actions = rollout.Actions(
            set_weight=lambda weight: set_canary_share(directory, weight, stack.gateway_admins()),
            rollback=lambda: set_canary_share(directory, 0, stack.gateway_admins()),
            set_mirror=lambda percent: set_canary_share(directory, 0, stack.gateway_admins(), mirror=percent),
            promote=lambda: _promote(stack, progress),
            smoke=(lambda: pinned_smoke(stack.endpoints[state.GATEWAY])) if policy.smoke else None)
        self.control = control
        try:
            result = rollout.rollout(lambda expr: prometheus.scalar(url, expr), actions, policy, echo=progress,
                                     observe=observe, control=control)
        except Exception as error:  # Prometheus gone, the gateway's admin refusing: the safe side
            progress(f"the rollout could not go on ({error}); rolling back to stable")
            set_canary_share(directory, 0, stack.gateway_admins())
            finish(directory, rollout.record(policy, seen, started, rollout.ROLLED_BACK, id=rollout_id,
                                             operation=rollout_id, reason=str(error)))
            raise
        finally:
            self.control = None
        if result.outcome == rollout.STOPPED:
            return {"outcome": result.outcome, "id": rollout_id}  # the record stays running: see recover()
        reason = control.abort_reason if result.outcome == rollout.ABORTED else ""
        record = finish(directory, rollout.record(policy, result.steps, started, result.outcome, id=rollout_id,
                                                  operation=rollout_id, reason=reason))
        progress(f"rollout {rollout_id} {result.outcome}; record {state.history_path(directory, rollout_id)}"
                 f"{', plot ' + record['plot'] if record.get('plot') else ''}")
        return {"outcome": result.outcome, "promoted": result.promoted, "id": rollout_id, "plot": record.get("plot"),
                "steps": [rollout.step_data(step) for step in result.steps]}


def pinned_smoke(gateway: str) -> list[str]:
    """The checks of a smoke test pinned to the canary that failed, each with what it found."""
    results = run_checks(pinned_checks(gateway, "canary"), out=io.StringIO())  # the rollout says the outcome
    return [f"{result.name}: {result.detail}" for result in results if not result.ok]


def _promote(stack: Stack, progress: Progress) -> None:
    changes.promote_work(stack)(progress)
