"""The rollout's windows, its gateway view, pause/resume/abort, the supervisor's policy checks,
the restart policy and the report plot, with fake readings and a fake clock."""

from __future__ import annotations

import json

import pytest

from opsconductor.cli.rollout import describe
from opsconductor.observability.prometheus import PrometheusError, duration_s
from opsconductor.release import gate, rollout
from opsconductor.release.analysis import CanaryCriteria, Slo, check_interval, window_for
from opsconductor.release.plot import write_plot
from opsconductor.stack import rollouts, state
from tests.unit.test_release_analysis import HEALTHY, FakePrometheus, FakeStack


def run(readings: dict, control: rollout.Control | None = None, on_sleep=None, **policy: object):
    policy_ = rollout.Policy(**{"steps": (20, 100), "interval_s": 6.0, "criteria": CanaryCriteria(min_calls=10),
                                "scrape_interval_s": 1.0, **policy})
    stack, lines = FakeStack(), []

    def sleep(seconds: float) -> None:
        stack.sleep(seconds)
        if on_sleep:
            on_sleep(stack.now)

    result = rollout.rollout(FakePrometheus(policy_.window, readings, policy_.sample_window), stack.actions(),
                             policy_, echo=lines.append, sleep=sleep, clock=lambda: stack.now, control=control)
    return result, stack, "\n".join(lines) + rollout.report(result.steps, result.outcome)


# --- windows ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("interval", "scrape", "window"), [(60, 15, "60s"), (20, 1, "20s"), (4, 1, "4s"),
                                                            (4.5, 1, "5s"), (10, 2.5, "10s")])
def test_the_window_is_the_interval_and_never_fewer_than_four_scrapes(interval, scrape, window):
    assert window_for(interval, scrape) == window


@pytest.mark.parametrize(("interval", "scrape"), [(10, 15), (20, 15), (59, 15), (3, 1), (9.9, 2.5)])
def test_an_interval_shorter_than_four_scrapes_is_refused_in_one_line(interval, scrape):
    with pytest.raises(ValueError) as refused:
        check_interval(interval, scrape)
    message = str(refused.value)
    assert "\n" not in message and f"scrapes every {scrape:g} s" in message and f"{4 * scrape:g}" in message


def test_the_hold_timeout_defaults_to_a_multiple_of_the_interval():
    assert rollout.Policy(interval_s=1800).hold_timeout == rollout.HOLD_INTERVALS * 1800
    assert rollout.Policy(interval_s=30, hold_timeout_s=45).hold_timeout == 45
    quiet = {"calls": 2.0, "rps": 0.1, "error_ratio": 0.0}
    result, stack, output = run({"canary": quiet, "stable": HEALTHY}, interval_s=4.0)
    assert result.outcome == rollout.ROLLED_BACK and stack.now == pytest.approx(20.0)
    assert "held 20 s without enough canary traffic" in output


def test_stable_too_quiet_to_compare_is_said_in_the_reading_and_the_summary():
    result, _, output = run({"canary": HEALTHY, "stable": {**HEALTHY, "calls": 3.0}})
    assert result.promoted
    assert result.steps[0].notes == ["stable had too few calls to compare (3 < 10)"]
    assert output.count("stable had too few calls to compare (3 < 10)") == 2  # the step's line and the table
    assert "compared with the SLO only" in output  # the 100 % step says why too


# --- the gateway's view -----------------------------------------------------------------------------

@pytest.mark.parametrize("edge", [
    {"calls": 120.0, "served": 0.0},  # every call of the share failed over to stable
    {"upstream_failures": 40.0, "served": 560.0},  # refused and retried elsewhere
    {"healthy_hosts": 0.0},  # no canary host Envoy would send a call to
    {"failed_calls": 30.0},  # errors the automation never counted
])
def test_a_canary_failing_only_at_the_gateway_is_rolled_back_at_its_first_reading(edge):
    quiet = {"calls": 0.0, "rps": None, "error_ratio": None}  # the automation saw nothing: a hold
    result, stack, output = run({"canary": quiet, "stable": HEALTHY, "edge": edge})
    assert result.outcome == rollout.ROLLED_BACK and stack.rolled_back and not stack.promoted
    assert result.steps[0].verdict == "fail" and result.steps[0].judged == 1
    assert "at the gateway" in output and stack.now == 6.0


