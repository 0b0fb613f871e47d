"""The Python code passes the project's lint rules (pyproject.toml [tool.ruff])."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.procs import BIN

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    result = subprocess.run([str(BIN / "ruff"), "check", "--output-format", "concise", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
