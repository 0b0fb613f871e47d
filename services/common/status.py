"""Turns errors into real gRPC statuses with a google.rpc.ErrorInfo detail and the trace id."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.common.errors import MeshError

DOMAIN = "opsconductor"
TRACE_ID_KEY = "x-trace-id"

# The gRPC status each ErrorInfo reason is reported with.
STATUS_BY_REASON: dict[str, grpc.StatusCode] = {
    "VALIDATION_ERROR": grpc.StatusCode.INVALID_ARGUMENT,
    "UNKNOWN_TOOL": grpc.StatusCode.NOT_FOUND,
    "DESTINATION_DENIED": grpc.StatusCode.PERMISSION_DENIED,
    "TIMEOUT": grpc.StatusCode.DEADLINE_EXCEEDED,
    "BAD_GATEWAY": grpc.StatusCode.UNAVAILABLE,
    "INTERNAL_ERROR": grpc.StatusCode.INTERNAL,
    "INJECTED_FAULT": grpc.StatusCode.INTERNAL,
    "CANCELLED": grpc.StatusCode.CANCELLED,
    "OVERLOADED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "NOT_READ_ONLY": grpc.StatusCode.FAILED_PRECONDITION,
}
ERROR_REASONS = tuple(STATUS_BY_REASON)


def rich_status(
    code: grpc.StatusCode, message: str, reason: str, trace_id: str, metadata: dict[str, str] | None = None
) -> grpc.Status:
    """A grpc.Status whose trailers carry google.rpc.Status(ErrorInfo) and the trace id."""
    info = error_details_pb2.ErrorInfo(
        reason=reason, domain=DOMAIN, metadata={**(metadata or {}), "trace_id": trace_id}
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    proto_status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    status = rpc_status.to_status(proto_status)
    return _Status(status.code, status.details, (*status.trailing_metadata, (TRACE_ID_KEY, trace_id)))


def status_for(error: MeshError, trace_id: str) -> grpc.Status:
    """The status a domain error is reported with."""
    return rich_status(STATUS_BY_REASON[error.reason], error.message, error.reason, trace_id, error.metadata)


def error_info(error: grpc.aio.AioRpcError | grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo detail a peer attached to its error, if any."""
    for key, value in error.trailing_metadata() or ():
        if key == rpc_status.GRPC_DETAILS_METADATA_KEY:
            proto_status = status_pb2.Status.FromString(value)
            for detail in proto_status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    return info
    return None


async def abort(context: grpc.aio.ServicerContext, status: grpc.Status) -> None:
    """Ends the call with `status`; never returns."""
    await context.abort(status.code, status.details, status.trailing_metadata)


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata

