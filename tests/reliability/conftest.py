"""Fixtures of the reliability tests, and the figures they measure: printed at the end of the
run and written to test-artifacts/reliability.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.topology import Topology, start_topology

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
_FIGURES: dict[str, dict[str, object]] = {}


@pytest.fixture
def figure(request, record_property):
    """Records a measured figure: `figure("name", 1.23, "s")`."""
    def record(name: str, value: float | int, unit: str = "") -> None:
        _FIGURES[name] = {"value": value, "unit": unit, "test": request.node.name}
        record_property(name, value)

    return record


def pytest_terminal_summary(terminalreporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, entry in sorted(_FIGURES.items()):
        value = entry["value"]
        shown = f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
        terminalreporter.write_line(f"{name}: {shown} {entry['unit']}".rstrip())
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "reliability.json").write_text(json.dumps(_FIGURES, indent=2, sort_keys=True) + "\n")


@pytest.fixture
def healed(mesh):
    """The module's mesh for one test; whatever the test killed is restarted afterwards."""
    yield mesh
    mesh.heal()


@pytest.fixture(scope="module")
def mesh(request, tmp_path_factory) -> Iterator[Topology]:
    """The one mesh factory of this layer: service pairs behind a real Envoy, shared by a
    module and shaped by its MESH (start_topology's arguments; default one replica per pool)."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    topology = start_topology(tmp_path_factory.mktemp(module), **getattr(request.module, "MESH", {}))
    yield topology
    topology.stop()
