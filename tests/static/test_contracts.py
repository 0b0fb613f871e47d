"""The contracts: buf lint, and no breaking change against the last released contract."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.procs import BIN

ROOT = Path(__file__).resolve().parents[2]
BUF = str(BIN / "buf")


def run(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, **kwargs)


def test_buf_lint_passes():
    result = run(BUF, "lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_breaking_change_against_the_released_contract():
    result = run(BUF, "breaking", "--against", "proto/released.binpb")
    assert result.returncode == 0, result.stdout + result.stderr


def test_breaking_check_catches_a_removed_field(tmp_path):
    """The check above can fail: renumbering a field against the same baseline is caught."""
    copy = tmp_path / "proto"
    subprocess.run(["cp", "-r", str(ROOT / "proto"), str(copy)], check=True)
    (tmp_path / "buf.yaml").write_text((ROOT / "buf.yaml").read_text())
    proto = copy / "opsconductor/automation/v1/automation.proto"
    proto.write_text(proto.read_text().replace("string version = 9;", "string version = 10;"))
    result = subprocess.run([BUF, "breaking", "--against", str(ROOT / "proto/released.binpb")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "version" in result.stdout
