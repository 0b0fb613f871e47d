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

from services.common import admission, logs
from services.common.certificates import CertificateError
from services.common.config import CommonConfig, ConfigError
from services.common.decoding import RequestDecoding, UnaryFraming
from services.common.metrics import ServerMetrics, build_info
from services.common.spans import ServiceIdentity, Tracing
from services.common.transport import Transport

_LOGGER = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class ServiceSpec:
    """What the bootstrap needs to know about one service."""

    name: str  # "automation" or "pipeline": the logger's service field and build info
    grpc_service: str  # full gRPC service name: readiness health name, reflection
    methods: tuple[str, ...]  # unary methods whose metric series are created at start
    common: CommonConfig
    grpc_addr: str
    metrics_addr: str
    health_addr: str = ""  # a plaintext port serving grpc.health.v1 only ("" = none)


@dataclass
class Runtime:
    """Handed to a service's setup: where to register servicers and report readiness."""

    server: grpc.aio.Server
    health: HealthServicer
    registry: CollectorRegistry
    spec: ServiceSpec
    transport: Transport
    tracing: Tracing | None = None  # None when OTEL_SDK_DISABLED: no spans, trace ids only

    async def set_ready(self, ready: bool) -> None:
        await self.health.set(self.spec.grpc_service, SERVING if ready else NOT_SERVING)


class _HealthServicer(HealthServicer):
    """Standard health, except that Watch streams end once shutdown begins (after telling the
    watcher NOT_SERVING): an open Watch would otherwise hold the whole grace period open; and
    a Watch ends cleanly just before its deadline."""

    def __init__(self) -> None:
        super().__init__()
        self._stopping = asyncio.Event()

    async def enter_graceful_shutdown(self) -> None:
        await super().enter_graceful_shutdown()
        self._stopping.set()

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext) -> None:
        tracked = _WriteTracking(context)
        watching = asyncio.ensure_future(super().Watch(request, tracked))
        stopping = asyncio.ensure_future(self._stopping.wait())
        # A Watch with a deadline (the gateway's route bound, say) ends with OK a moment before
        # it, so the watcher reads a clean end and watches again, never a reset stream.
        remaining = context.time_remaining()
        bound = asyncio.ensure_future(asyncio.sleep(
            max(0.0, remaining - min(0.5, remaining / 10)) if remaining is not None else 10**9))
        try:
            await asyncio.wait((watching, stopping, bound), return_when=asyncio.FIRST_COMPLETED)
            # Cancelled in the middle of a write, the standard Watch leaves the call unable to
            # finish (the watcher then holds the whole grace period): let its write complete.
            await tracked.idle.wait()
        finally:
            for waiter in (watching, stopping, bound):
                waiter.cancel()
        if self._stopping.is_set() and tracked.last_status != NOT_SERVING:
            try:
                await context.write(health_pb2.HealthCheckResponse(status=NOT_SERVING))
            except grpc.aio.InternalError:
                pass  # the watcher is gone already (its call was cancelled at the end of the grace)


class _WriteTracking:
    """A Watch call's context that knows whether a write is under way, and what it last sent."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context
        self.idle = asyncio.Event()
        self.idle.set()
        self.last_status: int | None = None

    async def write(self, message: health_pb2.HealthCheckResponse) -> None:
        self.idle.clear()
        try:
            await self._context.write(message)
            self.last_status = message.status
        finally:
            self.idle.set()

    def __getattr__(self, name: str) -> object:
        return getattr(self._context, name)


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
    logs.configure(spec.common.log_level, spec.name, spec.common.log_format, spec.common.no_color)
    uvloop.install()
    try:
        return asyncio.run(_serve(spec, setup))
    except (OSError, CertificateError) as error:
        _LOGGER.error("cannot start: %s", error)
        return 1


async def _serve(spec: ServiceSpec, setup: Setup) -> int:
    disable_created_metrics()  # *_created series double the scrape size and no query here uses them
    registry = REGISTRY
    build_info(registry, spec.common.pool, spec.name, spec.common.version)
    # UnaryFraming first: it changes how grpc serves each unary method, which the metrics must not see.
    interceptors: list[grpc.aio.ServerInterceptor] = [UnaryFraming()]
    if spec.common.telemetry:
        server_metrics = ServerMetrics(registry)
        server_metrics.precreate(spec.grpc_service, spec.methods)
        interceptors.append(server_metrics)
    tracing = None
    if spec.common.tracing.enabled:
        tracing = Tracing(spec.common.tracing, ServiceIdentity(spec.name, spec.common.version, spec.common.instance,
                                                               spec.common.pool), registry)
        # Inside the metrics, outside the caller checks and the decoding: a call refused for
        # its caller's identity or its undecodable request still gets its span, with that status.
        interceptors.append(tracing.server_interceptor())
    transport = Transport(spec.common.tls, registry)
    # Inside the metrics interceptor, so calls refused for their caller's identity, refused
    # streams and malformed requests are all counted.
    interceptors += [*transport.interceptors(), admission.StreamAdmission(spec.common.max_open_streams),
                     RequestDecoding()]
    options = admission.server_options(spec.common)
    server = grpc.aio.server(interceptors=interceptors, options=options,
                             maximum_concurrent_rpcs=spec.common.max_concurrent_rpcs)
    health = _HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (spec.grpc_service, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    runtime = Runtime(server, health, registry, spec, transport, tracing)
    await runtime.set_ready(False)
    release = await setup(runtime)

    try:
        grpc_port = transport.add_grpc_port(server, spec.grpc_addr)
    except RuntimeError as error:
        raise OSError(f"cannot listen on {spec.grpc_addr} for gRPC (is the port taken?): {error}") from None
    try:
        metrics_port = transport.serve_metrics(spec.metrics_addr, registry)
    except OSError as error:
        raise OSError(f"cannot listen on {spec.metrics_addr} for metrics: {error.strerror}") from None
    await server.start()
    health_port = await transport.start(health, spec.health_addr, options)
    _LOGGER.info(
        "serving",
        extra={"grpc_port": grpc_port, "metrics_port": metrics_port, "health_port": health_port,
               "tls": spec.common.tls is not None, "pool": spec.common.pool,
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
    await transport.stop()
    await release()
    await _let_cancelled_calls_finish()
    if tracing is not None:
        await asyncio.to_thread(tracing.shutdown)
    _LOGGER.info("stopped")
    return 0


async def _let_cancelled_calls_finish(timeout_s: float = 2.0) -> None:
    """Calls still running when the grace ran out have been cancelled, and finish their own
    cancellation a moment later. Left to asyncio.run's final cancel instead, grpc reports each
    of them as an ERROR with a traceback, printed again on lines of its own that are not JSON."""
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout_s)
