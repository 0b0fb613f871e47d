"""The analysis `gate` and `rollout` share, driven by a fake Prometheus: pass, fail, hold, no
data (NaN), and the canary-against-stable comparison, without a stack."""

from __future__ import annotations

import math

import pytest

from opsconductor.observability import edge
from opsconductor.observability.prometheus import PrometheusError
from opsconductor.release import analysis, gate, rollout
from opsconductor.release.analysis import CanaryCriteria, Reading, Slo

HEALTHY = {"calls": 600.0, "rps": 10.0, "error_ratio": 0.0, "p95_s": 0.004, "p99_s": 0.008}
HEALTHY_EDGE = {"calls": 600.0, "failed_calls": 0.0, "upstream_failures": 0.0, "served": 600.0, "p99_s": 0.01,
                "healthy_hosts": 1.0}


class FakePrometheus:
    """Answers exactly the queries the analysis makes, from readings per pool (None = the whole
    service); a missing field has no data, NaN is what Prometheus returns for 0/0."""

    def __init__(self, window: str, readings: dict[str | None, dict[str, float]],
                 sample_window: str | None = None) -> None:
        self.readings = readings
        self.asked: list[str] = []
        self._meaning = {expr: (pool, name) for w in {window, sample_window or window}
                         for pool in ("canary", "stable", None) for name, expr in analysis.queries(w, pool).items()}
        # The gateway's view of the canary's share: "edge" readings (healthy by default).
        self._meaning.update({expr: ("edge", name) for w in {window, sample_window or window}
                              for name, expr in edge.queries(w, "canary").items()})

    def __call__(self, expr: str) -> float | None:
        self.asked.append(expr)
        pool, name = self._meaning[expr]  # a query the analysis does not make fails the test
        if pool == "edge":
            return {**HEALTHY_EDGE, **self.readings.get("edge", {})}.get(name)
        return self.readings.get(pool, {}).get(name)


def reading(**fields: float | None) -> Reading:
    values = {**HEALTHY, **fields}
    return Reading(values["calls"], values["rps"], values["error_ratio"], values["p95_s"], values["p99_s"])


# --- one reading --------------------------------------------------------------------------------

def test_nan_and_missing_series_read_as_no_data_never_as_zero():
    query = FakePrometheus("30s", {None: {"calls": 0.0, "rps": 0.0, "error_ratio": math.nan, "p95_s": math.nan}})
    value = analysis.read(query, "30s")
    assert (value.calls, value.rps, value.error_ratio, value.p95_s, value.p99_s) == (0.0, 0.0, None, None, None)


def test_slo_problems_name_each_threshold_broken():
    slo = Slo(max_error_ratio=0.01, max_p95_s=1.0, max_p99_s=2.0)
    assert analysis.slo_problems(reading(), slo) == []
    problems = analysis.slo_problems(reading(error_ratio=0.25, p95_s=1.5, p99_s=2.5), slo)
    assert problems == ["error rate 25.00 % ≥ SLO 1.00 %", "p95 1500 ms ≥ SLO 1000 ms", "p99 2500 ms ≥ SLO 2000 ms"]
    # No data is not a violation: there is nothing to judge.
    assert analysis.slo_problems(reading(error_ratio=None, p95_s=None, p99_s=None), slo) == []


# --- the gate -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "verdict"), [
    ({}, "OK"),
    ({"error_ratio": 0.02}, "FAIL"),
    ({"p99_s": 3.0}, "FAIL"),
    ({"rps": 0.0, "error_ratio": None}, "NO TRAFFIC"),
    ({"rps": None}, "NO TRAFFIC"),
])
def test_gate_verdicts(fields, verdict):
    assert analysis.gate_verdict(reading(**fields), Slo())[0] == verdict


