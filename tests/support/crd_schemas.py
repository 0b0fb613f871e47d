"""The offline checker of the custom resources the deploy files carry (cert-manager's and
prometheus-operator's kinds): the npm packages pinned in tests/static/crd_schemas/, generated
from each project's API types or CRDs, run by validate.mjs. No cluster runs here."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

CHECKER = Path(__file__).resolve().parents[1] / "static" / "crd_schemas"


def install() -> Path:
    """The checker's node_modules, installed from its lockfile when missing or stale."""
    stamp = CHECKER / "node_modules" / ".package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < (CHECKER / "package-lock.json").stat().st_mtime:
        result = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CHECKER, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    return CHECKER


def validate(objects: list[dict]) -> subprocess.CompletedProcess:
    """One line per object, "ok KIND NAME" or "invalid KIND NAME: reason"; exit code 1 if any is invalid."""
    return subprocess.run(["node", "validate.mjs"], cwd=CHECKER, input="".join(json.dumps(o) + "\n" for o in objects),
                          capture_output=True, text=True, timeout=60)
