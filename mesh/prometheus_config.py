"""Renders the Prometheus configuration that scrapes the mesh: automation, pipeline and Envoy."""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesh import yamltext

_LOGGER = logging.getLogger(__name__)

JOBS = ("automation", "pipeline", "envoy")
POOLS = ("stable", "canary")
SERVICE_METRICS_PATH = "/metrics"
# Envoy's stats listener serves only this path (its admin port stays on loopback).
ENVOY_METRICS_PATH = "/stats/prometheus"
# Relative paths resolve against the config file's directory, so the same glob works for the
# committed config (next to rules/) and for a config written next to a copy of rules/.
DEFAULT_RULE_FILES = ("rules/*.yml",)
DEFAULT_INTERVAL_S = 15.0
# Prometheus's own default; a scrape may never take longer than the interval between scrapes.
_MAX_SCRAPE_TIMEOUT_S = 10.0

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPOSE_CONFIG = REPO_ROOT / "observability" / "prometheus" / "prometheus.compose.yml"
_HEADER = """\
Prometheus configuration for the docker compose deployment (deploy/compose.yaml).
Rendered by `python -m mesh.prometheus_config --compose --write`; do not edit by hand:
tests/unit/test_observability.py fails when it differs from a fresh render."""

_ADDRESS = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_INSTANCE = re.compile(r"^[A-Za-z0-9_.:@\-]+$")


@dataclass(frozen=True)
class ScrapeTarget:
    """One process Prometheus scrapes; job, pool and instance become its target labels."""

    job: str  # automation | pipeline | envoy
    pool: str  # stable | canary; empty for envoy, which fronts both pools
    instance: str  # the process's name, shown instead of its address
    address: str  # host:port of its metrics listener

    def __post_init__(self) -> None:
        if self.job not in JOBS:
            raise ValueError(f"unknown job {self.job!r}; expected one of {', '.join(JOBS)}")
        if self.job == "envoy":
            if self.pool:
                raise ValueError(f"envoy target {self.instance!r} takes no pool (it fronts both)")
        elif self.pool not in POOLS:
            raise ValueError(f"{self.job} target {self.instance!r} needs a pool: {' or '.join(POOLS)}")
        if not _INSTANCE.match(self.instance):
            raise ValueError(f"bad instance name {self.instance!r}")
        if not _ADDRESS.match(self.address):
            raise ValueError(f"bad address {self.address!r}; expected host:port")


def duration(seconds: float) -> str:
    """A Prometheus duration string: 15 -> "15s", 0.5 -> "500ms"."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"duration must be positive, got {seconds!r}")
    millis = round(seconds * 1000)
    if millis == 0:
        raise ValueError(f"duration below a millisecond: {seconds!r}")
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def build_config(targets: Iterable[ScrapeTarget], *, scrape_interval: float = DEFAULT_INTERVAL_S,
                 evaluation_interval: float | None = None,
                 rule_files: Sequence[str] = DEFAULT_RULE_FILES) -> dict[str, Any]:
    """The configuration as plain data: one scrape job per job name, in JOBS order."""
    targets = list(targets)
    seen: set[tuple[str, str]] = set()
    for target in targets:
        key = (target.job, target.instance)
        if key in seen:
            raise ValueError(f"instance {target.instance!r} appears twice in job {target.job!r}")
        seen.add(key)
    global_config = {
        "scrape_interval": duration(scrape_interval),
        "scrape_timeout": duration(min(scrape_interval, _MAX_SCRAPE_TIMEOUT_S)),
        "evaluation_interval": duration(evaluation_interval or scrape_interval),
    }
    scrape_configs = []
    for job in JOBS:
        job_targets = [t for t in targets if t.job == job]
        if job_targets:
            scrape_configs.append(_scrape_config(job, job_targets))
    return {"global": global_config, "rule_files": list(rule_files), "scrape_configs": scrape_configs}


def _scrape_config(job: str, targets: Sequence[ScrapeTarget]) -> dict[str, Any]:
    static_configs = []
    for target in targets:
        # Setting `instance` here replaces the address Prometheus would use; `pool` is a
        # target label too, so every series of a process carries it whatever the process
        # exports. honor_labels stays false: a process cannot relabel itself into another pool
        # (opsconductor_build_info's own pool label is kept as exported_pool).
        labels = {"instance": target.instance}
        if target.pool:
            labels["pool"] = target.pool
        static_configs.append({"targets": [target.address], "labels": labels})
    return {
        "job_name": job,
        "metrics_path": ENVOY_METRICS_PATH if job == "envoy" else SERVICE_METRICS_PATH,
        "static_configs": static_configs,
    }


def render(targets: Iterable[ScrapeTarget], *, scrape_interval: float = DEFAULT_INTERVAL_S,
           evaluation_interval: float | None = None, rule_files: Sequence[str] = DEFAULT_RULE_FILES,
           header: str = "") -> str:
    """The configuration as YAML text."""
    config = build_config(targets, scrape_interval=scrape_interval, evaluation_interval=evaluation_interval,
                          rule_files=rule_files)
    return yamltext.dump(config, header=header)


def compose_targets() -> list[ScrapeTarget]:
    """The processes of deploy/compose.yaml, addressed by their compose service names."""
    targets = [ScrapeTarget("envoy", "", "gateway", "gateway:9902")]
    for pool in POOLS:
        targets.append(ScrapeTarget("automation", pool, f"automation-{pool}", f"automation-{pool}:9091"))
        targets.append(ScrapeTarget("pipeline", pool, f"pipeline-{pool}", f"pipeline-{pool}:9092"))
    return targets


def render_compose() -> str:
    """The committed observability/prometheus/prometheus.compose.yml."""
    return render(compose_targets(), header=_HEADER)


def write_config(path: Path, targets: Iterable[ScrapeTarget], **options: Any) -> Path:
    """Writes a rendered configuration to `path` (for the local stack and tests)."""
    path.write_text(render(targets, **options))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mesh.prometheus_config", description=__doc__)
    parser.add_argument("--compose", action="store_true", required=True,
                        help="render the docker compose deployment's configuration")
    parser.add_argument("--write", action="store_true",
                        help=f"write it to {COMPOSE_CONFIG.relative_to(REPO_ROOT)} instead of stdout")
    args = parser.parse_args(argv)
    text = render_compose()
    if args.write:
        COMPOSE_CONFIG.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
