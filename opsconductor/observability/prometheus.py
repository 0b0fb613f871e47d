"""Reads Prometheus: instant queries over its HTTP API, and series off a process's /metrics page
(parsed by prometheus_client's own parser, the one reader of that format here)."""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import yaml
from prometheus_client.parser import text_string_to_metric_families


class PrometheusError(RuntimeError):
    """Prometheus did not answer, or rejected the query."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


def query(base_url: str, expr: str, timeout: float = 10.0, at: float | None = None) -> list[Sample]:
    """An instant query (now, or at the unix time `at`); NaN values (0/0 ratios) are returned
    as they are."""
    params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
    url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode(params)}"
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


def scrape_interval(base_url: str, timeout: float = 10.0) -> float:
    """The global scrape interval (seconds) of the Prometheus at `base_url`, from its own
    /api/v1/status/config (1m, Prometheus's default, when the config names none)."""
    url = f"{base_url.rstrip('/')}/api/v1/status/config"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            config = yaml.safe_load(json.load(response)["data"]["yaml"]) or {}
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as error:
        raise PrometheusError(f"Prometheus at {base_url} did not give its config: {error}") from None
    return duration_s(str((config.get("global") or {}).get("scrape_interval", "1m")))


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_s(text: str) -> float:
    """A Prometheus duration ("15s", "1m30s", "500ms") in seconds."""
    parts = re.findall(r"(\d+)(ms|[smhdwy])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise PrometheusError(f"not a Prometheus duration: {text!r}")
    return sum(int(number) * _UNITS[unit] for number, unit in parts)


def scrape(metrics_url: str, timeout: float = 10.0, context: ssl.SSLContext | None = None) -> dict[str, list[Sample]]:
    """Every sample on a /metrics page, by sample name (`foo_total`, `bar_bucket`, …); `context`
    carries a client certificate for a mesh that serves its metrics over mTLS."""
    with urllib.request.urlopen(metrics_url, timeout=timeout, context=context) as response:
        text = response.read().decode()
    samples: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(Sample(sample.labels, sample.value))
    return samples


def scrape_sum(metrics_url: str, name: str, context: ssl.SSLContext | None = None, **labels: str) -> float:
    """The sum of the `name` samples on a /metrics page that carry `labels` (0 when none do)."""
    return sum(sample.value for sample in scrape(metrics_url, context=context).get(name, ())
               if all(sample.labels.get(key) == value for key, value in labels.items()))
