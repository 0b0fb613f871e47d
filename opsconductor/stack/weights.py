"""Canary weights of a running stack: set at the gateway and kept in the state directory, so a
restarted stack gets them back. Every command that changes the split goes through here."""

from __future__ import annotations

from pathlib import Path

from opsconductor.gateway.admin import EnvoyAdmin, Weights
from opsconductor.stack.state import write_weights


def set_canary_share(admin: EnvoyAdmin, state_dir: Path | None, percent: int) -> Weights:
    """Sends `percent` of calls to the canary at once; kept when `state_dir` is given."""
    weights = admin.set_weights(100 - percent, percent)
    if state_dir is not None:
        write_weights(state_dir, weights)
    return weights