def run_gate(readings: list[dict[str, float]], intervals: int = 3) -> tuple[int, list[str], int]:
    """The gate over one reading per interval; (exit code, printed lines, readings taken)."""
    plan = gate.GatePlan(minutes=intervals, interval_s=60, window="2m", slo=Slo())
    answers, taken = iter(readings), []

    def sleep(_seconds: float) -> None:  # each interval, Prometheus has the next reading
        taken.append(FakePrometheus("2m", {None: next(answers)}))

    lines: list[str] = []
    code = gate.run_gate(lambda expr: taken[-1](expr), plan, echo=lines.append, sleep=sleep)
    return code, lines, len(taken)


def test_gate_passes_when_every_interval_meets_the_slo():
    code, lines, taken = run_gate([HEALTHY] * 3)
    assert (code, taken) == (gate.PASSED, 3)
    assert sum(line.startswith("[") and " OK " in line for line in lines) == 3 and "PASSED" in lines[-1]


def test_gate_stops_at_the_first_violation():
    code, lines, taken = run_gate([HEALTHY, {**HEALTHY, "error_ratio": 0.3}, HEALTHY])
    assert (code, taken) == (gate.VIOLATED, 2)
    assert any("FAIL" in line and "error rate 30.00 %" in line for line in lines)


def test_gate_without_traffic_is_inconclusive_not_a_pass():
    quiet = {"calls": 0.0, "rps": 0.0, "error_ratio": math.nan, "p95_s": math.nan, "p99_s": math.nan}
    code, lines, _ = run_gate([HEALTHY, quiet, HEALTHY])
    assert code == gate.INCONCLUSIVE
    assert any("NO TRAFFIC" in line for line in lines) and "INCONCLUSIVE" in lines[-1]


def test_gate_reports_prometheus_unreachable_to_its_caller():
    def down(_expr: str) -> float | None:
        raise PrometheusError("Prometheus at http://127.0.0.1:1 unreachable")

    with pytest.raises(PrometheusError):
        gate.run_gate(down, gate.GatePlan(1, 60, "2m", Slo()), echo=lambda line: None, sleep=lambda s: None)


# --- a canary step ------------------------------------------------------------------------------

CRITERIA = CanaryCriteria(min_calls=50)


def test_a_step_holds_below_the_minimum_sample():
    verdict, reasons = analysis.step_verdict(10, reading(calls=12), reading(), CRITERIA)
    assert (verdict, reasons) == ("hold", ["12 canary calls < 50"])


def test_a_step_fails_on_the_slo_and_against_stable():
    verdict, reasons = analysis.step_verdict(10, reading(error_ratio=0.25), reading(), CRITERIA)
    assert verdict == "fail" and reasons[0].startswith("error rate 25.00 % ≥ SLO")
    assert "error rate 25.00 % vs stable 0.00 %" in reasons
    # Within the SLO, but clearly slower than stable (and above the noise floor).
    verdict, reasons = analysis.step_verdict(10, reading(p99_s=0.5), reading(p99_s=0.05), CRITERIA)
    assert (verdict, reasons) == ("fail", ["p99 500 ms vs stable 50 ms"])


def test_the_stable_comparison_needs_stable_calls_and_a_stable_share():
    slower = reading(p99_s=0.5)
    assert analysis.step_verdict(10, slower, reading(p99_s=0.05, calls=3), CRITERIA)[0] == "pass"
    assert analysis.step_verdict(100, slower, reading(p99_s=0.05), CRITERIA)[0] == "pass"
    assert analysis.step_verdict(10, slower, None, CRITERIA)[0] == "pass"
    # Below the latency floor differences are noise.
    assert analysis.step_verdict(10, reading(p99_s=0.02), reading(p99_s=0.002), CRITERIA)[0] == "pass"


# --- the rollout --------------------------------------------------------------------------------

