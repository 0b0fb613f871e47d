"""A load generator for Execute: a closed loop (fixed concurrency) over native gRPC, checking
that every reply is real (OK status and the expected output)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from opsconductor.automation.v1 import automation_pb2
from services.common.names import AUTOMATION_EXECUTE


@dataclass(frozen=True)
class Target:
    """Where to send calls and what a good reply contains."""

    name: str
    address: str
    method: str = AUTOMATION_EXECUTE
    payload: bytes = automation_pb2.ExecuteRequest(input="ping", tool="echo").SerializeToString()
    expect: bytes = b"pong"
    metadata: tuple[tuple[str, str], ...] = ()
    # Makes a channel to the address: plaintext by default; the operator's mTLS channel for a
    # service of a stack that runs with identities.
    channel: Callable[[str], grpc.aio.Channel] = grpc.aio.insecure_channel


@dataclass
class Measurement:
    """Latencies of good calls and errors by status over one run."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @property
    def calls(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    def percentile(self, share: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def summary(self) -> dict[str, object]:
        ok = len(self.latencies)
        return {
            "calls": self.calls, "ok": ok, "errors": dict(self.errors),
            "rps": round(self.calls / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "p50_ms": round(self.percentile(0.50) * 1000, 3), "p95_ms": round(self.percentile(0.95) * 1000, 3),
            "p99_ms": round(self.percentile(0.99) * 1000, 3),
            "max_ms": round(max(self.latencies, default=float("nan")) * 1000, 3),
        }


async def _one(call, target: Target, measurement: Measurement, timeout: float) -> None:
    begin = time.perf_counter()
    try:
        reply = await call(target.payload, timeout=timeout, metadata=target.metadata)
    except grpc.aio.AioRpcError as error:
        measurement.errors[error.code().name] += 1
        return
    if target.expect and target.expect not in reply:
        measurement.errors["WRONG_REPLY"] += 1
        return
    measurement.latencies.append(time.perf_counter() - begin)


async def closed_loop(target: Target, concurrency: int, duration_s: float, timeout: float = 30.0,
                      channels: int = 4) -> Measurement:
    """`concurrency` callers, each sending its next call as soon as the last one returns."""
    pool = [target.channel(target.address) for _ in range(channels)]
    calls = [ch.unary_unary(target.method) for ch in pool]  # raw bytes both ways: no client-side protobuf work
    measurement = Measurement()
    stop_at = time.perf_counter() + duration_s

    async def caller(index: int) -> None:
        call = calls[index % channels]
        while time.perf_counter() < stop_at:
            await _one(call, target, measurement, timeout)

    begin = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    measurement.elapsed_s = time.perf_counter() - begin
    for ch in pool:
        await ch.close()
    return measurement
