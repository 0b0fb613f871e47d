"""Server bootstrap both services share: grpc.aio server, health, reflection, metrics,
JSON logs, and a graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import REGISTRY, CollectorRegistry, disable_created_metrics

from services.common import logs
from services.common.config import CommonConfig, ConfigError
from services.common.decoding import RequestDecoding
from services.common.metrics import ServerMetrics, build_info, serve_metrics
from services.common.spans import ServiceIdentity, Tracing

_LOGGER = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# A clash on the gRPC port must fail loudly, never share the port with another process.
SERVER_OPTIONS = (("grpc.so_reuseport", 0),)


@dataclass(frozen=True)
class ServiceSpec:
    """What the bootstrap needs to know about one service."""

    name: str  # "automation" or "pipeline": the logger's service field and build info
    grpc_service: str  # full gRPC service name: readiness health name, reflection
    methods: tuple[str, ...]  # unary methods whose metric series are created at start
    common: CommonConfig
    grpc_addr: str
    metrics_addr: str


@dataclass
class Runtime:
    """Handed to a service's setup: where to register servicers and report readiness."""

    server: grpc.aio.Server
    health: HealthServicer
    registry: CollectorRegistry
    spec: ServiceSpec
    tracing: Tracing | None = None  # None when OTEL_SDK_DISABLED: no spans, trace ids only

    async def set_ready(self, ready: bool) -> None:
        await self.health.set(self.spec.grpc_service, SERVING if ready else NOT_SERVING)


class _HealthServicer(HealthServicer):
    """Standard health, except that Watch streams end once shutdown begins (after telling the
    watcher NOT_SERVING): an open Watch would otherwise hold the whole grace period open."""

    def __init__(self) -> None:
        super().__init__()
        self._stopping = asyncio.Event()

    async def enter_graceful_shutdown(self) -> None:
        await super().enter_graceful_shutdown()
        self._stopping.set()

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext) -> None:
        watching = asyncio.ensure_future(super().Watch(request, context))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait((watching, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watching.cancel()
            stopping.cancel()
        if self._stopping.is_set():
            await context.write(health_pb2.HealthCheckResponse(status=NOT_SERVING))


# A service's setup registers its servicers and returns a coroutine that releases what it
# holds (channels, tasks) once the server has stopped.
Setup = Callable[[Runtime], Awaitable[Callable[[], Awaitable[None]]]]


def main(name: str, argv: Sequence[str], read_config: Callable[[], object],
         run_service: Callable[[object], int]) -> int:
    """A service's entry point: configured by its environment alone, so it takes no arguments;
    bad configuration exits 2 with one line naming the variable."""
    if argv:
        print(f"{name}: takes no arguments (configure it with environment variables)", file=sys.stderr)
        return 2
    try:
        config = read_config()
    except ConfigError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2
    return run_service(config)


def run(spec: ServiceSpec, setup: Setup) -> int:
    """Runs the service until SIGTERM/SIGINT; returns the process exit code."""
    logs.configure(spec.common.log_level, spec.name)
    uvloop.install()
    try:
        return asyncio.run(_serve(spec, setup))
    except OSError as error:
        _LOGGER.error("cannot start: %s", error)
        return 1


async def _serve(spec: ServiceSpec, setup: Setup) -> int:
    disable_created_metrics()  # *_created series double the scrape size and no query here uses them
    registry = REGISTRY
    build_info(registry, spec.common.pool, spec.name, spec.common.version)
    interceptors: list[grpc.aio.ServerInterceptor] = []
    if spec.common.telemetry:
        server_metrics = ServerMetrics(registry)
        server_metrics.precreate(spec.grpc_service, spec.methods)
        interceptors.append(server_metrics)
    tracing = None
    if spec.common.tracing.enabled:
        tracing = Tracing(spec.common.tracing, ServiceIdentity(spec.name, spec.common.version, spec.common.instance,
                                                               spec.common.pool), registry)
        # Inside the metrics, outside the decoding: an undecodable request still gets its span.
        interceptors.append(tracing.server_interceptor())
    # Inside the metrics interceptor, so an undecodable request is counted as INVALID_ARGUMENT.
    interceptors.append(RequestDecoding())
    server = grpc.aio.server(interceptors=interceptors, options=SERVER_OPTIONS)
    health = _HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (spec.grpc_service, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    runtime = Runtime(server, health, registry, spec, tracing)
    await runtime.set_ready(False)
    release = await setup(runtime)

    try:
        grpc_port = server.add_insecure_port(spec.grpc_addr)
    except RuntimeError as error:
        raise OSError(f"cannot listen on {spec.grpc_addr} for gRPC (is the port taken?): {error}") from None
    try:
        metrics_port = serve_metrics(spec.metrics_addr, registry)
    except OSError as error:
        raise OSError(f"cannot listen on {spec.metrics_addr} for metrics: {error.strerror}") from None
    await server.start()
    _LOGGER.info(
        "serving",
        extra={"grpc_port": grpc_port, "metrics_port": metrics_port, "pool": spec.common.pool,
               "instance": spec.common.instance, "version": spec.common.version},
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    # Readiness goes first so gateways stop sending work; then in-flight calls get the grace period.
    _LOGGER.info("shutting down", extra={"grace_s": spec.common.shutdown_grace_s})
    await health.enter_graceful_shutdown()
    await server.stop(spec.common.shutdown_grace_s)
    await release()
    if tracing is not None:
        await asyncio.to_thread(tracing.shutdown)
    _LOGGER.info("stopped")
    return 0
