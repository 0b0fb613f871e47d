"""Canary weights of a running stack. weights.json in the state directory is their one source;
every change writes it and publishes it as the runtime layer every gateway replica reads
(opsconductor/gateway/runtime.py), then waits until each replica applies it. Every command that
changes the split goes through here."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from opsconductor.gateway import runtime
from opsconductor.gateway.admin import AdminError, EnvoyAdmin, Weights, validate_weights
from opsconductor.stack.state import RUNTIME_DIR, StackState, read_weights, write_weights

APPLY_TIMEOUT_S = 10.0  # Envoy reloads a swapped layer within milliseconds


def runtime_dir(state_dir: Path) -> Path:
    """The layer the stack's gateways read (its `..data` symlink)."""
    return state_dir.resolve() / RUNTIME_DIR


def set_canary_share(state_dir: Path, percent: int, admins: Sequence[EnvoyAdmin] = (),
                     mirror: int = 0) -> Weights:
    """Sends `percent` of calls to the canary (and copies `mirror` percent of the rest there,
    replies discarded; any other change turns mirroring off): kept in weights.json, published
    to the layer, and returned once every gateway of `admins` applies it."""
    weights = validate_weights(100 - percent, percent, mirror)
    write_weights(state_dir, weights)
    publish_saved(state_dir)
    wait_applied(admins, weights)
    return weights


def publish_saved(state_dir: Path) -> Weights | None:
    """Makes the layer hold what weights.json holds (nothing: the gateways' configured split)."""
    saved = read_weights(state_dir)
    directory = runtime_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)  # Envoy watches in it from its start
    if saved is None:
        (directory / runtime.DATA_LINK).unlink(missing_ok=True)
    else:
        runtime.publish(directory, saved)
    return saved


def wait_applied(admins: Sequence[EnvoyAdmin], weights: Weights, timeout_s: float = APPLY_TIMEOUT_S) -> None:
    """Returns once each gateway's runtime shows `weights`; RuntimeError naming those that do not."""
    deadline = time.monotonic() + timeout_s
    pending = list(admins)
    while pending:
        still = []
        for admin in pending:
            try:
                if admin.weights() != weights:
                    still.append(admin)
            except AdminError:
                still.append(admin)
        pending = still
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"the gateway at {', '.join(a.base_url for a in pending)} did not apply stable "
                               f"{weights.stable} / canary {weights.canary} within {timeout_s:g} s; the layer "
                               "holds the new weights")
        if pending:
            time.sleep(0.02)


def gateway_admins(stack_state: StackState) -> dict[str, EnvoyAdmin]:
    """Each gateway replica of a running stack, by component name, as its admin."""
    return {name: EnvoyAdmin(f"http://127.0.0.1:{info.ports['admin']}", timeout=2)
            for name, info in stack_state.components.items() if info.kind == "gateway" and "admin" in info.ports}


def applied(admins: Mapping[str, EnvoyAdmin]) -> dict[str, dict[str, int] | str]:
    """What each gateway applies now, read from its runtime (or why it could not be read)."""
    found: dict[str, dict[str, int] | str] = {}
    for name, admin in admins.items():
        try:
            weights = admin.weights()
            found[name] = {"stable": weights.stable, "canary": weights.canary}
        except AdminError as error:
            found[name] = str(error)
    return found


def disagreement(found: Mapping[str, dict[str, int] | str]) -> str:
    """'' when every gateway applies the same weights, else a line naming each one's."""
    if len({str(value) for value in found.values()}) <= 1:
        return ""
    return "the gateways do not apply the same weights: " + ", ".join(
        f"{name} {value['stable']}/{value['canary']}" if isinstance(value, dict) else f"{name} unknown ({value})"
        for name, value in found.items())
