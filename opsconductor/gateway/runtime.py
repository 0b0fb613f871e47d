"""The canary weights as an Envoy runtime layer on disk: the one place every gateway replica
reads its split from. Laid out as kubelet lays out a mounted ConfigMap, so one Envoy config
reads it locally and in Kubernetes: `<dir>/..data` is a symlink to a generation directory
holding one file per runtime key (the file's name is the key, its content the value), and a
change is a new generation swapped in by renaming a new symlink over `..data` (atomic; Envoy
watches the symlink and reloads the whole tree)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from opsconductor.gateway.admin import Weights, validate_weights
from opsconductor.gateway.settings import MIRROR_RUNTIME_KEY, RUNTIME_KEY_PREFIX
from services.common.names import POOLS

DATA_LINK = "..data"  # what Envoy's disk layer watches (kubelet's name for a ConfigMap volume)
LAYER_NAME = "weights"
MAX_VALUE_BYTES = 16  # a weight is at most "100"; anything bigger is not ours


def runtime_key(pool: str) -> str:
    return f"{RUNTIME_KEY_PREFIX}.{pool}"


def layer_files(weights: Weights) -> dict[str, str]:
    """The layer's files (= a ConfigMap's data): runtime key -> value."""
    return {**{runtime_key(pool): str(getattr(weights, pool)) for pool in POOLS},
            MIRROR_RUNTIME_KEY: str(weights.mirror)}


def disk_layer(directory: str) -> dict[str, Any]:
    """The `layered_runtime` layer reading the weights from `directory` (which must exist
    when Envoy starts; the symlink may come later)."""
    return {"name": LAYER_NAME,
            "disk_layer": {"symlink_root": f"{directory.rstrip('/')}/{DATA_LINK}", "subdirectory": "."}}


def publish(directory: Path, weights: Weights) -> None:
    """Swaps in a generation holding `weights`; readers see the old tree or the new, never half."""
    weights = validate_weights(weights.stable, weights.canary, weights.mirror)
    directory.mkdir(parents=True, exist_ok=True)
    generation = directory / f"..{time.time_ns()}"
    generation.mkdir()
    for name, value in layer_files(weights).items():
        (generation / name).write_text(value)
    link = directory / f"{DATA_LINK}_tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(generation.name)
    os.replace(link, directory / DATA_LINK)
    for old in directory.glob("..[0-9]*"):  # earlier generations: nothing points at them any more
        if old != generation:
            for file in old.iterdir():
                file.unlink()
            old.rmdir()


def read(directory: Path) -> Weights | None:
    """The weights the layer holds now, or None when it holds none (or not ours)."""
    values = []
    for key in (*map(runtime_key, POOLS), MIRROR_RUNTIME_KEY):
        try:
            with open(directory / DATA_LINK / key, "rb") as file:
                values.append(file.read(MAX_VALUE_BYTES + 1).decode().strip())
        except FileNotFoundError:
            if key != MIRROR_RUNTIME_KEY:
                return None
            values.append("0")  # a layer written before mirroring existed: no mirroring
        except (OSError, UnicodeDecodeError):
            return None
    try:
        return validate_weights(*values)
    except ValueError:
        return None
