"""Crash and image-pull backoff: the only memory pod sync keeps between syncs.

Everything else pod sync knows it reads again from Docker and the informer each time. These
records only delay work (a crash-looping container, an image that will not pull), so losing
them on an agent restart costs nothing but an earlier retry. The records are frozen and
replaced on change, so a snapshot handed to the pure planner cannot change under it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reconcile.node import containers

CRASH_BACKOFF_INITIAL = 10.0  # seconds before the second restart; doubles per crash
CRASH_BACKOFF_CAP = 300.0
BACKOFF_RESET_AFTER = 600.0  # a container that ran this long resets its crash backoff
PULL_BACKOFF_INITIAL = 10.0
PULL_BACKOFF_CAP = 300.0


def crash_delay(streak: int) -> float:
    """No delay for the first restart; 10 s for the second, doubling to 300 s (the kubelet's curve)."""
    if streak <= 0:
        return 0.0
    return min(CRASH_BACKOFF_CAP, CRASH_BACKOFF_INITIAL * 2 ** (streak - 1))


@dataclass(frozen=True)
class Streak:
    """Crash backoff of one container: restarts in a row without a long (10 min) run between."""

    counted_id: str = ""  # the dead instance last counted, so one crash counts once
    streak: int = 0
    restarted_at: float = 0.0  # clock.now() of the last restart


def effective_streak(streak: Streak, dead: containers.Instance) -> int:
    """The streak that governs restarting `dead`: a run of 10 minutes or more forgives the past."""
    return 0 if dead.ran_for() >= BACKOFF_RESET_AFTER else streak.streak


def crash_wait(streak: Streak, dead: containers.Instance, *, now: float, wall: datetime) -> tuple[float, float]:
    """(backoff delay, seconds of it still to wait) before `dead` may be restarted; (0, 0): now.

    The delay counts from when the container finished (Docker's wall clock); one that never
    ran (failed to start) has no finish time, so it counts from our last restart (monotonic).
    """
    delay = crash_delay(effective_streak(streak, dead))
    if delay <= 0:
        return 0.0, 0.0
    finished = dead.finished_at_datetime()
    elapsed = (wall - finished).total_seconds() if finished is not None else now - streak.restarted_at
    return delay, max(0.0, delay - elapsed)


def after_restart(streak: Streak, dead: containers.Instance, *, now: float) -> Streak:
    """The record once `dead` has been replaced by a new attempt at `now`."""
    if streak.counted_id == dead.id:
        return Streak(streak.counted_id, streak.streak, now)
    return Streak(dead.id, effective_streak(streak, dead) + 1, now)


class CrashBackoff:
    """Crash streaks per (pod uid, container name)."""

    def __init__(self) -> None:
        self._streaks: dict[tuple[str, str], Streak] = {}

    def of(self, uid: str) -> dict[str, Streak]:
        """The streaks of one pod by container name: the snapshot the planner reads."""
        return {name: s for (u, name), s in self._streaks.items() if u == uid}

    def restarted(self, uid: str, name: str, dead: containers.Instance, *, now: float) -> None:
        """`dead` (the newest attempt, terminated) was just replaced by a new attempt."""
        self._streaks[(uid, name)] = after_restart(self._streaks.get((uid, name), Streak()), dead, now=now)

    def forget(self, uid: str) -> None:
        for key in [k for k in self._streaks if k[0] == uid]:
            del self._streaks[key]


@dataclass(frozen=True)
class Pull:
    """Image-pull backoff of one image for one pod."""

    delay: float
    not_before: float  # clock.now() before which no pull is tried


class PullBackoff:
    """Failed pulls per (pod uid, image): 10 s after the first failure, doubling to 300 s."""

    def __init__(self) -> None:
        self._pulls: dict[tuple[str, str], Pull] = {}

    def wait(self, uid: str, image: str, *, now: float) -> float:
        """Seconds before the next pull of `image` may be tried (0: now)."""
        record = self._pulls.get((uid, image))
        return max(0.0, record.not_before - now) if record is not None else 0.0

    def failed(self, uid: str, image: str, *, now: float) -> float:
        """Record a failed pull; the delay before the next try (doubled from the last one)."""
        record = self._pulls.get((uid, image))
        delay = PULL_BACKOFF_INITIAL if record is None else min(PULL_BACKOFF_CAP, record.delay * 2)
        self._pulls[(uid, image)] = Pull(delay, now + delay)
        return delay

    def succeeded(self, uid: str, image: str) -> None:
        self._pulls.pop((uid, image), None)

    def forget(self, uid: str) -> None:
        for key in [k for k in self._pulls if k[0] == uid]:
            del self._pulls[key]
