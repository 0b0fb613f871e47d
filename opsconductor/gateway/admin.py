"""Client of the gateway's Envoy admin (read only): the weights it applies, pool health and
per-pool gRPC calls."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from opsconductor.gateway.settings import MIRROR_RUNTIME_KEY, RUNTIME_KEY_PREFIX
from services.common.names import AUTOMATION_SERVICE, POOLS


# Health flags Envoy puts on a host that does not take traffic (GET /clusters?format=json).
_UNHEALTHY_FLAGS = (
    "failed_active_health_check", "failed_outlier_check", "failed_active_degraded_check",
    "pending_dynamic_removal", "pending_active_hc", "excluded_via_immediate_hc_fail",
    "active_hc_timeout",
)
# cluster.<route cluster>.grpc.<service>.<method>.<status code or total>, the service's dots
# made underscores; gRPC-Web calls count under "grpc-web", where Envoy keeps the dots.
_GRPC_STAT = re.compile(r"^cluster\.(?P<cluster>[^.]+)\.grpc(?:-web)?\.(?P<service>.+)\."
                        r"(?P<method>[^.]+)\.(?P<what>\d+|total)$")


class AdminError(RuntimeError):
    """The admin interface did not answer, or answered with an error."""


@dataclass(frozen=True)
class Weights:
    """Share of AutomationService calls (percent) each pool gets."""

    stable: int
    canary: int
    mirror: int = 0  # percent of the weighted calls also copied to the canary's pool, replies discarded


@dataclass(frozen=True)
class PoolHealth:
    """Hosts of one pool and how many of them take traffic."""

    healthy: int
    total: int


@dataclass
class PoolCalls:
    """AutomationService calls routed to one pool, by gRPC status code."""

    total: int = 0
    by_status: dict[int, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(count for code, count in self.by_status.items() if code != 0)


def validate_weights(stable: object, canary: object, mirror: object = 0) -> Weights:
    """Checked weights, or ValueError: Envoy itself takes any value and misbehaves on bad ones
    (all-zero weights trip an internal error on every call; a non-number silently reverts)."""
    checked = []
    for pool, value in (("stable", stable), ("canary", canary)):
        if isinstance(value, str) and re.fullmatch(r"\d{1,3}", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{pool} weight must be a whole number from 0 to 100, got {value!r}")
        if not 0 <= value <= 100:
            raise ValueError(f"{pool} weight must be from 0 to 100, got {value}")
        checked.append(value)
    if checked == [0, 0]:
        raise ValueError("weights must not both be 0: no pool would get any call")
    if sum(checked) != 100:
        raise ValueError(f"weights must add up to 100, got {checked[0]} + {checked[1]}")
    if isinstance(mirror, str) and re.fullmatch(r"\d{1,3}", mirror.strip()):
        mirror = int(mirror)
    if isinstance(mirror, bool) or not isinstance(mirror, int) or not 0 <= mirror <= 100:
        raise ValueError(f"the mirrored share must be a whole number from 0 to 100, got {mirror!r}")
    if mirror and checked[1]:  # a call the weights sent to the canary would run there twice
        raise ValueError(f"the mirrored share needs the canary's weight at 0, not {checked[1]}")
    return Weights(*checked, mirror)


class EnvoyAdmin:
    """The admin interface at `base_url` (loopback only, e.g. http://127.0.0.1:9901)."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def weights(self) -> Weights:
        """The split this Envoy applies: the final value of each runtime key (the shared
        weights layer's, else the configured one)."""
        entries = self._json("/runtime")["entries"]
        values = []
        for pool in POOLS:
            key = f"{RUNTIME_KEY_PREFIX}.{pool}"
            try:
                values.append(int(entries[key]["final_value"]))
            except (KeyError, ValueError) as error:
                raise AdminError(f"runtime key {key} missing or not a number") from error
        try:
            mirror = int(entries.get(MIRROR_RUNTIME_KEY, {}).get("final_value") or 0)
        except ValueError as error:
            raise AdminError(f"runtime key {MIRROR_RUNTIME_KEY} not a number") from error
        return Weights(*values, mirror)

    def pool_health(self) -> dict[str, PoolHealth]:
        """Healthy and total hosts per pool, as Envoy's health checks see them."""
        health = {}
        for cluster in self._json("/clusters?format=json").get("cluster_statuses", []):
            pool = cluster["name"].removesuffix("_pool")
            if cluster["name"] != f"{pool}_pool" or pool not in POOLS:
                continue
            hosts = cluster.get("host_statuses", [])
            healthy = sum(1 for host in hosts if _host_healthy(host.get("health_status", {})))
            health[pool] = PoolHealth(healthy=healthy, total=len(hosts))
        return health

    def host_health(self) -> dict[str, bool]:
        """Whether Envoy sends calls to each pool host, by "host:port"."""
        health = {}
        for cluster in self._json("/clusters?format=json").get("cluster_statuses", []):
            if cluster["name"].removesuffix("_pool") not in POOLS or not cluster["name"].endswith("_pool"):
                continue
            for host in cluster.get("host_statuses", []):
                address = host.get("address", {}).get("socket_address", {})
                health[f"{address.get('address')}:{address.get('port_value')}"] = \
                    _host_healthy(host.get("health_status", {}))
        return health

    def pool_calls(self, service: str = AUTOMATION_SERVICE) -> dict[str, PoolCalls]:
        """Calls per pool by gRPC status since Envoy started (native gRPC and gRPC-Web).

        Counted by the pool the call was routed to (its weighted share or a pin); a call a
        dead pool handed over to the other pool counts for the pool it was routed to."""
        calls = {pool: PoolCalls() for pool in POOLS}
        wanted = service.replace(".", "_")
        stats = self._json("/stats?format=json&filter=" +
                           urllib.parse.quote(r"^cluster\.[^.]+\.grpc"))
        for stat in stats.get("stats", []):
            match = _GRPC_STAT.match(stat.get("name", ""))
            if not match or match["service"] not in (service, wanted) or "value" not in stat:
                continue
            pool = match["cluster"].removesuffix("_pool")
            if pool not in calls:
                continue
            if match["what"] == "total":
                calls[pool].total += stat["value"]
            elif match["what"].isdigit():
                code = int(match["what"])
                calls[pool].by_status[code] = calls[pool].by_status.get(code, 0) + stat["value"]
        return calls

    def _json(self, path: str) -> Any:
        return json.loads(self._request(path))

    def _request(self, path: str, method: str = "GET") -> str:
        request = urllib.request.Request(self.base_url + path, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read().decode()
        except urllib.error.HTTPError as error:
            raise AdminError(f"{method} {path}: HTTP {error.code} {error.read()!r}") from None
        except (urllib.error.URLError, OSError) as error:
            raise AdminError(f"Envoy admin at {self.base_url} unreachable: {error}") from None


def _host_healthy(status: dict[str, Any]) -> bool:
    if any(status.get(flag) for flag in _UNHEALTHY_FLAGS):
        return False
    return status.get("eds_health_status", "HEALTHY") in ("HEALTHY", "UNKNOWN")