class FakeStack:
    """What the rollout does to the stack, recorded; the clock advances with each sleep."""

    def __init__(self) -> None:
        self.weights: list[int] = []
        self.mirrors: list[int] = []  # each mirrored share set, 0 = mirroring off
        self.changes: list[str] = []  # every change, in order
        self.promoted = self.rolled_back = False
        self.now = 0.0

    def actions(self) -> rollout.Actions:
        def change(what: str, then):
            def act(*value):
                self.changes.append(f"{what} {value[0]}" if value else what)
                then(*value)
            return act

        return rollout.Actions(set_weight=change("weight", self.weights.append),
                               promote=change("promote", lambda: setattr(self, "promoted", True)),
                               rollback=change("rollback", lambda: setattr(self, "rolled_back", True)),
                               set_mirror=change("mirror", self.mirrors.append))

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run_rollout(readings: dict[str | None, dict[str, float]], **policy: object):
    policy_ = rollout.Policy(**{"steps": (20, 100), "interval_s": 4.0, "hold_timeout_s": 300.0,
                                "criteria": CanaryCriteria(min_calls=10), "scrape_interval_s": 1.0, **policy})
    stack, lines = FakeStack(), []
    result = rollout.rollout(FakePrometheus(policy_.window, readings, policy_.sample_window), stack.actions(),
                             policy_, echo=lines.append, sleep=stack.sleep, clock=lambda: stack.now)
    promoted, steps = result.promoted, result.steps
    return promoted, steps, stack, "\n".join(lines) + rollout.report(steps, "PROMOTED" if promoted
                                                                      else "FAILED: rolled back to stable")


def test_rollout_promotes_a_healthy_canary():
    promoted, steps, stack, output = run_rollout({"canary": HEALTHY, "stable": HEALTHY})
    assert promoted and stack.promoted and not stack.rolled_back
    assert stack.weights == [20, 100] and [s.verdict for s in steps] == ["pass", "pass"]
    assert "rollout PROMOTED" in output and output.count("PASS") == 2


def test_rollout_rolls_back_at_the_first_failing_step_and_never_promotes():
    promoted, steps, stack, output = run_rollout({"canary": {**HEALTHY, "error_ratio": 0.25}, "stable": HEALTHY})
    assert not promoted and stack.rolled_back and not stack.promoted
    assert stack.weights == [20] and steps[0].verdict == "fail"
    assert "FAILED: rolled back to stable" in output and "error rate" in output and "PROMOTED" not in output


def test_rollout_without_canary_traffic_holds_then_fails_and_never_promotes():
    quiet = {"calls": 2.0, "rps": 0.1, "error_ratio": 0.0}
    promoted, steps, stack, output = run_rollout({"canary": quiet, "stable": HEALTHY}, hold_timeout_s=6.0,
                                                 interval_s=3.0, criteria=CanaryCriteria(min_calls=20))
    assert not promoted and stack.rolled_back and not stack.promoted
    assert "→ hold" in output and "held 6 s without enough canary traffic" in output
    assert "PROMOTED" not in output and "rolled back" in output
    assert stack.now == 6.0  # held two intervals, then failed at the hold deadline


def test_rollout_reads_its_window_from_the_interval():
    policy = rollout.Policy(steps=(100,), interval_s=10.0, criteria=CanaryCriteria(min_calls=10),
                            scrape_interval_s=1.0)
    query = FakePrometheus("10s", {"canary": HEALTHY, "stable": HEALTHY}, policy.sample_window)
    stack = FakeStack()
    rollout.rollout(query, stack.actions(), policy, echo=lambda line: None, sleep=stack.sleep,
                    clock=lambda: stack.now)
    judged = [expr for expr in query.asked if "[4s]" not in expr]  # the plot's samples use 4 scrapes
    assert judged and all("[10s]" in expr for expr in judged if "[" in expr)


@pytest.mark.parametrize(("text", "steps"), [("10,50,100", (10, 50, 100)), ("100", (100,)), ("1, 2", (1, 2))])
def test_steps_parse(text, steps):
    assert rollout.parse_steps(text) == steps


@pytest.mark.parametrize("text", ["", "10,,50", "50,10", "0,100", "10,10", "10,101", "ten"])
def test_bad_steps_are_refused(text):
    with pytest.raises(ValueError, match="steps must"):
        rollout.parse_steps(text)