def test_without_the_edge_view_the_same_canary_only_holds():
    quiet = {"calls": 0.0, "rps": None, "error_ratio": None}
    result, stack, _ = run({"canary": quiet, "stable": HEALTHY, "edge": {"healthy_hosts": 0.0}}, edge=False)
    assert result.steps[0].judged > 1 and "held" in result.steps[0].reasons[-1]


def test_a_few_failures_at_the_gateway_are_not_yet_evidence():
    result, _, _ = run({"canary": HEALTHY, "stable": HEALTHY, "edge": {"upstream_failures": 2.0}})
    assert result.promoted


# --- pause, resume, abort, stop ---------------------------------------------------------------------

def test_abort_rolls_back_at_once_mid_wait():
    control = rollout.Control()
    result, stack, output = run({"canary": HEALTHY, "stable": HEALTHY}, control,
                                on_sleep=lambda now: now >= 2.0 and control.abort("aborted on request"),
                                interval_s=60.0)
    assert result.outcome == rollout.ABORTED and stack.rolled_back and not stack.promoted
    assert stack.now == pytest.approx(2.0) and result.steps[0].verdict == "aborted"
    assert result.steps[0].reasons == ["aborted on request"] and "rolled back to stable" in output


def test_a_pause_holds_the_weight_and_its_time_does_not_count():
    control = rollout.Control()

    def on_sleep(now: float) -> None:
        if now == pytest.approx(2.0):
            control.pause()
        if now >= 40.0:
            control.resume()

    result, stack, output = run({"canary": HEALTHY, "stable": HEALTHY}, control, on_sleep, steps=(20,))
    assert result.promoted and stack.weights == [20]
    assert "paused at 20 %" in output and "resumed at 20 %" in output
    assert stack.now == pytest.approx(44.0)  # 2 s, 38 s paused, then the other 4 s of the interval


def test_a_stopping_stack_ends_the_rollout_without_touching_the_weights():
    control = rollout.Control()
    result, stack, _ = run({"canary": HEALTHY, "stable": HEALTHY}, control,
                           on_sleep=lambda now: now >= 3 and control.stopping.set())
    assert result.outcome == rollout.STOPPED and not stack.rolled_back and not stack.promoted


def test_a_failing_smoke_test_fails_the_rollout_before_the_first_step():
    stack = FakeStack()
    actions = rollout.Actions(stack.weights.append, lambda: None, lambda: setattr(stack, "rolled_back", True),
                              smoke=lambda: ["echo pinned to the canary: UNAVAILABLE"])
    policy = rollout.Policy(steps=(50,), interval_s=4.0, scrape_interval_s=1.0)
    result = rollout.rollout(FakePrometheus(policy.window, {}, policy.sample_window), actions, policy,
                             echo=lambda line: None, sleep=stack.sleep, clock=lambda: stack.now)
    assert result.outcome == rollout.ROLLED_BACK and stack.weights == [] and stack.rolled_back
    assert result.steps[0].reasons == ["smoke: echo pinned to the canary: UNAVAILABLE"]


# --- what the supervisor accepts ----------------------------------------------------------------------

@pytest.mark.parametrize(("args", "field"), [
    ({"steps": "10,50"}, "steps"), ({"steps": [50, 10]}, "steps"), ({"steps": [True]}, "steps"),
    ({"interval_s": -1}, "interval_s"), ({"interval_s": "60"}, "interval_s"), ({"interval_s": 10 ** 9}, "interval_s"),
    ({"min_calls": 0}, "min_calls"), ({"min_calls": 2.5}, "min_calls"), ({"hold_timeout_s": 0}, "hold_timeout_s"),
    ({"interval_s": 10}, "too short to judge"),
])
def test_the_rollout_command_checks_every_argument(args, field):
    with pytest.raises(ValueError, match=field):
        rollouts.policy_of(args, scrape_interval_s=15.0)


def test_the_rollout_command_builds_the_policy_asked_for():
    policy = rollouts.policy_of({"steps": [25, 100], "interval_s": 8, "min_calls": 5}, scrape_interval_s=2.0)
    assert policy.steps == (25, 100) and policy.window == "8s" and policy.hold_timeout == 40.0


# --- the restart policy and the records ---------------------------------------------------------------

def running_record(tmp_path) -> dict:
    policy = rollout.Policy(steps=(30, 100), interval_s=20.0, scrape_interval_s=1.0)
    step = rollout.Step(30, started_at=1000.0)
    record = rollout.record(policy, [step], 995.0, None, id=7)
    state.write_rollout(tmp_path, record)
    state.write_weights(tmp_path, state.Weights(stable=70, canary=30))
    return record


