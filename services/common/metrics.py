"""Prometheus metrics both services export: build info and py-grpc-prometheus's server
families, from one grpc.aio interceptor (py-grpc-prometheus 0.8.0 rejects aio servers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common import metrics_http
from services.common.config import split_address
from services.common.interception import WrappingInterceptor, handler_parts, run_behavior

# Exact bounds at 1 s and 2 s for the latency SLOs; fine buckets below 100 ms, where calls live.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

# Codes pre-created for each method, so error ratios read 0 rather than "no data".
PRECREATED_CODES = ("OK", "INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED", "DEADLINE_EXCEEDED",
                    "UNAVAILABLE", "INTERNAL", "CANCELLED", "UNKNOWN", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION")

_GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")


def build_info(registry: CollectorRegistry, pool: str, service: str, version: str) -> None:
    """Pool, service and version appear once, here; series get job/pool/instance from the scrape."""
    Gauge("opsconductor_build_info", "Build and placement of this process.", ("pool", "service", "version"),
          registry=registry).labels(pool, service, version).set(1)


def serve_metrics(address: str, registry: CollectorRegistry) -> int:
    """Serves /metrics on a thread (bounded: see metrics_http); returns the bound port."""
    host, port = split_address(address)
    return metrics_http.start(host, port, registry)


class ServerMetrics(WrappingInterceptor):
    """Counts and times every call by method and gRPC code, as py-grpc-prometheus names them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._started = Counter("grpc_server_started_total", "Total number of RPCs started on the server.",
                                _GRPC_LABELS, registry=registry)
        self._handled = Counter("grpc_server_handled_total",
                                "Total number of RPCs completed on the server, regardless of success or failure.",
                                (*_GRPC_LABELS, "grpc_code"), registry=registry)
        self._seconds = Histogram("grpc_server_handling_seconds",
                                  "Histogram of response latency (seconds) of gRPC that had been application-level "
                                  "handled by the server.", _GRPC_LABELS, buckets=DURATION_BUCKETS, registry=registry)

    def precreate(self, service: str, methods: Iterable[str]) -> None:
        for method in methods:
            labels = ("UNARY", service, method)
            self._started.labels(*labels)
            self._seconds.labels(*labels)
            for code in PRECREATED_CODES:
                self._handled.labels(*labels, code)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        service, _, name = method.lstrip("/").rpartition("/")
        kind, behavior, factory = handler_parts(handler)
        labels = (kind, service, name)
        started = self._started.labels(*labels)
        seconds = self._seconds.labels(*labels)
        handled = self._handled

        async def observed(request, context: grpc.aio.ServicerContext):
            started.inc()
            begin = time.perf_counter()
            code = "UNKNOWN"
            try:
                response = await run_behavior(behavior(request, context), context)
                code = _code_name(context.code())
                return response
            except grpc.aio.AbortError:
                code = _code_name(context.code())
                raise
            except BaseException as error:  # CancelledError is how a cancelled call ends
                code = "CANCELLED" if isinstance(error, asyncio.CancelledError) else "UNKNOWN"
                raise
            finally:
                seconds.observe(time.perf_counter() - begin)
                handled.labels(*labels, code).inc()

        return factory(observed, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)


def _code_name(code: grpc.StatusCode | int | None) -> str:
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return code.name
    return _CODE_NAMES.get(code, "UNKNOWN")


_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
