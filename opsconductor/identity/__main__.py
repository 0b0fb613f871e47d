"""`python -m opsconductor.identity compose DIR`: the certificates of the compose deployment
into DIR (the shared volume), for its one-shot `certificates` service. The CA is made once
and kept in DIR/ca; certificates missing or past two thirds of their lifetime are (re)issued,
each workload's directory owned by the user of the container that reads it. Needs only
`cryptography`, not the operator tool."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from opsconductor.identity.store import IdentityStore
from opsconductor.identity.workloads import Workload, mesh_workloads, service_workload
from services.common import spiffe
from services.common.names import POOLS

COMPOSE_LIFETIME_S = 30 * 86400  # one-shot: re-run `docker compose run --rm certificates` to renew
# The users the compose containers run as: Envoy's image, Prometheus's, the services' image.
OWNERS = {"gateway": (101, 101), "prometheus": (65534, 65534)}
SERVICE_OWNER = (10001, 10001)


def compose_workloads() -> list[Workload]:
    """The mesh's workloads, the services also named as compose dials them (automation-stable…)."""
    services = [service_workload(pool, service, (f"{service}-{pool}",))
                for pool in POOLS for service in spiffe.SERVICES]
    return services + [w for w in mesh_workloads() if w.name in ("gateway", "prometheus")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opsconductor.identity", description=__doc__.splitlines()[0])
    parser.add_argument("deployment", choices=("compose",))
    parser.add_argument("directory", type=Path)
    parser.add_argument("--lifetime", type=float, default=COMPOSE_LIFETIME_S, metavar="S",
                        help=f"certificate lifetime in seconds (default {COMPOSE_LIFETIME_S})")
    parser.add_argument("--no-chown", action="store_true", help="keep the files owned by the current user")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    workloads = compose_workloads()
    owners = None if args.no_chown else {w.name: OWNERS.get(w.name, SERVICE_OWNER) for w in workloads}
    store = IdentityStore(args.directory, workloads, args.lifetime, owners)
    store.ensure()
    print(f"{len(workloads)} workload certificates in {args.directory} ({store.rotations} issued now)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
