"""An HTTP response body read within bounds: at most MAX_RAW_BYTES off the wire and at most
MAX_DECODED_BYTES once gzip or deflate is undone, decoded in small steps that give the event
loop back between them. (Counting decoded bytes only after a whole chunk is decoded lets a
small compressed body expand to tens of megabytes in one go, and stall every other call.)"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

MAX_RAW_BYTES = 1 << 20
MAX_DECODED_BYTES = 1 << 20
_STEP_BYTES = 64 * 1024  # decoded output per step between two turns of the event loop
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


@dataclass
class Body:
    """What was read: bytes on the wire, bytes once decoded (None when the encoding is not one
    decoded here), and whether a cap stopped the reading."""

    raw_bytes: int = 0
    decoded_bytes: int | None = 0
    truncated: bool = False


async def read_body(chunks: AsyncIterator[bytes], content_encoding: str, body: Body) -> None:
    """Reads `chunks` into `body` (filled as it goes, so a caller that times out still has the
    counts so far) until the body ends or a cap is reached."""
    encoding = content_encoding.strip().lower()
    decoder = zlib.decompressobj(_WBITS[encoding]) if encoding in _WBITS else None
    if decoder is None and encoding not in ("", "identity"):
        body.decoded_bytes = None  # br, zstd, stacked encodings: sizes on the wire only
    async for chunk in chunks:
        chunk = chunk[:MAX_RAW_BYTES - body.raw_bytes]
        body.raw_bytes += len(chunk)
        if decoder is not None and body.decoded_bytes is not None:
            if not await _decode(decoder, chunk, body):
                return
        elif body.decoded_bytes is not None:
            body.decoded_bytes = body.raw_bytes
        if body.raw_bytes >= MAX_RAW_BYTES:
            body.truncated = True
            return


async def _decode(decoder: zlib._Decompress, data: bytes, body: Body) -> bool:
    """Decodes `data` step by step; False once the decoded cap is reached."""
    assert body.decoded_bytes is not None
    while data:
        try:
            out = decoder.decompress(data, _STEP_BYTES)
        except zlib.error:
            body.decoded_bytes = None  # not what it claims to be: report the wire size only
            return True
        body.decoded_bytes += len(out)
        if body.decoded_bytes >= MAX_DECODED_BYTES:
            body.decoded_bytes = MAX_DECODED_BYTES
            body.truncated = True
            return False
        data = decoder.unconsumed_tail
        await asyncio.sleep(0)
    return True
