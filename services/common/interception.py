"""What our server interceptors share: each method's handler is wrapped once and reused
(interceptors run on every call), and a wrapped behaviour's result is run the same way."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

import grpc


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """Subclasses say how to wrap one method's handler; this caches the result per method."""

    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = await continuation(handler_call_details)
            if handler is None:  # unknown method: grpc answers UNIMPLEMENTED itself; the name is
                return handler   # the caller's, so it is not cached
            wrapped = self._wrapped[method] = self.wrap(method, handler)
        return wrapped

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        raise NotImplementedError


async def run_behavior(result: object, context: grpc.aio.ServicerContext) -> object:
    """Awaits a servicer's result. A servicer streams either as an async generator or through
    context.write; a wrapper always writes, since grpc refuses the two mixed in one call."""
    if inspect.isasyncgen(result):
        async for message in result:
            await context.write(message)
        return None
    return await result


Behavior = Callable[..., object]


def handler_parts(handler: grpc.RpcMethodHandler) -> tuple[str, Behavior, Callable[..., grpc.RpcMethodHandler]]:
    """(py-grpc-prometheus's kind name, the behaviour, the factory that rebuilds such a handler)."""
    if handler.unary_unary:
        return "UNARY", handler.unary_unary, grpc.unary_unary_rpc_method_handler
    if handler.unary_stream:
        return "SERVER_STREAM", handler.unary_stream, grpc.unary_stream_rpc_method_handler
    if handler.stream_unary:
        return "CLIENT_STREAM", handler.stream_unary, grpc.stream_unary_rpc_method_handler
    return "BIDI_STREAM", handler.stream_stream, grpc.stream_stream_rpc_method_handler
