"""The operator's own identity: what the CLI and the tests use to call a stack's services
directly (smoke, bench's direct scenarios, a test's direct call) and to read their /metrics.
The one place that builds those credentials from a state directory."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from opsconductor.identity.bundle import paths
from services.common import spiffe

IDENTITY_DIR = "identity"  # under a stack's state directory
OPERATOR = "operator"


def identity_root(state_dir: Path) -> Path:
    return state_dir / IDENTITY_DIR


def has_identities(state_dir: Path) -> bool:
    """Whether the stack running from `state_dir` runs with mTLS."""
    return (identity_root(state_dir) / OPERATOR / "tls.crt").exists()


def channel_credentials(state_dir: Path) -> grpc.ChannelCredentials:
    """Trust the stack's CA; present the operator's certificate (read now: renewals apply to
    the next channel)."""
    cert, key, ca = (path.read_bytes() for path in paths(identity_root(state_dir) / OPERATOR))
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def channel_options(pool: str, service: str) -> tuple[tuple[str, str], ...]:
    """The service's certificate must be that pool's, whatever address the channel dials."""
    return (("grpc.ssl_target_name_override", spiffe.server_name(pool, service)),)


def channel(state_dir: Path, target: str, pool: str, service: str,
            options: tuple[tuple[str, object], ...] = ()) -> grpc.Channel:
    """A channel to one service of a stack: mTLS as the operator when the stack has
    identities, plaintext otherwise (a stack or service run without them)."""
    if not has_identities(state_dir):
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, channel_credentials(state_dir), options=(*options,
                                                                                *channel_options(pool, service)))


def aio_channel(state_dir: Path, target: str, *, pool: str, service: str) -> grpc.aio.Channel:
    """The same for asyncio clients (the load generator)."""
    if not has_identities(state_dir):
        return grpc.aio.insecure_channel(target)
    return grpc.aio.secure_channel(target, channel_credentials(state_dir), options=channel_options(pool, service))


def ssl_context(state_dir: Path) -> ssl.SSLContext | None:
    """An HTTPS client context for a stack's /metrics pages (None without identities). It checks
    the peer's certificate against the stack's CA; the metrics URL is an address, not the
    certificate's name, so the host name is not compared (any workload of this CA passes)."""
    if not has_identities(state_dir):
        return None
    cert, key, ca = paths(identity_root(state_dir) / OPERATOR)
    context = ssl.create_default_context(cafile=str(ca.resolve()))
    context.check_hostname = False
    context.load_cert_chain(str(cert.resolve()), str(key.resolve()))
    return context


def metrics_url(state_dir: Path, address: str) -> str:
    """The /metrics URL of a service's metrics address in this stack."""
    scheme = "https" if has_identities(state_dir) else "http"
    return f"{scheme}://{address}/metrics"
