"""Monitoring as code, checked by promtool: the rule files and their unit tests, the rendered
Prometheus configs, and every dashboard query."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from opsconductor.identity.store import IdentityStore
from opsconductor.identity.workloads import mesh_workloads
from opsconductor.observability import prometheus_config as pc
from tests.support import promql
from tests.support.promql import Query

PROM = promql.REPO_ROOT / "observability" / "prometheus"
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))
COMPOSE_CONFIG = PROM / "prometheus.compose.yml"


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: scripts/install_system_packages.sh installs it (Debian prometheus)"
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd)


def _rule_name(query: Query, index: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", f"{query.source} {query.name}".lower()).strip("_")
    return f"panel_{index}_{slug}"


def test_rule_files_pass_promtool_check() -> None:
    files = promql.rule_files()
    assert {path.name for path in files} >= {"recording.yml", "slo.yml", "alerts.yml"}
    result = promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", [
    pytest.param(path, id=path.name, marks=[pytest.mark.slow] if "slow" in path.name else [])
    for path in RULE_TESTS])
def test_promtool_rule_unit_tests(test_file: Path) -> None:
    result = promtool("test", "rules", test_file.name, cwd=test_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_config_with_the_rules_passes_promtool(tmp_path: Path) -> None:
    shutil.copytree(PROM / "rules", tmp_path / "rules")
    config = pc.write_config(tmp_path / "prometheus.yml", pc.compose_targets(), scrape_interval=1)
    result = promtool("check", "config", config)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # The glob must have found every rule file, not silently none.
    assert f"{len(promql.rule_files())} rule files found" in output, output


def test_compose_config_passes_promtool(tmp_path: Path) -> None:
    # Its freshness is checked with every other render (tests/static/test_generated.py).
    # promtool checks that the client certificate files exist: a bundle stands in for the
    # compose volume's, and the rules directory goes along.
    store = IdentityStore(tmp_path / "identity", [w for w in mesh_workloads() if w.name == "prometheus"], 3600)
    store.ensure()
    shutil.copytree(PROM / "rules", tmp_path / "rules")
    config = tmp_path / "prometheus.compose.yml"
    bundle = str(tmp_path / "identity" / "prometheus")
    config.write_text(COMPOSE_CONFIG.read_text().replace(pc.COMPOSE_IDENTITY, bundle))
    result = promtool("check", "config", config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    queries = promql.dashboard_queries()
    assert len(queries) > 20
    # Each query becomes a recording rule named after its panel, all checked in one promtool run.
    groups = [{"name": "dashboards", "rules": [{"record": _rule_name(q, i), "expr": q.expr}
                                                for i, q in enumerate(queries)]}]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
