"""Lists every PromQL query the monitoring code runs: dashboard panels, recording rules, alert
conditions (with their thresholds stripped) and the mesh view's queries, so tests can parse and
evaluate them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = REPO_ROOT / "observability" / "prometheus" / "rules"
DASHBOARDS_DIR = REPO_ROOT / "observability" / "grafana" / "dashboards"

# What Grafana would put in for the dashboards' variables when a query runs for real.
DEFAULT_VARIABLES: Mapping[str, str] = {
    "pool": ".+",  # "All" of a multi-value variable: a regex that matches every pool
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
}

_COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
_SET_OPERATORS = ("or", "and", "unless")
_WORD = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
# "$1" in a label_replace replacement is PromQL's, not a variable (Grafana leaves it alone).
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$([A-Za-z_]\w*)|\[\[(\w+)\]\]")
_MODIFIER = re.compile(r"^(?:on|ignoring|group_left|group_right)\s*\([^)]*\)\s*")
# Words that look like metric names but are PromQL keywords, aggregations or constants.
_KEYWORDS = frozenset({
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "offset", "atan2", "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
    "count_values", "bottomk", "topk", "quantile", "inf", "nan",
})
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


@dataclass(frozen=True)
class Query:
    """One PromQL expression and where it comes from, for messages that name the culprit."""

    source: str  # file name, e.g. "alerts.yml" or "execution.json"
    name: str  # rule name, or panel title and refId
    expr: str


def _scan(expr: str) -> Iterator[tuple[int, str, int]]:
    """Yields (index, char, depth) for every character outside string literals; depth is the
    number of brackets enclosing it (a bracket counts at the depth of what surrounds it)."""
    depth = 0
    quote = ""
    escaped = False
    for index, char in enumerate(expr):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\" and quote != "`":
                escaped = True
            elif char == quote:
                quote = ""
            continue
        if char in "\"'`":
            quote = char
            continue
        if char in ")]}":
            depth -= 1
        yield index, char, depth
        if char in "([{":
            depth += 1


def _top_level(expr: str) -> set[int]:
    """Indexes of the characters outside brackets, braces, parentheses and strings."""
    return {index for index, char, depth in _scan(expr) if depth == 0 and char not in "()[]{}"}


def _unwrap(expr: str) -> str:
    """Drops whitespace and parentheses that enclose the whole expression: "((a))" -> "a",
    while "(a) / (b)" stays as it is."""
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")"):
        closing = next((i for i, char, depth in _scan(expr) if char == ")" and depth == 0), None)
        if closing != len(expr) - 1:
            break
        expr = expr[1:-1].strip()
    return expr


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char in "_:"


def _word_at(expr: str, index: int, words: tuple[str, ...]) -> str | None:
    """The whole word of `words` starting at `index`, if any ("or" in "x or y", not in "orchid")."""
    if index and _is_word_char(expr[index - 1]):
        return None
    for word in words:
        end = index + len(word)
        if expr.startswith(word, index) and (end == len(expr) or not _is_word_char(expr[end])):
            return word
    return None


def _split_words(expr: str, words: Iterable[str]) -> list[tuple[str, str]]:
    """Splits at top-level occurrences of whole `words`; returns (operator before, part)."""
    words = tuple(words)
    top = _top_level(expr)
    parts: list[tuple[str, str]] = []
    start, operator, index = 0, "", 0
    while index < len(expr):
        word = _word_at(expr, index, words) if index in top else None
        if word:
            parts.append((operator, expr[start:index]))
            start = index = index + len(word)
            operator = word
        else:
            index += 1
    parts.append((operator, expr[start:]))
    return parts


def _strip_modifier(expr: str) -> str:
    """Drops a leading vector-matching modifier left over from a split: "on(x) b" -> "b"."""
    return _MODIFIER.sub("", expr.strip())


def _drop_comparison(expr: str) -> str:
    """The left operand of the first top-level comparison, or the expression unchanged.
    ("=~" and "!~" only occur inside braces, which are not top level.)"""
    expr = _unwrap(expr)
    top = _top_level(expr)
    for index in sorted(top):
        for operator in _COMPARISONS:
            if expr.startswith(operator, index) and all(i in top for i in range(index, index + len(operator))):
                return _unwrap(expr[:index])
    return expr


def strip_comparisons(expr: str) -> list[str]:
    """The queries an alert condition is made of, without their thresholds.

    "X > 0.01" gives ["X"]; "(A > t and B > t) or (C > t and D > t)" gives [A, B, C, D]; the
    right side of "unless" is dropped (it is expected to be empty when the alert could fire).
    Each returned query should have data whenever the system has traffic.
    """
    queries: list[str] = []
    for _, disjunct in _split_words(_unwrap(expr), ("or",)):
        disjunct = _unwrap(_strip_modifier(disjunct))
        if _split_words(disjunct, ("or",))[1:]:
            queries.extend(strip_comparisons(disjunct))
            continue
        for operator, conjunct in _split_words(disjunct, ("and", "unless")):
            if operator == "unless":
                continue
            conjunct = _unwrap(_strip_modifier(conjunct))
            if _split_words(conjunct, _SET_OPERATORS)[1:]:
                queries.extend(strip_comparisons(conjunct))
            else:
                queries.append(_drop_comparison(conjunct))
    return queries


def substitute(expr: str, variables: Mapping[str, str] = DEFAULT_VARIABLES) -> str:
    """Replaces Grafana variables ($pool, ${pool}, [[pool]], $__rate_interval) by values."""
    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in variables:
            raise KeyError(f"no value for dashboard variable ${name} in {expr!r}")
        return variables[name]

    return _VARIABLE.sub(value, expr)


def metric_names(expr: str) -> set[str]:
    """Names of the series an expression selects (metrics and recorded series), by a lexical
    scan: strings, label matchers, ranges, label lists and function names are skipped."""
    text = _mask_nested(expr)
    text = _LABEL_LIST.sub(" ", text)
    names = set()
    for match in _WORD.finditer(text):
        word = match.group()
        rest = text[match.end():].lstrip()
        if word.lower() in _KEYWORDS or rest.startswith("("):
            continue
        before = text[:match.start()].rstrip()
        if before and (before[-1].isdigit() or before[-1] == "."):
            continue  # the exponent or unit of a number such as 1e-9
        names.add(word)
    return names


def _mask_nested(expr: str) -> str:
    """Blanks out strings and the insides of {...} and [...], keeping the brackets."""
    out = [" "] * len(expr)
    inner = 0  # depth in {} and [] only
    for index, char, _ in _scan(expr):
        if char in "}]":
            inner -= 1
        if inner == 0:
            out[index] = char
        if char in "{[":
            inner += 1
    return "".join(out)


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel of a dashboard, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", ()):
        yield panel
        yield from panel.get("panels", ())


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def load_rule_groups(path: Path) -> list[Mapping[str, Any]]:
    """The rule groups of a Prometheus rule file."""
    import yaml  # a test-time dependency only: the services never read rule files

    return yaml.safe_load(path.read_text())["groups"]


def dashboard_queries(paths: Iterable[Path] | None = None,
                      variables: Mapping[str, str] = DEFAULT_VARIABLES) -> list[Query]:
    """Every panel query of the dashboards, with variables filled in."""
    queries = []
    for path in dashboard_files() if paths is None else paths:
        dashboard = json.loads(path.read_text())
        for panel in iter_panels(dashboard):
            for target in panel.get("targets", ()):
                if target.get("expr"):
                    name = f"{panel.get('title', '?')} [{target.get('refId', '?')}]"
                    queries.append(Query(path.name, name, substitute(target["expr"], variables)))
    return queries


def rule_queries(paths: Iterable[Path] | None = None) -> list[Query]:
    """Every recording rule's expression and every alert's condition without thresholds."""
    queries = []
    for path in rule_files() if paths is None else paths:
        for group in load_rule_groups(path):
            for rule in group["rules"]:
                if "record" in rule:
                    queries.append(Query(path.name, rule["record"], rule["expr"].strip()))
                    continue
                severity = rule.get("labels", {}).get("severity", "?")
                slo = rule.get("labels", {}).get("slo")
                label = f"{rule['alert']} ({severity}{', ' + slo if slo else ''})"
                for number, expr in enumerate(strip_comparisons(rule["expr"]), start=1):
                    queries.append(Query(path.name, f"{label} #{number}", expr))
    return queries


def view_queries(rate_window: str = "1m") -> list[Query]:
    """Every query of the page's mesh view, with its rate window filled in."""
    from opsconductor.observability import view

    return [Query("mesh view", v.name, v.expr.replace(view.WINDOW, rate_window)) for v in view.view_queries()]


def all_queries() -> list[Query]:
    """What a Prometheus scraping real traffic must answer with data."""
    return rule_queries() + dashboard_queries() + view_queries()
