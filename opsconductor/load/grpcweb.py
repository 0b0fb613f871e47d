"""A minimal gRPC-Web client over HTTP/1.1, as a browser speaks it: for release checks,
benchmarks and tests that must see exactly what the page sees."""

from __future__ import annotations

import http.client
import struct
from dataclasses import dataclass, field

_DATA, _TRAILERS = 0x00, 0x80


def frame(message: bytes, flags: int = _DATA) -> bytes:
    """One gRPC-Web frame: a flag byte, a 4-byte big-endian length, the payload."""
    return struct.pack(">BI", flags, len(message)) + message


@dataclass
class Reply:
    """What came back: the HTTP status and headers, the messages, and the gRPC status."""

    http_status: int
    headers: dict[str, str]
    messages: list[bytes] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)

    @property
    def grpc_status(self) -> int | None:
        """From the trailer frame, else from the headers (trailers-only replies)."""
        value = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        return int(value) if value is not None else None

    @property
    def grpc_message(self) -> str:
        return self.trailers.get("grpc-message", self.headers.get("grpc-message", ""))


def parse(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """Splits a gRPC-Web body into messages and the trailer frame's headers."""
    messages, trailers, offset = [], {}, 0
    while offset + 5 <= len(body):
        flags, length = struct.unpack(">BI", body[offset:offset + 5])
        payload = body[offset + 5:offset + 5 + length]
        if len(payload) < length:
            raise ValueError("truncated gRPC-Web frame")
        offset += 5 + length
        if flags & _TRAILERS:
            for line in payload.decode("latin-1").split("\r\n"):
                name, sep, value = line.partition(":")
                if sep:
                    trailers[name.strip().lower()] = value.strip()
        else:
            messages.append(payload)
    return messages, trailers


def call(host: str, port: int, path: str, message: bytes, headers: dict[str, str] | None = None,
         timeout: float = 10.0, connection: http.client.HTTPConnection | None = None) -> Reply:
    """One unary call; pass `connection` to reuse a keep-alive connection."""
    own = connection is None
    connection = connection or http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("POST", path, body=frame(message), headers={
            "content-type": "application/grpc-web+proto", "x-grpc-web": "1", "accept": "application/grpc-web+proto",
            **(headers or {})})
        response = connection.getresponse()
        body = response.read()
    finally:
        if own:
            connection.close()
    reply_headers = {name.lower(): value for name, value in response.getheaders()}
    messages, trailers = parse(body) if response.status == 200 else ([], {})
    return Reply(response.status, reply_headers, messages, trailers)
