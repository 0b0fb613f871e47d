"""Admission both services apply: how many calls a process serves at once and on one HTTP/2
connection (grpcio's own limits: the excess gets RESOURCE_EXHAUSTED at once), how much request
metadata it takes, and a lane for the long-lived streams (health Watch, reflection), so that
streams held open cannot take the places of unary calls."""

from __future__ import annotations

import grpc

from services.common import status, tracing
from services.common.config import CommonConfig
from services.common.errors import OverloadedError
from services.common.interception import WrappingInterceptor, run_behavior
from services.common.lanes import Lane

# Request metadata above this is refused (RESOURCE_EXHAUSTED), below it always accepted:
# grpc's default soft limit (8 KiB) refuses a random share of requests between 8 and 16 KiB.
MAX_METADATA_BYTES = 16 * 1024
# HTTP/2 streams one connection may open beyond the process's call limit: the automation's
# one connection to its pipeline also carries a health Watch and a ListTools now and then.
_STREAM_HEADROOM = 16


def server_options(common: CommonConfig) -> tuple[tuple[str, int], ...]:
    return (
        ("grpc.so_reuseport", 0),  # a clash on the gRPC port fails loudly, never shares the port
        ("grpc.max_concurrent_streams", common.max_concurrent_rpcs + _STREAM_HEADROOM),
        ("grpc.max_metadata_size", MAX_METADATA_BYTES),
        ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
    )


class StreamAdmission(WrappingInterceptor):
    """Server-streaming and bidirectional methods share one lane of `capacity` places."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self._lane = Lane("open streams", capacity)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if not handler.response_streaming:
            return handler
        lane = self._lane
        behavior = handler.unary_stream or handler.stream_stream

        async def admitted(request, context: grpc.aio.ServicerContext) -> None:
            try:
                with lane.place():
                    await run_behavior(behavior(request, context), context)
            except OverloadedError as error:
                trace_id, _ = tracing.resolve("", context.invocation_metadata() or ())
                await status.abort(context, status.status_for(error, trace_id))

        factory = (grpc.unary_stream_rpc_method_handler if handler.unary_stream
                   else grpc.stream_stream_rpc_method_handler)
        return factory(admitted, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)
