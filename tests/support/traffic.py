"""Steady background traffic through the gateway, counting outcomes."""

from __future__ import annotations

import threading
import time
from collections import Counter

import grpc

from opsconductor.automation.v1 import automation_pb2
from tests.support.calls import automation_stub

PING = automation_pb2.ExecuteRequest(input="ping", tool="echo")


class Traffic:
    """`rate` calls a second from one thread until stopped; outcomes by pool or status code."""

    def __init__(self, gateway: str, rate: float = 50.0, request=PING, metadata=()) -> None:
        self.gateway, self.rate, self.request, self.metadata = gateway, rate, request, metadata
        self.ok: Counter = Counter()
        self.failed: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        channel, stub = automation_stub(self.gateway)
        with channel:
            next_at = time.monotonic()
            while not self._stop.is_set():
                try:
                    self.ok[stub.Execute(self.request, timeout=10, metadata=self.metadata).pool] += 1
                except grpc.RpcError as error:
                    self.failed[error.code().name] += 1
                next_at += 1 / self.rate
                self._stop.wait(max(0.0, next_at - time.monotonic()))  # pacing, not readiness
