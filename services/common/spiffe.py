"""Workload identities of the mesh: SPIFFE-style URIs in every certificate, and who may call whom.

One trust domain; each pool's automation and pipeline, the gateway, Prometheus (as a scraper)
and the operator's CLI each have one identity. The services check callers against these
names; the operator's certificate authority writes them into the certificates it issues.
"""

from __future__ import annotations

from services.common.names import POOLS

TRUST_DOMAIN = "opsconductor.local"
_PREFIX = f"spiffe://{TRUST_DOMAIN}/"
SERVICES = ("automation", "pipeline")

GATEWAY = f"{_PREFIX}gateway"
PROMETHEUS = f"{_PREFIX}prometheus"
OPERATOR = f"{_PREFIX}operator"  # the `opsconductor` CLI's direct calls (smoke, bench, tests)


def workload(pool: str, service: str) -> str:
    """spiffe://opsconductor.local/pool/<pool>/<service>."""
    if pool not in POOLS or service not in SERVICES:
        raise ValueError(f"no workload {service!r} in pool {pool!r}")
    return f"{_PREFIX}pool/{pool}/{service}"


def server_name(pool: str, service: str) -> str:
    """The DNS name a workload's certificate carries for its clients to check (never resolved):
    the automation dials its pipeline at any address and checks it is its own pool's."""
    workload(pool, service)
    return f"{service}.{pool}.{TRUST_DOMAIN}"


def service_name(service: str) -> str:
    """The DNS name every certificate of `service` (automation, pipeline, gateway) carries,
    whatever its pool: what a scraper checks (one Prometheus job covers both pools)."""
    return f"{service}.{TRUST_DOMAIN}"


def default_callers(pool: str, service: str) -> tuple[str, ...]:
    """Who may call a service's gRPC port: the pools are vertical slices, so a pipeline takes
    its own pool's automation only; the automation takes the gateway and the operator."""
    if service == "pipeline":
        return (workload(pool, "automation"),)
    workload(pool, service)
    return (GATEWAY, OPERATOR)


# Who may read a service's /metrics: Prometheus, and the operator's release checks.
DEFAULT_SCRAPERS = (PROMETHEUS, OPERATOR)


def is_identity(value: str) -> bool:
    """A URI of this trust domain with a path (spiffe://opsconductor.local/...)."""
    return value.startswith(_PREFIX) and len(value) > len(_PREFIX) and value.isascii() and " " not in value
