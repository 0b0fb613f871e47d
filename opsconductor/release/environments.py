"""Environments the release checks run against, from deploy/environments.toml."""

from __future__ import annotations

import os
import ssl
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from opsconductor.identity import operator
from opsconductor.stack import state
from services.common.names import AUTOMATION_SERVICE, PIPELINE_SERVICE

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "deploy" / "environments.toml"


class UnknownEnvironment(RuntimeError):
    """The environment is unknown."""


class NoLocalStack(UnknownEnvironment):
    """The environment is a local stack, and none runs from its state directory."""


@dataclass(frozen=True)
class Environment:
    name: str
    gateway: str  # host:port, native gRPC and gRPC-Web
    page_url: str = ""
    prometheus_url: str = ""
    envoy_admin_url: str = ""
    # Every service /metrics URL and Envoy's stats URL the checks may read directly.
    metrics_urls: tuple[str, ...] = ()
    automation_metrics_urls: tuple[str, ...] = ()
    # (name, target, gRPC service) of each service process whose readiness is checked directly.
    services: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)
    # The operator's client certificate, for /metrics pages served over mTLS (a local stack's).
    ssl_context: ssl.SSLContext | None = None


def load(name: str, config_file: Path = DEFAULT_FILE, state_dir: Path | None = None) -> Environment:
    """The named environment. A local stack's state directory is `state_dir` when given, else
    $OPSCONDUCTOR_STATE_DIR, else the one the environments file names."""
    try:
        environments = tomllib.loads(config_file.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UnknownEnvironment(f"cannot read {config_file}: {error}") from None
    if name not in environments:
        raise UnknownEnvironment(f"unknown environment {name!r}; {config_file} has {', '.join(environments)}")
    entry = environments[name]
    if state_dir is not None:
        return from_state(name, state_dir)
    if "state_dir" in entry:
        return from_state(name, Path(os.environ.get(state.STATE_DIR_VARIABLE) or entry["state_dir"]))
    urls = tuple(entry.get("metrics_urls", ()))
    return Environment(name, entry["gateway"], entry.get("page_url", ""), entry.get("prometheus_url", ""),
                       metrics_urls=urls, automation_metrics_urls=tuple(u for u in urls if "automation" in u))


def from_state(name: str, state_dir: Path) -> Environment:
    stack = state.StackState.read(state_dir)
    if stack is None:
        raise NoLocalStack(f"no stack is running from {state_dir.resolve()} (start it with "
                           f"`opsconductor up --detach`)")
    automation = tuple(operator.metrics_url(state_dir, r.automation_metrics) for r in stack.replicas)
    pipeline = tuple(operator.metrics_url(state_dir, r.pipeline_metrics) for r in stack.replicas)
    services = []
    for replica in stack.replicas:  # readiness on the plaintext health ports: probes need no identity
        services.append((replica.component("automation"), replica.health("automation"), AUTOMATION_SERVICE))
        services.append((replica.component("pipeline"), replica.health("pipeline"), PIPELINE_SERVICE))
    return Environment(
        name, stack.endpoint(state.GATEWAY), stack.endpoint(state.PAGE), stack.endpoint(state.PROMETHEUS),
        stack.endpoint(state.ENVOY_ADMIN), metrics_urls=(*automation, *pipeline, stack.endpoint(state.ENVOY_STATS)),
        automation_metrics_urls=automation, services=tuple(services), ssl_context=operator.ssl_context(state_dir))
