"""Clocks: the engine asks a `Clock` for time, so tests of timing logic run on virtual time.

Monotonic time (`now`) drives every deadline (backoff, requeue, lease expiry); wall time
(`wall`) is only written into objects (lease renewTime, event timestamps), never trusted.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def wall(self) -> datetime:
        """Aware UTC datetime, for timestamps written to objects."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    """The process clocks and asyncio's sleep."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """Virtual time: `sleep` parks the caller until a test `advance`s past its deadline."""

    def __init__(self, start: float = 0.0, *, wall_start: datetime | None = None) -> None:
        self._start = start
        self._now = start
        self._wall_start = wall_start or datetime(2026, 1, 1, tzinfo=UTC)
        # Invariant: one entry per parked sleeper (cancelled ones are dropped on wake-up), in
        # (deadline, arrival) order, so equal deadlines wake first-come first-served.
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> datetime:
        return self._wall_start + timedelta(seconds=self._now - self._start)

    @property
    def sleepers(self) -> int:
        """How many callers are parked in `sleep` right now."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    def advance(self, seconds: float) -> None:
        """Move time forward; wake the sleepers whose deadline passed, earliest first."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def run_until_idle(self, *, rounds: int = 50) -> None:
        """Give woken tasks a few loop iterations to run (no time passes)."""
        for _ in range(rounds):
            await asyncio.sleep(0)
