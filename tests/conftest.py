"""Fixtures every test layer shares."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.services import ServicePair, service_pair


@pytest.fixture
def start_services(tmp_path) -> Iterator:
    """Starts pipeline + automation pairs with the given environment; stops them all after."""
    started: list[ServicePair] = []

    def start(**kwargs) -> ServicePair:
        pair = service_pair(tmp_path, name=f"pair{len(started)}", **kwargs)
        started.append(pair)
        return pair.start()

    yield start
    for pair in started:
        pair.stop()


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> Iterator[ServicePair]:
    """One default pair shared by a module's read-only tests."""
    pair = service_pair(tmp_path_factory.mktemp("services"))
    pair.start()
    yield pair
    pair.stop()


WEB_CLIENT = Path(__file__).resolve().parents[1] / "web_client"


@pytest.fixture(scope="session")
def web_node_modules() -> Path | None:
    """web_client/node_modules installed from the committed lockfile (npm ci) when stale."""
    lock = WEB_CLIENT / "package-lock.json"
    if not lock.exists():
        return None
    stamp = WEB_CLIENT / "node_modules" / ".package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        result = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB_CLIENT, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
    return WEB_CLIENT / "node_modules"
