"""Every config file the mesh renders from code and commits, and the one command that makes
them: `python -m opsconductor.renders --write [ROOT]` (run by `make generate`, next to the
stubs). The freshness test renders them all into a temporary root and compares."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from opsconductor.gateway.variants import VARIANTS, configmap_yaml, envoy_yaml, sds_configmap_yaml, sds_files
from opsconductor.identity.certmanager import identity_yaml
from opsconductor.identity.network import network_policies_yaml
from opsconductor.observability.dashboards import DASHBOARDS
from opsconductor.observability.prometheus_config import render_compose
from opsconductor.observability.view import VIEW_QUERIES_PATH, view_queries_ts

ROOT = Path(__file__).resolve().parents[1]

# Repository path -> its text.
RENDERS: dict[str, Callable[[], str]] = {
    **{f"envoy/envoy.{variant}.yaml": (lambda variant=variant: envoy_yaml(variant)) for variant in VARIANTS},
    "deploy/k8s/base/envoy-config.yaml": lambda: configmap_yaml("k8s"),
    "deploy/k8s/production/envoy-config.yaml": lambda: configmap_yaml("production"),
    **{f"envoy/sds/{name}": (lambda name=name: sds_files()[name]) for name in sds_files()},
    "deploy/k8s/base/envoy-sds.yaml": sds_configmap_yaml,
    "deploy/k8s/base/identity.yaml": identity_yaml,
    "deploy/k8s/base/network-policies.yaml": network_policies_yaml,
    "observability/prometheus/prometheus.compose.yml": render_compose,
    **DASHBOARDS,
    VIEW_QUERIES_PATH: view_queries_ts,
}


def write(root: Path) -> list[str]:
    """Writes every render under `root` where it differs; returns the paths written."""
    written = []
    for path, make in RENDERS.items():
        file, text = root / path, make()
        if not file.exists() or file.read_text() != text:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text)
            written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opsconductor.renders", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", required=True, help="write the renders")
    parser.add_argument("root", nargs="?", type=Path, default=ROOT, help="where to write (default: the repository)")
    args = parser.parse_args(argv)
    for path in write(args.root):
        print(f"rendered {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
