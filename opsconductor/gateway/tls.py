"""The gateway's TLS: mTLS to the pools (its own certificate, each pool's automation identity
checked) and on the stats listener (Prometheus and the operator only), and TLS at the edge
when asked. Every certificate comes through file-based SDS with a watched directory, so a
renewed certificate is picked up without a restart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsconductor import yamltext
from services.common import spiffe

TLS_SOCKET = "envoy.transport_sockets.tls"
_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
MESH_CERTIFICATE, MESH_CA, EDGE_CERTIFICATE = "mesh_certificate", "mesh_ca", "edge_certificate"


@dataclass(frozen=True)
class MeshTls:
    """The gateway's workload bundle (tls.crt, tls.key, ca.crt, as a mounted cert-manager Secret
    or a local bundle has them) and where the SDS files that point at it are."""

    certificate_dir: str
    sds_dir: str
    scrapers: tuple[str, ...] = spiffe.DEFAULT_SCRAPERS  # who may read the stats listener


@dataclass(frozen=True)
class EdgeTls:
    """The public listener's certificate and key: the local CA's edge certificate, one given to
    `up --tls-cert/--tls-key`, or a Kubernetes Secret's."""

    cert_file: str
    key_file: str
    sds_dir: str

    @property
    def directory(self) -> str:
        return self.cert_file.rpartition("/")[0] or "."


def bootstrap_node(mesh: MeshTls | None, edge: EdgeTls | None) -> dict[str, Any]:
    """SDS subscriptions need the bootstrap to name its node."""
    if mesh is None and edge is None:
        return {}
    return {"node": {"id": "gateway", "cluster": "opsconductor-gateway"}}


def upstream_transport_socket(mesh: MeshTls | None, pool: str) -> dict[str, Any]:
    """A pool cluster's TLS (health checks use it too): only that pool's automation is accepted."""
    if mesh is None:
        return {}
    return {"transport_socket": {"name": TLS_SOCKET, "typed_config": {
        "@type": _TLS + "UpstreamTlsContext",
        "common_tls_context": {
            # grpc servers refuse a TLS connection that does not negotiate h2.
            "alpn_protocols": ["h2"],
            "tls_certificate_sds_secret_configs": [_sds(mesh.sds_dir, MESH_CERTIFICATE)],
            "combined_validation_context": _validation(mesh.sds_dir, (spiffe.workload(pool, "automation"),)),
        },
    }}}


def stats_transport_socket(mesh: MeshTls | None) -> dict[str, Any]:
    """The stats listener's TLS: a client certificate of an allowed scraper is required."""
    if mesh is None:
        return {}
    return {"transport_socket": {"name": TLS_SOCKET, "typed_config": {
        "@type": _TLS + "DownstreamTlsContext",
        "require_client_certificate": True,
        "common_tls_context": {
            "alpn_protocols": ["h2", "http/1.1"],
            "tls_certificate_sds_secret_configs": [_sds(mesh.sds_dir, MESH_CERTIFICATE)],
            "combined_validation_context": _validation(mesh.sds_dir, mesh.scrapers),
        },
    }}}


def edge_transport_socket(edge: EdgeTls | None) -> dict[str, Any]:
    """The public listener's TLS: ALPN offers h2 (native gRPC) and HTTP/1.1 (gRPC-Web)."""
    if edge is None:
        return {}
    return {"transport_socket": {"name": TLS_SOCKET, "typed_config": {
        "@type": _TLS + "DownstreamTlsContext",
        "common_tls_context": {
            "alpn_protocols": ["h2", "http/1.1"],
            "tls_certificate_sds_secret_configs": [_sds(edge.sds_dir, EDGE_CERTIFICATE)],
        },
    }}}


def sds_resources(mesh: MeshTls | None, edge: EdgeTls | None) -> dict[str, dict[str, Any]]:
    """file name -> content of each SDS file the config refers to (one secret per file)."""
    files: dict[str, dict[str, Any]] = {}
    if mesh is not None:
        directory = mesh.certificate_dir
        files[f"{MESH_CERTIFICATE}.yaml"] = _secret(MESH_CERTIFICATE, {"tls_certificate": {
            "certificate_chain": {"filename": f"{directory}/tls.crt"},
            "private_key": {"filename": f"{directory}/tls.key"},
            # The bundle's ..data symlink is swapped on renewal: a move in this directory.
            "watched_directory": {"path": directory},
        }})
        files[f"{MESH_CA}.yaml"] = _secret(MESH_CA, {"validation_context": {
            "trusted_ca": {"filename": f"{directory}/ca.crt"},
            "watched_directory": {"path": directory},
        }})
    if edge is not None:
        files[f"{EDGE_CERTIFICATE}.yaml"] = _secret(EDGE_CERTIFICATE, {"tls_certificate": {
            "certificate_chain": {"filename": edge.cert_file},
            "private_key": {"filename": edge.key_file},
            "watched_directory": {"path": edge.directory},
        }})
    return files


def sds_yaml(resource: dict[str, Any]) -> str:
    return yamltext.dump(resource)


def _secret(name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"resources": [{"@type": _TLS + "Secret", "name": name, **body}]}


def _sds(sds_dir: str, name: str) -> dict[str, Any]:
    return {"name": name, "sds_config": {"path_config_source": {"path": f"{sds_dir}/{name}.yaml"},
                                         "resource_api_version": "V3"}}


def _validation(sds_dir: str, identities: tuple[str, ...]) -> dict[str, Any]:
    return {
        "default_validation_context": {"match_typed_subject_alt_names": [
            {"san_type": "URI", "matcher": {"exact": identity}} for identity in identities]},
        "validation_context_sds_secret_config": _sds(sds_dir, MESH_CA),
    }
