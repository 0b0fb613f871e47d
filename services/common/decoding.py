"""A request that is not valid protobuf gets INVALID_ARGUMENT with an ErrorInfo, like every
other bad request: left to grpc, it is UNKNOWN "Unexpected <class '...DecodeError'>: ...",
which names library internals and counts as a server fault."""

from __future__ import annotations

import logging
import grpc

from services.common import status, tracing
from services.common.interception import WrappingInterceptor, run_behavior

_LOGGER = logging.getLogger(__name__)


class _Undecodable:
    """Stands in for a request whose bytes did not parse."""


_UNDECODABLE = _Undecodable()


class RequestDecoding(WrappingInterceptor):
    """Wraps every method taking a single request: a parse failure becomes a marker that the
    wrapped behaviour turns into INVALID_ARGUMENT (streamed requests are left to grpc)."""

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

    async def refuse(context: grpc.aio.ServicerContext) -> None:
        trace_id, _ = tracing.resolve("", context.invocation_metadata() or ())
        tracing.record_failure("VALIDATION_ERROR", "undecodable request")
        _LOGGER.info("undecodable request", extra={"method": method})
        await status.abort(context, status.rich_status(
            grpc.StatusCode.INVALID_ARGUMENT, f"the request to {method} is not a valid protobuf message",
            "VALIDATION_ERROR", trace_id))

    if handler.unary_unary:
        behavior = handler.unary_unary

        async def unary_unary(request, context: grpc.aio.ServicerContext):
            if request is _UNDECODABLE:
                await refuse(context)
            return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, request_deserializer=deserialize,
                                                   response_serializer=handler.response_serializer)
    stream = handler.unary_stream

    async def unary_stream(request, context: grpc.aio.ServicerContext) -> None:
        if request is _UNDECODABLE:
            await refuse(context)
        await run_behavior(stream(request, context), context)

    return grpc.unary_stream_rpc_method_handler(unary_stream, request_deserializer=deserialize,
                                                response_serializer=handler.response_serializer)
