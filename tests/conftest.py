"""Fixtures every test layer shares."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsconductor.stack.replica import ServicePair, service_pair


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


@pytest.fixture(scope="session")
def built_page(web_node_modules: Path | None) -> Path:
    """web_client/dist built from the sources (the stack serves the page only when it exists)."""
    assert web_node_modules is not None, "web_client/package-lock.json is missing"
    result = subprocess.run(["npm", "run", "build"], cwd=WEB_CLIENT, capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    return WEB_CLIENT / "dist"


@pytest.fixture(scope="module")
def mesh_stack(tmp_path_factory, built_page):
    """The whole mesh (`opsconductor up --detach`) on free ports with a 1 s scrape interval,
    shared by a module; stopped after."""
    from tests.support.stack import start_stack, stop_stack

    stack = start_stack(tmp_path_factory.mktemp("stack"), "--scrape-interval", "1")
    yield stack
    stop_stack(stack)
