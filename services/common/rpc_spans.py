"""Server and client spans of the services' unary gRPC calls.

Server spans are opentelemetry-instrumentation-grpc's aio interceptor with three changes (see
_ServerSpans). Client spans are made here around the call itself, not with the library's aio
client interceptor: grpc's intercepted-call path cost ~200 µs of CPU per call on every call,
sampled or not, and the library's interceptor, when its caller was cancelled, left the RPC running
(the pipeline went on with a cancelled tool) and the span open. The health Watch, the one stream
the services serve or call, is never traced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.grpc._aio_server import (OpenTelemetryAioServerInterceptor,
                                                            _OpenTelemetryAioServicerContext)
from opentelemetry.instrumentation.grpc.version import __version__ as _INSTRUMENTATION_VERSION
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode

from services.common import tracing

Filter = Callable[[object], bool]
_TRACER = trace.get_tracer("opsconductor.rpc")
_STATUS_CODE = "rpc.grpc.status_code"


def server_interceptor(provider: TracerProvider, filter_: Filter) -> grpc.aio.ServerInterceptor:
    tracer = provider.get_tracer("opentelemetry.instrumentation.grpc", _INSTRUMENTATION_VERSION)
    return _ServerSpans(_WithoutExceptionEvents(tracer), filter_=filter_)


class _ServerSpans(OpenTelemetryAioServerInterceptor):
    """The library's server spans of unary calls, changed in three ways:

    - A call whose trace the caller (the gateway) decided not to sample gets no span of its own:
      its context is only carried on, which is all an unsampled span would do, for a fraction of
      the CPU (9 calls in 10 are such calls at the default rate).
    - A failing call (they all end with context.abort) ends its span when the abort is sent, not
      when grpc confirms the sending a millisecond later, by which time the caller's own span had
      ended: the child outlasted its parent.
    - An abort is not also an exception event: the status is on the span already, and formatting
      the traceback cost more than the call.
    """

    def _intercept_aio_server_unary(self, behavior, handler_call_details):
        async def unary(request, context):
            metadata = context.invocation_metadata()
            parent = propagate.extract({item.key: item.value for item in metadata}) if metadata else None
            parent_span = trace.get_current_span(parent).get_span_context()
            token = otel_context.attach(parent) if parent is not None else None
            try:
                if parent_span.is_valid and not parent_span.trace_flags.sampled:
                    return await behavior(request, context)
                with self._start_span(handler_call_details, context, set_status_on_exception=False) as span:
                    timed = _AbortTimedContext(context, span)
                    try:
                        return await behavior(request, timed)
                    except grpc.aio.AbortError:
                        raise
                    except Exception as error:  # a servicer bug: worth its traceback
                        span.record_exception(error)
                        raise
                    finally:
                        span.end(end_time=timed._self_abort_ns)
            finally:
                if token is not None:
                    otel_context.detach(token)

        return unary


class _AbortTimedContext(_OpenTelemetryAioServicerContext):
    """Notes when the call was aborted (wrapt proxies keep their own state in `_self_` names)."""

    def __init__(self, context, span) -> None:
        super().__init__(context, span)
        self._self_abort_ns: int | None = None

    async def abort(self, code, details="", trailing_metadata=()):
        self._self_abort_ns = time.time_ns()
        return await super().abort(code, details, trailing_metadata)


class _WithoutExceptionEvents:
    """The server interceptor's tracer: its spans record no exception events and are ended by
    _ServerSpans itself."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_as_current_span(self, *args, **kwargs):
        return self._tracer.start_as_current_span(*args, record_exception=False, end_on_exit=False, **kwargs)


@dataclass
class OutgoingCall:
    """What a call to another service sends for its trace, and its client span (None when the
    call is not sampled: its trace is carried on without one)."""

    metadata: tuple[tuple[str, str], ...]
    span: trace.Span | None


@contextmanager
def client_span(method: str, trace_id: str) -> Iterator[OutgoingCall]:
    """Around one unary call to `method` ("/package.Service/Method"): a CLIENT span named and
    attributed as opentelemetry-instrumentation-grpc names them, ended with the call's status
    (CANCELLED when the caller went away), and the traceparent that makes the callee its child."""
    current = trace.get_current_span()
    if not current.is_recording():
        if current.get_span_context().is_valid:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            yield OutgoingCall(tuple(carrier.items()), None)
        else:  # no SDK: the same trace id, in a traceparent of our making
            yield OutgoingCall(tracing.outgoing_metadata(trace_id), None)
        return
    service, _, name = method.lstrip("/").partition("/")
    with _TRACER.start_as_current_span(method, kind=trace.SpanKind.CLIENT, record_exception=False,
                                       set_status_on_exception=False,
                                       attributes={"rpc.system": "grpc", "rpc.service": service,
                                                   "rpc.method": name}) as span:
        carrier = {}
        propagate.inject(carrier)
        try:
            yield OutgoingCall(tuple(carrier.items()), span)
        except asyncio.CancelledError:
            span.set_attribute(_STATUS_CODE, grpc.StatusCode.CANCELLED.value[0])
            span.set_status(Status(StatusCode.ERROR, "cancelled by the caller"))
            raise
        except grpc.aio.AioRpcError as error:
            span.set_attribute(_STATUS_CODE, error.code().value[0])
            span.set_status(Status(StatusCode.ERROR, error.details() or error.code().name))
            raise
        span.set_attribute(_STATUS_CODE, grpc.StatusCode.OK.value[0])