def test_a_rollout_left_running_is_rolled_back_and_recorded_when_the_stack_starts_again(tmp_path):
    running_record(tmp_path)
    said: list[str] = []
    recovered = rollouts.recover(tmp_path, said.append)
    assert recovered is not None and recovered["outcome"] == "rolled back" and not recovered["running"]
    assert state.read_weights(tmp_path) == state.Weights(stable=100, canary=0)
    [kept] = state.read_history(tmp_path)
    assert kept["id"] == 7 and kept["reason"] == rollouts.RESTART_REASON and kept["history"][0]["verdict"] == "stopped"
    assert state.read_rollout(tmp_path)["running"] is False and said == [f"rollout 7: {rollouts.RESTART_REASON}"]
    assert rollouts.recover(tmp_path, said.append) is None  # applied once


def test_a_finished_rollout_is_left_alone_at_start(tmp_path):
    record = running_record(tmp_path)
    state.write_rollout(tmp_path, {**record, "running": False, "outcome": "promoted"})
    assert rollouts.recover(tmp_path, print) is None
    assert state.read_weights(tmp_path) == state.Weights(stable=70, canary=30) and state.read_history(tmp_path) == []


def test_the_plot_draws_both_pools_and_the_weight(tmp_path):
    result, _, _ = run({"canary": {**HEALTHY, "error_ratio": 0.002}, "stable": HEALTHY})
    record = rollout.record(rollout.Policy(steps=(20, 100), interval_s=6.0, scrape_interval_s=1.0), result.steps,
                            result.steps[0].started_at - 1, result.outcome, id=3)
    svg = write_plot(record, tmp_path / "rollout-0003.svg").read_text()
    assert svg.startswith("<?xml") and "canary weight" in svg and "p99 (ms)" in svg and "success rate" in svg
    assert "promoted" in svg and len(result.steps[0].samples) == rollout.SAMPLES_PER_INTERVAL
    assert "canary's share at the gateway" in svg and result.steps[0].samples[0]["gateway"]["error_ratio"] == 0.0
    json.dumps(record)  # the record it is drawn from is plain data


def test_the_plot_names_a_mirror_step(tmp_path):
    result, _, _ = run({"canary": HEALTHY, "stable": HEALTHY}, mirror=30)
    record = rollout.record(rollout.Policy(steps=(20, 100), interval_s=6.0, scrape_interval_s=1.0, mirror=30),
                            result.steps, result.steps[0].started_at - 1, result.outcome, id=4)
    svg = write_plot(record, tmp_path / "rollout-0004.svg").read_text()
    assert "mirror 30 % pass" in svg and "20 % pass" in svg and record["mirror"] == 30


@pytest.mark.parametrize(("text", "seconds"), [("15s", 15), ("1m", 60), ("1m30s", 90), ("500ms", 0.5)])
def test_prometheus_durations(text, seconds):
    assert duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "s", "1x", "1m 30s"])
def test_bad_prometheus_durations(text):
    with pytest.raises(PrometheusError):
        duration_s(text)


# --- the gate, one pool at a time ---------------------------------------------------------------------

@pytest.mark.parametrize(("pool", "code"), [("canary", 1), ("stable", 0), (None, 0)])
def test_the_gate_judges_the_pool_asked_for(pool, code):
    # The canary fails one call in ten; diluted by stable's traffic, the service as a whole passes.
    readings = {"canary": {**HEALTHY, "error_ratio": 0.1}, "stable": HEALTHY, None: {**HEALTHY, "error_ratio": 0.005}}
    plan = gate.GatePlan(minutes=0.1, interval_s=3.0, window="6s", slo=Slo(), pool=pool)
    query = FakePrometheus("6s", readings)
    assert gate.run_gate(query, plan, echo=lambda line: None, sleep=lambda s: None) == code
    assert query.asked and all(query._meaning[expr][0] == pool for expr in query.asked)


# --- a mirror step -----------------------------------------------------------------------------------

# During a mirror step the gateway routes no call to the canary's share; its hosts serve the copies.
MIRRORED_EDGE = {"calls": 0.0, "served": 600.0}


