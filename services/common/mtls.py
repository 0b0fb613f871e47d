"""Mutual TLS on the gRPC hops: server credentials that take a renewed certificate without a
restart, the callers' identities checked on every call, and client channel credentials.

The handshake already refuses a plaintext client, a client without a certificate and a
certificate of another CA. What it cannot know is who may call: a valid certificate of the
wrong workload (another pool's automation calling this pool's pipeline, say) is refused here,
per call, with PERMISSION_DENIED naming the identity it presented.
"""

from __future__ import annotations

import logging

import grpc

from services.common import spiffe, status, tracing
from services.common.certificates import CertificateWatcher, Material
from services.common.interception import WrappingInterceptor, handler_parts, run_behavior

_LOGGER = logging.getLogger(__name__)

# The auth-context property grpc fills with a certificate's single SPIFFE URI SAN.
_SPIFFE_ID = "peer_spiffe_id"
_SANS = "x509_subject_alternative_name"


def server_credentials(watcher: CertificateWatcher) -> grpc.ServerCredentials:
    """Client certificates required; each new connection's handshake uses the newest material
    the watcher holds (grpc asks the fetcher at every handshake; None means "unchanged")."""
    served = [watcher.material]

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        material = watcher.material
        if material is served[0]:
            return None
        served[0] = material
        return _server_configuration(material)

    return grpc.dynamic_ssl_server_credentials(_server_configuration(watcher.material), fetch,
                                               require_client_authentication=True)


def _server_configuration(material: Material) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(material.private_key, material.certificate_chain)], root_certificates=material.ca)


def channel_credentials(material: Material) -> grpc.ChannelCredentials:
    """A client's credentials: trust the mesh CA, present this workload's certificate."""
    return grpc.ssl_channel_credentials(root_certificates=material.ca, private_key=material.private_key,
                                        certificate_chain=material.certificate_chain)


def caller_identity(context: grpc.aio.ServicerContext) -> str:
    """The caller's SPIFFE identity, or "" when its certificate carries none."""
    values = context.auth_context().get(_SPIFFE_ID)
    return values[0].decode(errors="replace") if values else ""


class CallerAuthorization(WrappingInterceptor):
    """Every method of the port: the caller's identity must be one of `allowed`."""

    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__()
        self._allowed = frozenset(allowed)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        _, behavior, factory = handler_parts(handler)
        service = method.lstrip("/").rpartition("/")[0]
        allowed = self._allowed

        async def authorized(request, context: grpc.aio.ServicerContext):
            identity = caller_identity(context)
            if identity not in allowed:
                await _refuse(context, identity, service)
            return await run_behavior(behavior(request, context), context)

        return factory(authorized, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)


async def _refuse(context: grpc.aio.ServicerContext, identity: str, service: str) -> None:
    trace_id, _ = tracing.resolve("", context.invocation_metadata() or ())
    if identity:
        code, reason = grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_ALLOWED"
        message = f"caller {identity} may not call {service}"
    else:
        # Only a certificate of the mesh CA gets this far, but one without an identity of
        # this trust domain: name what it does say (its SANs are the CA's to choose, bounded).
        names = b",".join(context.auth_context().get(_SANS, ()))[:200].decode(errors="replace")
        code, reason = grpc.StatusCode.UNAUTHENTICATED, "NO_IDENTITY"
        message = (f"the caller's certificate names no spiffe://{spiffe.TRUST_DOMAIN}/ identity "
                   f"(its names: {names or 'none'})")
    tracing.record_failure(reason, message)
    _LOGGER.warning("caller refused", extra={"caller": identity, "service": service})
    await status.abort(context, status.rich_status(code, message, reason, trace_id))
