"""How a service's ports are opened: all plaintext (a service started on its own, as ever),
or mTLS on the gRPC and metrics ports with a plaintext port that serves grpc.health.v1 and
nothing else, for probes that cannot do TLS (the kubelet's gRPC probes), as Linkerd does."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from grpc_health.v1 import health_pb2_grpc
from prometheus_client import CollectorRegistry

from services.common.certificates import CertificateWatcher
from services.common.config import TlsConfig
from services.common.metrics import serve_metrics
from services.common.metrics_https import serve_metrics_https
from services.common.mtls import CallerAuthorization, server_credentials

_LOGGER = logging.getLogger(__name__)


class Transport:
    """One service's ports; `tls` None means plaintext everywhere."""

    def __init__(self, tls: TlsConfig | None, registry: CollectorRegistry | None) -> None:
        self.tls = tls
        self.watcher = CertificateWatcher(tls, registry) if tls else None
        self._tasks: list[asyncio.Task[None]] = []
        self._health_server: grpc.aio.Server | None = None

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """The callers' identities checked on every call of the gRPC port."""
        return [CallerAuthorization(self.tls.allowed_callers)] if self.tls else []

    def add_grpc_port(self, server: grpc.aio.Server, address: str) -> int:
        if self.watcher is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, server_credentials(self.watcher))

    def serve_metrics(self, address: str, registry: CollectorRegistry) -> int:
        if self.watcher is None:
            return serve_metrics(address, registry)
        return serve_metrics_https(address, registry, self.watcher, self.tls.allowed_scrapers)

    async def start(self, health: object, health_addr: str, options: tuple) -> int | None:
        """Starts re-reading the certificate and the health-only port (when asked for one)."""
        if self.watcher is not None:
            self._tasks.append(asyncio.create_task(self.watcher.run(), name="certificate-reload"))
        if not health_addr:
            return None
        self._health_server = grpc.aio.server(options=options)
        health_pb2_grpc.add_HealthServicer_to_server(health, self._health_server)
        try:
            port = self._health_server.add_insecure_port(health_addr)
        except RuntimeError as error:
            raise OSError(f"cannot listen on {health_addr} for health (is the port taken?): {error}") from None
        await self._health_server.start()
        return port

    async def stop(self) -> None:
        """After the gRPC port: probes keep seeing NOT_SERVING while calls drain."""
        if self._health_server is not None:
            await self._health_server.stop(None)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
