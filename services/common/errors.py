"""Domain errors: plain Python, no grpc, each naming the ErrorInfo reason it maps to."""

from __future__ import annotations

from services.common.messages import bounded, bounded_metadata


class MeshError(Exception):
    """An error a caller can act on; `reason` is the google.rpc.ErrorInfo reason."""

    reason = "INTERNAL_ERROR"

    def __init__(self, message: str, **metadata: str) -> None:
        # Bounded here, where every domain error passes: a status message or ErrorInfo that
        # outgrew gRPC's metadata limits would reach the caller as another status.
        self.message = bounded(message)
        super().__init__(self.message)
        # Extra ErrorInfo metadata (for example the tool or argument at fault).
        self.metadata = bounded_metadata({key: str(value) for key, value in metadata.items()})


class ValidationError(MeshError):
    """The request is malformed: empty or oversized input, bad tool name or argument."""

    reason = "VALIDATION_ERROR"


class UnknownToolError(MeshError):
    """The named tool is not in the catalogue, or no tool fits the input."""

    reason = "UNKNOWN_TOOL"


class DestinationDeniedError(MeshError):
    """A network tool was asked to reach a destination outside the allowlist."""

    reason = "DESTINATION_DENIED"


class InjectedFaultError(MeshError):
    """A failure injected on purpose (fault-injection settings), to test canary analysis."""

    reason = "INJECTED_FAULT"


class NotReadOnlyError(MeshError):
    """A call the gateway mirrored to the canary chose a tool that is not read-only: refused,
    since its reply is discarded and the caller's own call runs the tool already."""

    reason = "NOT_READ_ONLY"


class OverloadedError(MeshError):
    """The service is at its limit of calls of this kind in flight; the caller may retry later."""

    reason = "OVERLOADED"
