"""A lane: a bounded number of places for one kind of work. A call that finds the lane full is
refused at once, never queued: a queue would only hold the excess until its deadline while the
caller waits for nothing. Plain Python."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from services.common.errors import OverloadedError


class Lane:
    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.in_use = 0

    @contextmanager
    def place(self) -> Iterator[None]:
        """Holds one place for the block; raises OverloadedError when there is none."""
        if self.in_use >= self.capacity:
            raise OverloadedError(f"this instance already runs {self.capacity} {self.name} at once (the limit); "
                                  "retry later", limit=str(self.capacity))
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
