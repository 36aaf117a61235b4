"""The scheduling queue: active pods, pods backing off, and unschedulable pods parked until the cluster changes.

As upstream's PriorityQueue (without preemption): ready pods are handed out higher priority first,
and of equal priority in the order they became ready (upstream's PrioritySort queue-sort plugin).
A pod that did not fit is parked with the
names of the filters that rejected it. A cluster event that could help one of those filters
(a node added or changed, a pod removed, a pod placed for affinity) moves it back, but never
before its backoff (1 s doubling to 10 s per failed attempt) has passed; so retries are driven
by events and bounded in rate, never a busy loop. A pod parked longer than 5 minutes is
retried anyway (upstream's podMaxInUnschedulablePodsDuration), as a safety net.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable, Iterable

from reconcile.engine import clock as clock_mod
from reconcile.engine import workqueue

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
MAX_UNSCHEDULABLE_DURATION = 300.0

ALL = "*"  # an event that may help any failure


class _NoLimit:
    """The work queue's own rate limiter is unused: this queue computes its backoff itself."""

    def when(self, key: Hashable) -> float:
        return 0.0

    def forget(self, key: Hashable) -> None:
        return None

    def retries(self, key: Hashable) -> int:
        return 0


class PriorityOrder:
    """The active queue's order: highest priority first, then first come. A key's priority is read
    once, when it becomes ready (a pod's priority never changes after its creation)."""

    def __init__(self, priority_of: Callable[[Hashable], int]) -> None:
        self._priority_of = priority_of
        self._heap: list[tuple[int, int, Hashable]] = []  # (-priority, arrival, key)
        self._arrival = itertools.count()

    def append(self, key: Hashable) -> None:
        heapq.heappush(self._heap, (-self._priority_of(key), next(self._arrival), key))

    def popleft(self) -> Hashable:
        return heapq.heappop(self._heap)[2]

    def __len__(self) -> int:
        return len(self._heap)


def _no_priority(key: Hashable) -> int:
    return 0


class SchedulingQueue:
    def __init__(
        self,
        *,
        clock: clock_mod.Clock | None = None,
        initial_backoff: float = INITIAL_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        max_unschedulable: float = MAX_UNSCHEDULABLE_DURATION,
        priority_of: Callable[[Hashable], int] = _no_priority,
    ) -> None:
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable = max_unschedulable
        # Dedup, in-flight tracking and delayed adds come from the engine's work queue; the order
        # of ready pods is ours.
        self.active = workqueue.WorkQueue(clock=self.clock, limiter=_NoLimit(), name="scheduler",
                                          ready=PriorityOrder(priority_of))
        # Invariant: attempts[key] = failed attempts since the pod last succeeded or was updated
        # by its owner; absent = 0. last_failure[key] = clock time of the latest one.
        self.attempts: dict[Hashable, int] = {}
        self.last_failure: dict[Hashable, float] = {}
        # Invariant: a key is in `unschedulable` iff it is parked (not queued, not waiting for a
        # backoff other than the 5-minute safety net); the value names the filters that failed.
        self.unschedulable: dict[Hashable, frozenset[str]] = {}

    # --- feeding ----------------------------------------------------------------------------------

    def add(self, key: Hashable) -> None:
        """A new or changed pending pod: queue it, respecting what is left of its backoff."""
        self.unschedulable.pop(key, None)
        self.active.add_after(key, self.backoff_remaining(key))

    def delete(self, key: Hashable) -> None:
        """The pod is gone or bound: forget everything about it (a stale queued key is skipped by the caller)."""
        self.unschedulable.pop(key, None)
        self.attempts.pop(key, None)
        self.last_failure.pop(key, None)

    def move(self, hint: str = ALL) -> int:
        """A cluster event: move parked pods that `hint` may help to the active queue after their backoff."""
        moved = [k for k, failed in self.unschedulable.items() if hint == ALL or hint in failed or not failed]
        for key in moved:
            del self.unschedulable[key]
            self.active.add_after(key, self.backoff_remaining(key))
        return len(moved)

    # --- the scheduling cycle ------------------------------------------------------------------

    async def pop(self) -> Hashable:
        """The next pod to try (raises workqueue.ShutDown once shut down)."""
        return await self.active.get()

    def done(self, key: Hashable) -> None:
        self.active.done(key)

    def succeeded(self, key: Hashable) -> None:
        self.delete(key)

    def mark_unschedulable(self, key: Hashable, failed: Iterable[str]) -> None:
        """No node fits: park it until an event may help (or the safety net fires)."""
        self._failed(key)
        self.unschedulable[key] = frozenset(failed)
        self.active.add_after(key, self.max_unschedulable)

    def retry_later(self, key: Hashable) -> None:
        """A transient failure (binding refused, API unavailable): try again after the backoff."""
        self._failed(key)
        self.unschedulable.pop(key, None)
        self.active.add_after(key, self.backoff_remaining(key))

    def shut_down(self) -> None:
        self.active.shut_down()

    # --- backoff --------------------------------------------------------------------------------

    def backoff(self, key: Hashable) -> float:
        attempts = self.attempts.get(key, 0)
        if attempts <= 0:
            return 0.0
        return min(self.initial_backoff * 2 ** min(attempts - 1, 32), self.max_backoff)

    def backoff_remaining(self, key: Hashable) -> float:
        last = self.last_failure.get(key)
        if last is None:
            return 0.0
        return max(0.0, last + self.backoff(key) - self.clock.now())

    def _failed(self, key: Hashable) -> None:
        self.attempts[key] = self.attempts.get(key, 0) + 1
        self.last_failure[key] = self.clock.now()
