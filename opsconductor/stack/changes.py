"""What the supervisor changes on command, each as an operation: the canary's share, a
rollback, promote, a pool restarted with other settings (`canary bypass`), every certificate
renewed (`certs rotate`), and outage drills. Each either completes or puts the mesh back as it
was, and says which in its progress."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING

from opsconductor.stack.control import Command
from opsconductor.stack.operations import Progress, Say, Work
from opsconductor.stack.spec import Version
from opsconductor.gateway.admin import Weights
from opsconductor.stack.weights import set_canary_share
from services.common.names import POOLS

if TYPE_CHECKING:
    from opsconductor.stack.supervisor import Replica, Stack

MAX_ENV_ENTRIES = 32


def commands(stack: Stack) -> dict[str, Command]:
    """The control channel's commands, by name."""
    return {
        "set-weights": lambda args: _set_weights(stack, _percent(args.get("canary"))),
        "rollback": lambda args: _rollback(stack),
        "promote": lambda args: _promote(stack),
        "restart-pool": lambda args: _restart_pool(stack, _pool(args.get("pool")), _env(args.get("env", {}))),
        "rotate-certificates": lambda args: _rotate_certificates(stack),
        "stop-components": lambda args: _stop(stack, _names(stack, args.get("components"))),
        "start-components": lambda args: _start(stack, _names(stack, args.get("components"))),
    }


# --- checked arguments (a client may send anything) ------------------------------------------------

def _percent(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise ValueError(f"the canary share must be a whole number from 0 to 100, not {value!r}")
    return value


def _pool(value: object) -> str:
    if value not in POOLS:
        raise ValueError(f"unknown pool {value!r}; the pools are {', '.join(POOLS)}")
    return str(value)


def _env(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > MAX_ENV_ENTRIES or not all(
            isinstance(k, str) and k.isidentifier() and isinstance(v, str) for k, v in value.items()):
        raise ValueError("env must map at most 32 variable names to strings")
    return value


def _names(stack: Stack, value: object) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(name, str) for name in value):
        raise ValueError("components must be a list of component names")
    unknown = [name for name in value if name not in stack.supervisor.components]
    if unknown:
        raise ValueError(f"no such component: {', '.join(unknown[:5])}")
    return value


# --- the operations ----------------------------------------------------------------------------------

def share(stack: Stack, percent: int) -> Weights:
    """The canary's share set in the stack's weights file and layer, once every gateway applies it."""
    return set_canary_share(stack.spec.state_dir, percent, stack.gateway_admins())


def _set_weights(stack: Stack, percent: int) -> tuple[str, Work]:
    def work(say: Progress) -> dict:
        started = time.monotonic()
        weights = share(stack, percent)
        took_ms = (time.monotonic() - started) * 1000
        say(f"weights: stable {weights.stable} % / canary {weights.canary} %, applied by "
            f"{len(stack.gateways)} gateway(s) in {took_ms:.0f} ms")
        return {"weights": asdict(weights), "took_ms": round(took_ms, 1), "gateways": len(stack.gateways)}

    return f"canary share to {percent} %", work


def _rollback(stack: Stack) -> tuple[str, Work]:
    def work(say: Progress) -> dict:
        started = time.monotonic()
        weights = share(stack, 0)
        took_ms = (time.monotonic() - started) * 1000
        say(f"rolled back: every call goes to the stable pool ({took_ms:.0f} ms)")
        return {"weights": asdict(weights), "took_ms": round(took_ms, 1)}

    return "roll back to the stable pool", work


def _promote(stack: Stack) -> tuple[str, Work]:
    def work(say: Progress) -> dict:
        before = stack.admin.weights()
        canary = stack.current_version("canary")
        share(stack, 100)
        say("canary takes 100 % while the stable pool restarts on its version")
        try:
            restart_pool(stack, "stable", Version(canary.source, canary.version, dict(canary.env)), say)
        except Exception:
            share(stack, before.canary)
            say(f"weights back to stable {before.stable} % / canary {before.canary} %: the mesh is as it was")
            raise
        weights = share(stack, 0)
        say("stable now runs the canary's version and takes 100 % again")
        return {"weights": asdict(weights), "version": canary.version or "(working tree)"}

    return "promote the canary: stable restarts on its version", work


def promote_work(stack: Stack) -> Work:
    """Promote's work, for an operation that promotes as its last step (the rollout)."""
    return _promote(stack)[1]


def _restart_pool(stack: Stack, pool: str, env: dict[str, str]) -> tuple[str, Work]:
    def work(say: Progress) -> dict:
        version = stack.current_version(pool).with_env(**env)
        restart_pool(stack, pool, version, say)
        return {"pool": pool, "env": env}

    settings = ", ".join(f"{key}={value}" for key, value in env.items()) or "the same settings"
    return f"restart the {pool} pool with {settings}", work


def restart_pool(stack: Stack, pool: str, version: Version, say: Say) -> None:
    """Restarts a pool's replicas on `version`, one at a time, Envoy draining each around it.
    When one does not come up, every replica of the pool is put back on its version."""
    done: list[tuple[Replica, Version]] = []
    for replica in [r for r in stack.replicas if r.pool == pool]:
        before = replica.version
        try:
            _replace(stack, replica, version)
        except Exception as error:
            say(f"{replica.name} did not start on the new version ({str(error).splitlines()[0]}); "
                f"putting the {pool} pool back on its version")
            for changed, old in [*done, (replica, before)]:
                _replace(stack, changed, old)
            stack.wait_pool_settled(pool, f"Envoy to take the {pool} pool back")
            raise RuntimeError(f"{replica.name} did not start on the new version; the {pool} pool is back "
                               f"as it was") from None
        done.append((replica, before))
        stack.wait_pool_settled(pool, f"Envoy to take {replica.name} back")
        say(f"{replica.name} restarted on version {version.version or '(working tree)'}")
    stack.write_state()


def _replace(stack: Stack, replica: Replica, version: Version) -> None:
    stack.supervisor.replace(*stack.replica_specs(replica, version))
    replica.version = version
    stack.write_state()


def _rotate_certificates(stack: Stack) -> tuple[str, Work]:
    def work(say: Progress) -> dict:
        if stack.identity is None:
            raise RuntimeError("this stack runs without certificates")
        renewed = stack.identity.rotate()
        say(f"renewed {', '.join(renewed)}; picked up without a restart")
        return {"renewed": renewed}

    return "renew every certificate now", work


def _stop(stack: Stack, names: list[str]) -> tuple[str, Work]:
    def work(say: Progress) -> dict:
        for name in names:
            stack.supervisor.stop_component(name)
            say(f"{name} stopped; it stays down until started again")
        return {"stopped": names}

    return f"stop {', '.join(names)} (drill)", work


def _start(stack: Stack, names: list[str]) -> tuple[str, Work]:
    def work(say: Progress) -> dict:
        for name in names:
            stack.supervisor.start_component(name)
            say(f"{name} started")
        return {"started": names}

    return f"start {', '.join(names)}", work
