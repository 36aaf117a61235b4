"""Expectations: what a controller is still waiting to see in its cache after its own writes.

A ReplicaSet that just created 10 pods must not create 10 more because its informer has not
shown them yet. Creations are counted, deletions are tracked by pod uid (a deletion is
observed once, whether the informer or the API answered first); an expectation older than
`ttl` is considered satisfied, so a lost event only delays, never wedges (upstream: 5 min).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from reconcile.engine import clock as clock_mod

DEFAULT_TTL = 300.0


@dataclass
class _Pending:
    adds: int = 0  # creations not yet seen in the cache
    deletes: set[str] = field(default_factory=set)  # uids whose deletion is not yet seen
    stamp: float = 0.0  # when this was last set


class Expectations:
    """Per controller key: pending creates and deletes (upstream UIDTrackingControllerExpectations)."""

    def __init__(self, *, clock: clock_mod.Clock | None = None, ttl: float = DEFAULT_TTL) -> None:
        self.clock = clock or clock_mod.RealClock()
        self.ttl = ttl
        # Invariant: a key is absent, or its entry was set by expect_* and counts down from there.
        self._pending: dict[Hashable, _Pending] = {}

    def satisfied(self, key: Hashable) -> bool:
        """True when nothing is pending for `key` (or it waited longer than the TTL)."""
        entry = self._pending.get(key)
        if entry is None:
            return True
        if entry.adds <= 0 and not entry.deletes:
            return True
        return self.clock.now() - entry.stamp > self.ttl

    def expect_creations(self, key: Hashable, count: int) -> None:
        entry = self._pending.setdefault(key, _Pending())
        entry.adds, entry.deletes, entry.stamp = count, set(), self.clock.now()

    def expect_deletions(self, key: Hashable, uids: Iterable[str]) -> None:
        entry = self._pending.setdefault(key, _Pending())
        entry.adds, entry.deletes, entry.stamp = 0, set(uids), self.clock.now()

    def creation_observed(self, key: Hashable, *, count: int = 1) -> None:
        entry = self._pending.get(key)
        if entry is not None:
            entry.adds -= count

    def deletion_observed(self, key: Hashable, uid: str) -> None:
        entry = self._pending.get(key)
        if entry is not None:
            entry.deletes.discard(uid)

    def forget(self, key: Hashable) -> None:
        self._pending.pop(key, None)
