"""What a unary call's request must be before any servicer sees it: exactly one message, valid
protobuf. Otherwise INVALID_ARGUMENT with an ErrorInfo, like every other bad request.

Two interceptors, because grpc leaves both cases badly handled. A request that does not parse
is UNKNOWN "Unexpected <class '...DecodeError'>: ..." from grpc, which names library internals
and counts as a server fault. A request that ends with no message at all gets no answer from
grpc's unary handling, and holds its stream until its deadline. UnaryFraming (outermost)
therefore serves each unary method as a client stream that reads the one message itself;
RequestDecoding (inside the metrics interceptor, so refusals are counted) refuses a missing or
undecodable message."""

from __future__ import annotations

import asyncio
import logging

import grpc

from services.common import status, tracing
from services.common.interception import WrappingInterceptor, run_behavior

_LOGGER = logging.getLogger(__name__)


class _Marker:
    """Stands in for a request that is not one valid message."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


_UNDECODABLE = _Marker("is not a valid protobuf message")
_EMPTY = _Marker("has no complete message")


class UnaryFraming(WrappingInterceptor):
    """Serves unary-request methods as request streams, reading their one message here."""

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.request_streaming or handler.request_deserializer is None:
            return handler
        inner = handler.unary_unary or handler.unary_stream

        async def first_message(context: grpc.aio.ServicerContext) -> object:
            message = await context.read()
            return _EMPTY if message is grpc.aio.EOF else message

        if handler.unary_unary:
            async def stream_unary(_requests, context: grpc.aio.ServicerContext):
                return await inner(await first_message(context), context)

            return grpc.stream_unary_rpc_method_handler(stream_unary, request_deserializer=handler.request_deserializer,
                                                        response_serializer=handler.response_serializer)

        async def stream_stream(_requests, context: grpc.aio.ServicerContext) -> None:
            await run_behavior(inner(await first_message(context), context), context)

        return grpc.stream_stream_rpc_method_handler(stream_stream, request_deserializer=handler.request_deserializer,
                                                     response_serializer=handler.response_serializer)


class RequestDecoding(WrappingInterceptor):
    """Wraps every method taking a single request: a parse failure becomes a marker, and the
    wrapped behaviour turns a marker into INVALID_ARGUMENT (streamed requests are left to grpc)."""

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.request_streaming or handler.request_deserializer is None:
            return handler
        return _wrap(method, handler)


def _wrap(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    parse = handler.request_deserializer

    def deserialize(data: bytes) -> object:
        try:
            return parse(data)
        except Exception:  # DecodeError, or whatever a deserializer raises on bad bytes
            return _UNDECODABLE

    async def refuse(marker: _Marker, context: grpc.aio.ServicerContext) -> None:
        trace_id, _ = tracing.resolve("", context.invocation_metadata() or ())
        tracing.record_failure("VALIDATION_ERROR", f"malformed request: it {marker.problem}")
        _LOGGER.info("malformed request", extra={"method": method, "problem": marker.problem})
        try:
            await status.abort(context, status.rich_status(
                grpc.StatusCode.INVALID_ARGUMENT, f"the request to {method} {marker.problem}",
                "VALIDATION_ERROR", trace_id))
        except grpc.aio.InternalError:
            # grpc itself already ended the call over a frame it could not read (one flagged
            # compressed with no encoding, say): it answered INTERNAL for us. The call ends here
            # as cancelled, without the ERROR and traceback grpc would log for it.
            raise asyncio.CancelledError from None

    if handler.unary_unary:
        behavior = handler.unary_unary

        async def unary_unary(request, context: grpc.aio.ServicerContext):
            if isinstance(request, _Marker):
                await refuse(request, context)
            return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, request_deserializer=deserialize,
                                                   response_serializer=handler.response_serializer)
    stream = handler.unary_stream

    async def unary_stream(request, context: grpc.aio.ServicerContext) -> None:
        if isinstance(request, _Marker):
            await refuse(request, context)
        await run_behavior(stream(request, context), context)

    return grpc.unary_stream_rpc_method_handler(unary_stream, request_deserializer=deserialize,
                                                response_serializer=handler.response_serializer)
