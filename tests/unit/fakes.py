"""A stand-in for grpc.aio.ServicerContext, so servicers are tested without sockets."""

from __future__ import annotations

import grpc


class Aborted(Exception):
    """Raised by FakeContext.abort, as grpc.aio raises AbortError."""


class FakeContext:
    def __init__(self, metadata: tuple = (), time_remaining: float | None = None) -> None:
        self._metadata = metadata
        self._time_remaining = time_remaining
        self.code: grpc.StatusCode | None = None
        self.details = ""
        self.trailing: tuple = ()

    def invocation_metadata(self) -> tuple:
        return self._metadata

    def time_remaining(self) -> float | None:
        return self._time_remaining

    def set_trailing_metadata(self, metadata: tuple) -> None:
        self.trailing = tuple(metadata)

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: tuple = ()) -> None:
        self.code, self.details, self.trailing = code, details, tuple(trailing_metadata)
        raise Aborted(details)

    def trailing_value(self, key: str):
        return dict(self.trailing).get(key)
