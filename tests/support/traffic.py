"""Steady background traffic through the gateway, counting outcomes."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import grpc

from opsconductor.automation.v1 import automation_pb2, automation_pb2_grpc
from services.common.names import AUTOMATION_SERVICE
from tests.support.calls import automation_stub

PING = automation_pb2.ExecuteRequest(input="ping", tool="echo")
PIN_STABLE = (("x-canary", "never"),)
# What a client of one gateway process does to ride out its restart: wait for the connection
# to be ready again, and retry a call the broken connection failed (UNAVAILABLE).
_RETRYING = {"methodConfig": [{"name": [{"service": AUTOMATION_SERVICE}], "retryPolicy": {
    "maxAttempts": 5, "initialBackoff": "0.1s", "maxBackoff": "1s", "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"]}}]}
RETRYING_OPTIONS = (("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(_RETRYING)),
                    ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 500))


class Traffic:
    """`rate` calls a second from one thread until stopped; outcomes by pool or status code.
    `retrying` makes it a client that waits for the gateway and retries UNAVAILABLE."""

    def __init__(self, gateway: str, rate: float = 50.0, request=PING, metadata=(), retrying: bool = False) -> None:
        self.gateway, self.rate, self.request, self.metadata = gateway, rate, request, metadata
        self.retrying = retrying
        self.ok: Counter = Counter()
        self.failed: Counter = Counter()
        self.slowest_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def calls(self) -> int:
        return sum(self.ok.values()) + sum(self.failed.values())

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)

    def _channel(self):
        if not self.retrying:
            return automation_stub(self.gateway)
        channel = grpc.insecure_channel(self.gateway, options=RETRYING_OPTIONS)
        return channel, automation_pb2_grpc.AutomationServiceStub(channel)

    def _run(self) -> None:
        channel, stub = self._channel()
        with channel:
            next_at = time.monotonic()
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    self.ok[stub.Execute(self.request, timeout=10, metadata=self.metadata,
                                         wait_for_ready=self.retrying or None).pool] += 1
                except grpc.RpcError as error:
                    self.failed[error.code().name] += 1
                self.slowest_s = max(self.slowest_s, time.monotonic() - began)
                next_at += 1 / self.rate
                self._stop.wait(max(0.0, next_at - time.monotonic()))  # pacing, not readiness
