"""Server and client spans of grpc.aio calls: opentelemetry-instrumentation-grpc's interceptors,
with two repairs its unary paths need here (each explained on its class). Unary calls only: the
one stream the services serve or call is the health Watch, which is never traced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc._aio_client import UnaryUnaryAioClientInterceptor, _unary_done_callback
from opentelemetry.instrumentation.grpc._aio_server import (OpenTelemetryAioServerInterceptor,
                                                            _OpenTelemetryAioServicerContext)
from opentelemetry.instrumentation.grpc.version import __version__ as _INSTRUMENTATION_VERSION
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode

Filter = Callable[[object], bool]


def server_interceptor(provider: TracerProvider, filter_: Filter) -> grpc.aio.ServerInterceptor:
    return _ServerSpans(_WithoutExceptionEvents(_tracer(provider)), filter_=filter_)


def client_interceptors(provider: TracerProvider, filter_: Filter) -> Sequence[grpc.aio.ClientInterceptor]:
    return (_ClientSpans(_tracer(provider), filter_=filter_),)


def _tracer(provider: TracerProvider) -> trace.Tracer:
    return provider.get_tracer("opentelemetry.instrumentation.grpc", _INSTRUMENTATION_VERSION)


class _ServerSpans(OpenTelemetryAioServerInterceptor):
    """The library's server spans of unary calls, with two changes for calls that fail (they all
    end with context.abort). The span ends when the abort is sent, not when grpc has confirmed
    the sending (a millisecond later, by which time the caller's own span had ended: the child
    outlasted its parent). And an abort is not also an exception event: the status is on the span
    already, and formatting the traceback cost more than the call."""

    def _intercept_aio_server_unary(self, behavior, handler_call_details):
        async def unary(request, context):
            with self._set_remote_context(context):
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

        return unary


class _AbortTimedContext(_OpenTelemetryAioServicerContext):
    """Notes when the call was aborted (wrapt proxies keep their own state in `_self_` names)."""

    def __init__(self, context, span) -> None:
        super().__init__(context, span)
        self._self_abort_ns: int | None = None

    async def abort(self, code, details="", trailing_metadata=()):
        self._self_abort_ns = time.time_ns()
        return await super().abort(code, details, trailing_metadata)


class _ClientSpans(UnaryUnaryAioClientInterceptor):
    """The library's client spans of unary calls, except when the caller is cancelled while the
    call runs: the library awaited the call's status and, cancelled, left both the RPC and its
    span running; here the RPC is cancelled too (as an uninstrumented call is, so the next hop
    stops its work) and the span ends as CANCELLED."""

    async def _wrap_unary_response(self, continuation, span):
        try:
            call = await continuation()
        except grpc.aio.AioRpcError as error:
            self.add_error_details_to_span(span, error)
            span.end()
            raise
        try:
            code, details = await call.code(), await call.details()
        except asyncio.CancelledError:
            call.cancel()
            span.set_attribute("rpc.grpc.status_code", grpc.StatusCode.CANCELLED.value[0])
            span.set_status(Status(StatusCode.ERROR, "cancelled by the caller"))
            span.end()
            raise
        _unary_done_callback(span, code, details, self._call_response_hook)(call)  # ends the span
        return call


class _WithoutExceptionEvents:
    """The server interceptor's tracer: its spans record no exception events and are ended by
    _ServerSpans itself."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_as_current_span(self, *args, **kwargs):
        return self._tracer.start_as_current_span(*args, record_exception=False, end_on_exit=False, **kwargs)
