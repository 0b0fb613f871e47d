"""Client helpers: call Execute and read the ErrorInfo and trace id of a failed call."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from opsconductor.automation.v1 import automation_pb2, automation_pb2_grpc


def automation_stub(target: str) -> tuple[grpc.Channel, automation_pb2_grpc.AutomationServiceStub]:
    channel = grpc.insecure_channel(target)
    return channel, automation_pb2_grpc.AutomationServiceStub(channel)


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    """The single ErrorInfo detail of an error; fails the test when there is none."""
    status = rpc_status.from_call(error)
    assert status is not None, f"no google.rpc.Status in the error {error.code()}: {error.details()}"
    infos = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    assert len(infos) == 1, f"expected one ErrorInfo, got {infos}"
    return infos[0]


def trailing(error_or_call, key: str) -> str | None:
    for item in error_or_call.trailing_metadata() or ():
        if item.key == key:
            return item.value
    return None


def execute(stub, timeout: float = 10, metadata=(), **fields) -> automation_pb2.ExecuteResponse:
    return stub.Execute(automation_pb2.ExecuteRequest(**fields), timeout=timeout, metadata=metadata)