def test_a_mirror_step_comes_first_at_weight_0_and_mirroring_is_off_before_the_weights_move():
    result, stack, output = run({"canary": HEALTHY, "stable": HEALTHY, "edge": MIRRORED_EDGE}, mirror=20)
    assert result.promoted
    assert stack.changes == ["mirror 20", "mirror 0", "weight 20", "weight 100", "promote"]
    first = result.steps[0]
    assert (first.weight, first.mirror, first.verdict) == (0, 20, "pass") and first.canary.calls == 600
    assert "step weight 0, 20 % of calls mirrored to the canary" in output and "mirror 20 %: canary 600 calls" in output
    assert rollout.step_data(first)["mirror"] == 20 and "m 20%" in output  # the record and the report say it


def test_a_canary_failing_its_mirrored_calls_is_rolled_back_without_ever_getting_a_call():
    failing = {**HEALTHY, "error_ratio": 0.2}
    result, stack, output = run({"canary": failing, "stable": HEALTHY, "edge": MIRRORED_EDGE}, mirror=50)
    assert result.outcome == rollout.ROLLED_BACK and stack.weights == []
    assert stack.changes == ["mirror 50", "mirror 0", "rollback"]
    assert result.steps[0].verdict == "fail" and "error rate 20.00 %" in output


def test_a_mirror_step_with_no_healthy_canary_host_fails_at_the_gateway():
    result, stack, _ = run({"canary": HEALTHY, "stable": HEALTHY, "edge": {**MIRRORED_EDGE, "healthy_hosts": 0.0}},
                           mirror=20)
    assert result.outcome == rollout.ROLLED_BACK and "no healthy canary host" in "; ".join(result.steps[0].reasons)


def test_a_mirror_step_without_mirrored_calls_holds_then_fails_at_the_hold_timeout():
    result, stack, _ = run({"canary": {"calls": 0.0}, "stable": HEALTHY, "edge": {"calls": 0.0, "served": 0.0}},
                           mirror=20, hold_timeout_s=12.0)
    assert result.outcome == rollout.ROLLED_BACK and result.steps[0].judged == 2
    assert result.steps[0].reasons[-1] == "held 12 s without enough canary traffic" and stack.mirrors == [20, 0]


def test_abort_during_a_mirror_step_turns_mirroring_off_and_rolls_back():
    control = rollout.Control()
    result, stack, _ = run({"canary": HEALTHY, "stable": HEALTHY}, control, mirror=20, interval_s=60.0,
                           on_sleep=lambda now: now >= 2.0 and control.abort("aborted on request"))
    assert result.outcome == rollout.ABORTED and stack.changes == ["mirror 20", "mirror 0", "rollback"]


def test_a_stack_stopping_in_a_mirror_step_leaves_mirroring_to_the_restart_policy(tmp_path):
    control = rollout.Control()
    result, stack, _ = run({"canary": HEALTHY, "stable": HEALTHY}, control, mirror=20,
                           on_sleep=lambda now: now >= 3 and control.stopping.set())
    assert result.outcome == rollout.STOPPED and stack.changes == ["mirror 20"]
    running_record(tmp_path)
    state.write_weights(tmp_path, state.Weights(stable=100, canary=0, mirror=20))
    rollouts.recover(tmp_path, lambda line: None)
    assert state.read_weights(tmp_path) == state.Weights(stable=100, canary=0, mirror=0)


@pytest.mark.parametrize("mirror", [101, -5, True, "20", 2.5])
def test_the_rollout_command_checks_the_mirrored_share(mirror):
    with pytest.raises(ValueError, match="mirror"):
        rollouts.policy_of({"mirror": mirror, "interval_s": 60}, scrape_interval_s=15.0)


def test_the_rollout_command_builds_a_mirror_step_and_the_plan_shows_it():
    policy = rollouts.policy_of({"mirror": 25, "steps": [50, 100], "interval_s": 8}, scrape_interval_s=2.0)
    assert policy.mirror == 25 and policy.steps == (50, 100)
    assert rollout.plan(policy).startswith("steps mirror 25 % at weight 0, 50 %, 100 %")
    assert rollouts.policy_of({"interval_s": 8}, scrape_interval_s=2.0).mirror == 0


def test_status_shows_a_mirror_step_by_its_share():
    result, _, _ = run({"canary": HEALTHY, "stable": HEALTHY}, mirror=20)
    policy = rollout.Policy(steps=(20, 100), interval_s=6.0, scrape_interval_s=1.0, mirror=20)
    text = describe(rollout.record(policy, result.steps, result.steps[0].started_at, result.outcome, id=5))
    assert "steps mirror 20 %, 20 %, 100 %" in text and "  mirror 20 %: pass" in text and "   20 %: pass" in text
