"""The canary rollout in progress, for the mesh view: the JSON file the rollout keeps up to
date (its steps, weight and verdicts so far), served read-only with its age, so the view can
tell a rollout that stopped reporting from one that is still running."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

from services.page.server import ApiReply, ApiRoute

PATH = "/api/mesh/rollout"
MAX_BYTES = 256 * 1024
_NONE = {"running": False}


def _reply(data: Mapping[str, object]) -> ApiReply:
    return ApiReply(200, json.dumps(data).encode())


def rollout_route(state_file: str) -> ApiRoute:
    """The route to mount at PATH; without a file (or before a rollout ran) it says none runs."""
    path = Path(state_file) if state_file else None

    def route(method: str, _path: str, _headers: Mapping[str, str]) -> ApiReply:
        if method != "GET":
            return ApiReply(405, b'{"error": "only GET"}', headers={"Allow": "GET"})
        if path is None:
            return _reply(_NONE)
        try:
            with path.open("rb") as file:
                raw = file.read(MAX_BYTES + 1)
            modified = path.stat().st_mtime
        except FileNotFoundError:
            return _reply(_NONE)
        except OSError:
            return _reply({**_NONE, "error": "the rollout's state file cannot be read"})
        try:
            data = json.loads(raw) if len(raw) <= MAX_BYTES else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return _reply({**_NONE, "error": "the rollout's state file is not a rollout record"})
        updated = data.get("updated_at")
        data["age_s"] = round(time.time() - (updated if isinstance(updated, (int, float)) else modified), 1)
        return _reply(data)

    return route
