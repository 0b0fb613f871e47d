"""Deliberate failures for testing canary analysis: every Nth call, a random share, added
latency. Off unless configured. Injected errors are INTERNAL (reason INJECTED_FAULT), never
UNAVAILABLE, which the gateway would retry away."""

from __future__ import annotations

import asyncio
import random

from services.common.config import FaultConfig
from services.common.errors import InjectedFaultError


class FaultInjector:
    def __init__(self, config: FaultConfig, rng: random.Random | None = None) -> None:
        self._config = config
        self._rng = rng or random.Random()
        self._calls = 0

    async def apply(self) -> None:
        """Waits the configured latency, then raises InjectedFaultError when this call must fail."""
        if not self._config.enabled:
            return
        self._calls += 1
        if self._config.latency_ms:
            await asyncio.sleep(self._config.latency_ms / 1000)
        if self._config.every_n and self._calls % self._config.every_n == 0:
            raise InjectedFaultError(f"injected fault: call {self._calls} (every {self._config.every_n}th fails)")
        if self._config.rate and self._rng.random() < self._config.rate:
            raise InjectedFaultError(f"injected fault: random failure at rate {self._config.rate:g}")
