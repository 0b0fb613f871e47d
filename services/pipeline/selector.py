"""Chooses a tool for an input when the caller names none. Plain Python.

Scoring is deterministic and explainable: an input that has a tool's shape (a URL, host:port,
"ping") scores 5; each input word that is one of the tool's keywords scores 1, its name 3.
The highest score wins; ties go to the earlier tool in the catalogue. Results are cached in a
bounded LRU with a TTL. An LLM planner would plug in as another `Selector`.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cachetools import TTLCache

from services.common.errors import UnknownToolError
from services.pipeline.tools import Tool

_WORD = re.compile(r"[a-z0-9_]+")
SHAPE_SCORE = 5
NAME_SCORE = 3
KEYWORD_SCORE = 1


@dataclass(frozen=True)
class Selection:
    """The chosen tool, why, and whether the answer came from the cache."""

    tool: Tool
    score: int
    reasons: tuple[str, ...]
    cached: bool = False


class Selector(Protocol):
    """The seam where a planner plugs in: text and platform in, a tool out."""

    def select(self, text: str, platform: str) -> Selection: ...


class NoMatch(UnknownToolError):
    """No tool for this platform fits the input."""


class KeywordSelector:
    def __init__(self, catalogue: Sequence[Tool], cache_size: int = 1024, cache_ttl_s: float = 300.0,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self._catalogue = tuple(catalogue)
        # Keys are digests: inputs may be 64 KiB each and the cache must stay small.
        self._cache: TTLCache[tuple[bytes, str], Selection] = TTLCache(cache_size, cache_ttl_s, timer)

    def select(self, text: str, platform: str) -> Selection:
        normalized = " ".join(text.lower().split())
        key = (hashlib.blake2b(normalized.encode("utf-8", "surrogatepass"), digest_size=16).digest(), platform)
        cached = self._cache.get(key)
        if cached is not None:
            return Selection(cached.tool, cached.score, cached.reasons, cached=True)
        selection = self._score_all(normalized, platform)
        self._cache[key] = selection
        return selection

    def _score_all(self, text: str, platform: str) -> Selection:
        best: Selection | None = None
        for tool in self._catalogue:
            if platform not in tool.platforms:
                continue
            points, reasons = score(tool, text)
            if points > 0 and (best is None or points > best.score):
                best = Selection(tool, points, reasons)
        if best is None:
            raise NoMatch(f"no {platform} tool matches this input; name one with the tool field (see ListTools)",
                          platform=platform)
        return best


def score(tool: Tool, text: str) -> tuple[int, tuple[str, ...]]:
    """The score of `tool` for normalized `text`, with the reasons that add up to it."""
    total, reasons = 0, []
    if tool.input_pattern is not None and tool.input_pattern.fullmatch(text):
        total += SHAPE_SCORE
        reasons.append("input has its shape")
    words = set(_WORD.findall(text))
    if tool.name in words:
        total += NAME_SCORE
        reasons.append(f"names {tool.name}")
    matched = sorted(words.intersection(tool.keywords) - {tool.name})
    if matched:
        total += KEYWORD_SCORE * len(matched)
        reasons.append("keywords: " + ", ".join(matched))
    return total, tuple(reasons)
