"""Which certificates a deployment needs: one per workload identity, with the names its
clients check. A pool's replicas share their workload's certificate, as the pods of one
Kubernetes Deployment share one cert-manager Secret."""

from __future__ import annotations

from dataclasses import dataclass

from services.common import spiffe
from services.common.names import POOLS

GATEWAY_NAME = spiffe.service_name("gateway")  # what Prometheus checks on Envoy's stats listener


@dataclass(frozen=True)
class Workload:
    name: str  # the bundle's directory name: "stable-automation", "gateway", …
    identity: str  # its SPIFFE URI ("" for the edge certificate, which only names hosts)
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()


def service_workload(pool: str, service: str, extra_dns: tuple[str, ...] = ()) -> Workload:
    return Workload(f"{pool}-{service}", spiffe.workload(pool, service),
                    (spiffe.server_name(pool, service), spiffe.service_name(service), *extra_dns))


def mesh_workloads(pools: tuple[str, ...] = POOLS) -> list[Workload]:
    """Every identity of a mesh: each pool's two services, the gateway, Prometheus, the operator."""
    workloads = [service_workload(pool, service) for pool in pools for service in spiffe.SERVICES]
    workloads += [Workload("gateway", spiffe.GATEWAY, (GATEWAY_NAME,)),
                  Workload("prometheus", spiffe.PROMETHEUS),
                  Workload("operator", spiffe.OPERATOR)]
    return workloads


# The gateway's edge certificate for `up --tls` with the local CA: what a local client dials.
EDGE = Workload("edge", "", ("localhost",), ("127.0.0.1", "::1"))
