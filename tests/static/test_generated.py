"""Everything generated is fresh: `make generate` (scripts/generate.sh) run into an empty root
makes exactly the committed stubs, renders and generated doc sections, byte for byte, and
nothing else."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

from opsconductor.renders import RENDERS, paths

ROOT = Path(__file__).resolve().parents[2]
STUB_TREES = ("opsconductor/automation", "opsconductor/pipeline", "web_client/src/gen")


def _files(root: Path, tree: str) -> dict[str, Path]:
    return {str(path.relative_to(root)): path for path in (root / tree).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts}


def test_every_generated_file_is_fresh(tmp_path, web_node_modules):
    result = subprocess.run([str(ROOT / "scripts" / "generate.sh"), str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stdout + result.stderr
    made = {name: path for tree in STUB_TREES for name, path in _files(tmp_path, tree).items()}
    committed = {name: path for tree in STUB_TREES for name, path in _files(ROOT, tree).items()}
    made.update({name: tmp_path / name for name in paths()})
    committed.update({name: ROOT / name for name in paths() if (ROOT / name).exists()})
    assert len(made) > len(RENDERS) + 8, sorted(made)  # not vacuous: every stub tree was generated
    stale = sorted(set(made) ^ set(committed))
    stale += sorted(name for name in set(made) & set(committed)
                    if not filecmp.cmp(made[name], committed[name], shallow=False))
    assert not stale, f"stale generated files (run `make generate`): {stale}"
