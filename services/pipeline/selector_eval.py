"""Selection accuracy: the share of a labelled set of inputs (shipped beside this module) for
which the selector picks the expected tool. Exported as a gauge so dashboards show it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from services.common.errors import UnknownToolError
from services.pipeline.selector import Selector

CASES_FILE = Path(__file__).with_name("selector_cases.json")


@dataclass(frozen=True)
class Evaluation:
    cases: int
    correct: int
    misses: tuple[tuple[str, str, str], ...]  # (input, expected, chosen)

    @property
    def accuracy(self) -> float:
        return self.correct / self.cases if self.cases else 0.0


def evaluate(selector: Selector, platform: str, cases_file: Path = CASES_FILE) -> Evaluation:
    cases = json.loads(cases_file.read_text())
    misses = []
    for case in cases:
        try:
            chosen = selector.select(case["input"], platform).tool.name
        except UnknownToolError:
            chosen = "none"
        if chosen != case["expected"]:
            misses.append((case["input"], case["expected"], chosen))
    return Evaluation(len(cases), len(cases) - len(misses), tuple(misses))
