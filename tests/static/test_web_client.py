"""The Exec Sandbox page's Node side: install from the lock file, unit tests, type check, build.

So `pytest` alone covers the browser client too. Needs Node and npm on PATH; `npm ci` runs only
when node_modules is missing or older than package-lock.json (the shared web_node_modules fixture).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web_client"
pytestmark = pytest.mark.slow


def _npm(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    npm = shutil.which("npm")
    assert npm is not None, "npm is not on PATH: the web client needs Node 20+ and npm"
    env = {key: value for key, value in os.environ.items() if key != "FORCE_COLOR"}
    return subprocess.run([npm, *args], cwd=WEB, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**env, "NO_COLOR": "1", "CI": "true"})


def _passed(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{' '.join(map(str, result.args))} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def node_modules(web_node_modules: Path | None) -> Path:
    # tests/conftest.py runs `npm ci` when node_modules is missing or older than the lock file.
    assert web_node_modules is not None, "web_client/package-lock.json is missing"
    assert (web_node_modules / ".bin" / "vitest").exists()
    return web_node_modules


def test_dependencies_are_pinned_exactly() -> None:
    package = json.loads((WEB / "package.json").read_text())
    for section in ("dependencies", "devDependencies"):
        for name, version in package.get(section, {}).items():
            assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} is not pinned exactly: {version}"
    # The runtime and the stub generator must agree, or generated code and runtime disagree.
    assert package["dependencies"]["@bufbuild/protobuf"] == package["devDependencies"]["@bufbuild/protoc-gen-es"]
    lock = json.loads((WEB / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"] == package["dependencies"]


def test_unit_tests_pass(node_modules: Path) -> None:
    result = _npm("test")
    _passed(result)
    assert re.search(r"Tests\s+\d+ passed", result.stdout), result.stdout


def test_typecheck_passes(node_modules: Path) -> None:
    _passed(_npm("run", "typecheck"))


def test_build_makes_a_static_page_that_reads_its_config_at_run_time(node_modules: Path) -> None:
    _passed(_npm("run", "build"))
    dist = WEB / "dist"
    index = (dist / "index.html").read_text()
    assert 'id="app"' in index
    # Every script is an external file: the static server's CSP allows no inline script.
    scripts = re.findall(r"<script\b([^>]*)>", index)
    assert scripts and all("src=" in attrs for attrs in scripts), scripts
    for ref in re.findall(r'(?:src|href)="\./(assets/[^"]+)"', index):
        assert (dist / ref).is_file(), f"index.html refers to missing {ref}"
    assert json.loads((dist / "config.json").read_text())["gatewayUrl"]
    # The gateway's address comes from config.json, never from the bundle.
    bundle = "".join(path.read_text() for path in (dist / "assets").glob("*.js"))
    assert "127.0.0.1:3000" not in bundle
    assert "config.json" in bundle
