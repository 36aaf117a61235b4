"""The work queue controllers pull keys from, with client-go's semantics.

A key is never handed to two workers at once; adding a key that is queued or in flight
collapses into one pending run; `add_after` delays a key on the injected clock; failed keys
come back with per-key exponential backoff bounded by an overall token bucket.
Single event loop only: every method runs on the loop that owns the queue.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Protocol

from reconcile.engine import clock as clock_mod


class ShutDown(Exception):
    """`get` on a queue that is shut down and empty: the worker should exit."""


class ReadyQueue(Protocol):
    """The order ready keys are handed out in: FIFO (a deque) unless the owner gives another, as
    the scheduler does (higher priority first). Keys are appended once each (the queue dedups)."""

    def append(self, key: Hashable) -> None: ...

    def popleft(self) -> Hashable: ...

    def __len__(self) -> int: ...


class RateLimiter(Protocol):
    def when(self, key: Hashable) -> float:
        """The delay before `key` may be retried (records one more failure)."""
        ...

    def forget(self, key: Hashable) -> None: ...

    def retries(self, key: Hashable) -> int: ...


class ItemExponentialLimiter:
    """Per-key backoff: base * 2**failures, capped (client-go: 5 ms doubling to 1000 s)."""

    def __init__(self, *, base: float = 0.005, cap: float = 1000.0) -> None:
        self.base = base
        self.cap = cap
        # Invariant: _failures[key] == calls to when(key) since the last forget(key); absent = 0.
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable) -> float:
        exp = self._failures.get(key, 0)
        self._failures[key] = exp + 1
        if exp >= 64:  # 2**64 * base is far past any cap; avoid float overflow
            return self.cap
        return min(self.base * (2**exp), self.cap)

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def retries(self, key: Hashable) -> int:
        return self._failures.get(key, 0)


class BucketLimiter:
    """Overall token bucket (golang.org/x/time/rate): `burst` at once, then `qps` per second."""

    def __init__(self, *, qps: float = 10.0, burst: int = 100, clock: clock_mod.Clock) -> None:
        self.qps = qps
        self.burst = burst
        self._clock = clock
        # Invariant: _tokens is the bucket at time _last; it may go negative, which is how
        # far into the future the reservations already handed out reach (-tokens / qps).
        self._tokens = float(burst)
        self._last = clock.now()

    def when(self, key: Hashable) -> float:
        now = self._clock.now()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, key: Hashable) -> None:
        """The bucket is shared by every key: nothing to forget."""

    def retries(self, key: Hashable) -> int:
        return 0


class MaxOfLimiter:
    """The longest delay any of the limiters asks for (each one records the failure)."""

    def __init__(self, *limiters: RateLimiter) -> None:
        self.limiters = limiters

    def when(self, key: Hashable) -> float:
        return max((limiter.when(key) for limiter in self.limiters), default=0.0)

    def forget(self, key: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(key)

    def retries(self, key: Hashable) -> int:
        return max((limiter.retries(key) for limiter in self.limiters), default=0)


def default_limiter(clock: clock_mod.Clock) -> RateLimiter:
    """controller-runtime's default: max(per-key 5 ms -> 1000 s, bucket 10 qps / burst 100)."""
    return MaxOfLimiter(ItemExponentialLimiter(), BucketLimiter(clock=clock))


class WorkQueue:
    """Keys waiting to be processed; see the module docstring for the guarantees."""

    def __init__(
        self,
        *,
        clock: clock_mod.Clock | None = None,
        limiter: RateLimiter | None = None,
        name: str = "",
        ready: ReadyQueue | None = None,
    ) -> None:
        self.name = name
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        self.limiter: RateLimiter = limiter or default_limiter(self.clock)
        # Invariant: a key is in _dirty iff it will be handed out (again) by get(): either it
        # is in _queue, or it is in _processing and done() will put it back in _queue.
        self._dirty: set[Hashable] = set()
        # Invariant: the keys ready to hand out (FIFO unless `ready` orders them otherwise); every
        # key in it is in _dirty and not in _processing, and appears once (dedup).
        self._queue: ReadyQueue = ready if ready is not None else deque()
        # Invariant: keys handed out by get() and not yet done(); never handed out again
        # before done() (no key is processed by two workers at once).
        self._processing: set[Hashable] = set()
        # Invariant: _waiting_for[key] is the earliest time an add_after asked for; the heap
        # holds (ready_at, seq, key) where entries that disagree with _waiting_for are stale.
        # A key's entry is moved to the queue (via add) when the clock reaches ready_at.
        self._waiting_for: dict[Hashable, float] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()
        # Invariant: while _waiting_for is non-empty and not shutting down, a timer task sleeps
        # until _timer_at <= the earliest ready_at (it is replaced when an earlier one arrives).
        self._timer: asyncio.Task[None] | None = None
        self._timer_at = float("inf")
        # Parked get() callers; each add to _queue wakes one (a woken caller that got
        # cancelled passes the wake-up on, so none is lost).
        self._getters: deque[asyncio.Future[None]] = deque()
        # Invariant: once set, never cleared; adds are ignored, get() drains what is queued
        # and then raises ShutDown.
        self.shutting_down = False

    # --- adding ------------------------------------------------------------------------------

    def add(self, key: Hashable) -> None:
        """Queue `key` unless it is already pending; a key in flight is marked to run again."""
        if self.shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # done() queues it
        self._queue.append(key)
        self._wake_one()

    def add_after(self, key: Hashable, delay: float) -> None:
        """Add `key` once `delay` seconds passed on the clock; the earliest request wins."""
        if self.shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        ready_at = self.clock.now() + delay
        current = self._waiting_for.get(key)
        if current is not None and current <= ready_at:
            return
        self._waiting_for[key] = ready_at
        heapq.heappush(self._heap, (ready_at, next(self._seq), key))
        self._arm_timer()

    def add_rate_limited(self, key: Hashable) -> None:
        """Add `key` after the limiter's delay (a failed attempt: backoff grows)."""
        self.add_after(key, self.limiter.when(key))

    def forget(self, key: Hashable) -> None:
        """Reset `key`'s backoff (it succeeded)."""
        self.limiter.forget(key)

    def retries(self, key: Hashable) -> int:
        return self.limiter.retries(key)

    # --- taking ------------------------------------------------------------------------------

    async def get(self) -> Hashable:
        """The next key (blocks); raises ShutDown once shut down and drained."""
        while True:
            self._flush_ready()
            if self._queue:
                key = self._queue.popleft()
                self._processing.add(key)
                self._dirty.discard(key)
                return key
            if self.shutting_down:
                raise ShutDown(self.name)
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # we were woken for a key we will not take: pass it on
                raise
            finally:
                if waiter in self._getters:
                    self._getters.remove(waiter)

    def done(self, key: Hashable) -> None:
        """`key` finished; if it was added meanwhile, queue it again."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()

    def shut_down(self) -> None:
        """Stop accepting keys; delayed keys are dropped, parked get() callers wake up."""
        self.shutting_down = True
        self._waiting_for.clear()
        self._heap.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = float("inf")
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # --- sizes, for metrics --------------------------------------------------------------------

    def __len__(self) -> int:
        """Keys queued: not in flight, not waiting for a delay."""
        self._flush_ready()
        return len(self._queue)

    @property
    def depth(self) -> int:
        return len(self)

    @property
    def in_flight(self) -> int:
        return len(self._processing)

    @property
    def waiting(self) -> int:
        return len(self._waiting_for)

    # --- internals -----------------------------------------------------------------------------

    def _wake_one(self) -> None:
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _flush_ready(self) -> None:
        """Move delayed keys whose time came into the queue, earliest first."""
        now = self.clock.now()
        while self._heap and self._heap[0][0] <= now:
            ready_at, _, key = heapq.heappop(self._heap)
            if self._waiting_for.get(key) == ready_at:
                del self._waiting_for[key]
                self.add(key)

    def _arm_timer(self) -> None:
        while self._heap and self._waiting_for.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # drop stale entries so the timer aims at a live one
        if not self._heap or self.shutting_down:
            return
        ready_at = self._heap[0][0]
        if self._timer is not None and not self._timer.done() and self._timer_at <= ready_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = ready_at
        self._timer = asyncio.get_running_loop().create_task(
            self._fire_at(ready_at), name=f"workqueue-timer:{self.name}"
        )

    async def _fire_at(self, ready_at: float) -> None:
        await self.clock.sleep(ready_at - self.clock.now())
        self._timer = None
        self._timer_at = float("inf")
        self._flush_ready()
        self._arm_timer()
