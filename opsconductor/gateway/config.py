"""The gateway's Envoy configuration: one renderer for every deployment (local, compose, k8s).

`render(EnvoySettings(...))` gives the bootstrap config as data, `to_yaml` its text; the
committed renders of each deployment come from variants.py (`make generate`).
"""

from __future__ import annotations

from typing import Any

from opsconductor import yamltext
from opsconductor.gateway import runtime
from opsconductor.gateway.clusters import clusters
from opsconductor.gateway.listeners import gateway_listener, stats_listener
from opsconductor.gateway.tls import bootstrap_node
from opsconductor.gateway.settings import (MIRROR_RUNTIME_KEY, RUNTIME_KEY_PREFIX, TYPE_PREFIX, EnvoySettings,
                                          socket_address)
from opsconductor.gateway.tracing import runtime_defaults


def render(settings: EnvoySettings) -> dict[str, Any]:
    """The bootstrap config as plain data (write it with `to_yaml`)."""
    s = settings
    return {
        **bootstrap_node(s.mesh_tls, s.edge_tls),
        "admin": {"address": socket_address(s.admin_address, s.admin_port)},
        "layered_runtime": {
            # The static layer holds the configured split (and the tracer's sampling); the
            # weights layer on disk, shared by every replica, overrides the split. No admin
            # layer: a `POST /runtime_modify` would change one process only, and replicas
            # would disagree.
            "layers": [{"name": "static", "static_layer": {
                           **_default_weights(s), **(runtime_defaults(s.tracing) if s.tracing is not None else {})}},
                       *([runtime.disk_layer(s.runtime_dir)] if s.runtime_dir else [])],
        },
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": TYPE_PREFIX + "extensions.resource_monitors"
                        ".downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": s.max_downstream_connections,
                    },
                }
            ]
        },
        "static_resources": {
            "listeners": [gateway_listener(s), stats_listener(s)],
            "clusters": clusters(s),
        },
    }


def to_yaml(config: dict[str, Any], header: str = "") -> str:
    """YAML text of a rendered config."""
    return yamltext.dump(config, header=header)


def _default_weights(s: EnvoySettings) -> dict[str, int]:
    return {
        f"{RUNTIME_KEY_PREFIX}.stable": 100 - s.canary_weight,
        f"{RUNTIME_KEY_PREFIX}.canary": s.canary_weight,
        MIRROR_RUNTIME_KEY: 0,  # mirroring is switched on through the weights layer only
    }
