"""The mesh identities of a local stack (`opsconductor up`, the benchmark's stacks): issued in
its state directory before anything starts, renewed while it runs, and the settings each
component needs to use them. The supervisor calls these few functions and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from opsconductor.gateway.tls import EdgeTls, MeshTls, sds_resources, sds_yaml
from opsconductor.identity.operator import OPERATOR, identity_root
from opsconductor.identity.spec import TlsSpec
from opsconductor.identity.store import DEFAULT_LIFETIME_S, IdentityStore, Renewer
from opsconductor.identity.workloads import EDGE, mesh_workloads
from opsconductor.observability import prometheus_config
from services.common import spiffe


class MeshIdentity:
    """The CA and every workload's certificate of one stack, with their renewal."""

    def __init__(self, state_dir: Path, lifetime_s: float = DEFAULT_LIFETIME_S, edge: bool = False) -> None:
        workloads = mesh_workloads() + ([EDGE] if edge else [])
        self.store = IdentityStore(identity_root(state_dir), workloads, lifetime_s)
        self.store.ensure()
        self._renewer = Renewer(self.store).start()

    def stop(self) -> None:
        self._renewer.stop()

    def rotate(self) -> list[str]:
        """Every certificate renewed now (the stack picks them up without a restart)."""
        return self.store.rotate()

    def service_env(self, pool: str, service: str, callers: tuple[str, ...] = ()) -> dict[str, str]:
        """TLS_* for one service process; `callers` replaces its default allowed callers."""
        files = self.store.files(f"{pool}-{service}")
        env = {"TLS_CERT_FILE": str(files.cert), "TLS_KEY_FILE": str(files.key), "TLS_CA_FILE": str(files.ca)}
        if callers:
            env["TLS_ALLOWED_CALLERS"] = ",".join(callers)
        return env

    def envoy_tls(self, sds_dir: Path) -> MeshTls:
        return MeshTls(certificate_dir=str(self.store.files("gateway").directory), sds_dir=str(sds_dir))

    def edge_tls(self, sds_dir: Path) -> EdgeTls:
        files = self.store.files(EDGE.name)
        return EdgeTls(str(files.cert), str(files.key), str(sds_dir))

    def prometheus_tls(self) -> dict[str, dict[str, Any]]:
        """Prometheus's tls_config per scrape job (it re-reads the files when they change)."""
        return prometheus_config.mesh_tls(str(self.store.files("prometheus").directory))

    @property
    def ca_file(self) -> Path:
        return self.store.ca_file

    @property
    def operator_dir(self) -> Path:
        return self.store.files(OPERATOR).directory


def write_sds(sds_dir: Path, mesh: MeshTls | None, edge: EdgeTls | None) -> None:
    """The SDS files an Envoy config refers to."""
    sds_dir.mkdir(parents=True, exist_ok=True)
    for name, resource in sds_resources(mesh, edge).items():
        (sds_dir / name).write_text(sds_yaml(resource))


def start_identity(state_dir: Path, tls: TlsSpec) -> MeshIdentity | None:
    """The stack's identities, issued before any component starts (None: a plaintext stack)."""
    if not tls.mesh and not (tls.edge and tls.edge_cert is None):
        return None
    return MeshIdentity(state_dir, tls.lifetime_s, edge=tls.edge and tls.edge_cert is None)


def service_env(identity: MeshIdentity | None, tls: TlsSpec, pool: str, service: str) -> dict[str, str]:
    """A service process's TLS_* settings (none on a plaintext stack)."""
    if identity is None or not tls.mesh:
        return {}
    callers = ((spiffe.workload(pool, "automation"), spiffe.OPERATOR)
               if service == "pipeline" and tls.operator_calls_pipeline else ())
    return identity.service_env(pool, service, callers)


def envoy_overrides(identity: MeshIdentity | None, tls: TlsSpec, state_dir: Path) -> dict[str, Any]:
    """EnvoySettings fields for the stack's TLS, with the SDS files they point at written."""
    sds_dir = identity_root(state_dir) / "sds"
    mesh = identity.envoy_tls(sds_dir) if identity is not None and tls.mesh else None
    edge = None
    if tls.edge:
        edge = (EdgeTls(str(tls.edge_cert.resolve()), str(tls.edge_key.resolve()), str(sds_dir))
                if tls.edge_cert is not None else identity.edge_tls(sds_dir))
    if mesh is None and edge is None:
        return {}
    write_sds(sds_dir, mesh, edge)
    return {"mesh_tls": mesh, "edge_tls": edge}


def prometheus_tls(identity: MeshIdentity | None, tls: TlsSpec) -> dict[str, dict[str, Any]] | None:
    return identity.prometheus_tls() if identity is not None and tls.mesh else None


def supports_mtls(source: Path) -> bool:
    """Whether a checkout's services take the TLS_* settings (releases before them do not)."""
    return (source / "services" / "common" / "mtls.py").exists()


def effective_tls(tls: TlsSpec, sources: tuple[Path, ...], echo: Callable[[str], None]) -> TlsSpec:
    """mTLS needs every pool's services to speak it: a pool running an older release (a
    canary of a version before mTLS, a baseline for `bench --cost checkout`) turns it off for
    the whole stack, saying so, rather than leaving that pool unreachable."""
    older = [str(source) for source in sources if not supports_mtls(source)]
    if tls.mesh and older:
        echo(f"mTLS off inside the mesh: {', '.join(older)} predates it (the services would speak plaintext)")
        return replace(tls, mesh=False)
    return tls
