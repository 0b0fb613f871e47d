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


class FakeResolver:
    """Answers from a table, as the pipeline's Resolver does from DNS; records what was asked."""

    def __init__(self, table: dict[str, tuple[str, ...]] | None = None) -> None:
        import ipaddress

        self._table = {name: tuple(ipaddress.ip_address(a) for a in addresses)
                       for name, addresses in (table or {"localhost": ("127.0.0.1", "::1")}).items()}
        self.asked: list[str] = []

    async def resolve(self, name: str, timeout_s: float):
        from services.pipeline.resolver import LookupFailed

        self.asked.append(name)
        if name not in self._table:
            raise LookupFailed("name not found")
        return self._table[name]
