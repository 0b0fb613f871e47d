"""Reads Prometheus: instant queries over its HTTP API, and one metric off a /metrics page."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass


class PrometheusError(RuntimeError):
    """Prometheus did not answer, or rejected the query."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


def query(base_url: str, expr: str, timeout: float = 10.0) -> list[Sample]:
    """An instant query; NaN values (0/0 ratios) are returned as they are."""
    url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        raise PrometheusError(f"query {expr!r} rejected: {error.read().decode(errors='replace')[:300]}") from None
    except OSError as error:
        raise PrometheusError(f"Prometheus at {base_url} unreachable: {error}") from None
    if body.get("status") != "success":
        raise PrometheusError(f"query {expr!r} failed: {body.get('error')}")
    data = body["data"]
    if data["resultType"] == "scalar":
        return [Sample({}, float(data["result"][1]))]
    return [Sample(item["metric"], float(item["value"][1])) for item in data["result"]]


def scalar(base_url: str, expr: str) -> float | None:
    """The single value of `expr`, or None when it has no data."""
    samples = query(base_url, expr)
    return samples[0].value if samples else None


_SERIES = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")


def scrape_sum(metrics_url: str, name: str, **labels: str) -> float:
    """The sum of `name`'s series on a /metrics page that carry `labels`."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        match = _SERIES.match(line)
        if not match or match["name"] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match["value"])
    return total
