"""The scheduling queue on a fake clock: backoff 1 s doubling to 10 s, event-driven retries, no busy loop."""

from __future__ import annotations

import asyncio

from reconcile.engine import clock as clock_mod
from reconcile.scheduler import queue as queue_mod

KEY = ("default", "p")


async def next_key(q: queue_mod.SchedulingQueue, clock: clock_mod.FakeClock) -> tuple[str, str] | None:
    """The key get() hands out now (without time passing), or None."""
    await clock.run_until_idle()
    if len(q.active) == 0:
        return None
    key = await asyncio.wait_for(q.pop(), timeout=1)
    q.done(key)
    return key


def test_backoff_doubles_from_one_second_to_ten() -> None:
    q = queue_mod.SchedulingQueue(clock=clock_mod.FakeClock())
    delays = []
    for _ in range(6):
        q._failed(KEY)
        delays.append(q.backoff(KEY))
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


async def test_an_unschedulable_pod_waits_for_an_event_and_its_backoff() -> None:
    clock = clock_mod.FakeClock()
    q = queue_mod.SchedulingQueue(clock=clock)
    q.add(KEY)
    assert await next_key(q, clock) == KEY
    q.mark_unschedulable(KEY, {"NodeResourcesFit"})
    clock.advance(60)  # time alone does not bring it back (until the 5-minute safety net)
    assert await next_key(q, clock) is None
    assert q.move("InterPodAffinity") == 0  # an event that cannot help a resources failure
    assert q.move() == 1  # a node was added
    assert await next_key(q, clock) == KEY  # its 1 s backoff had long passed

    q.mark_unschedulable(KEY, {"NodeResourcesFit"})  # second failure: 2 s backoff
    q.move()
    clock.advance(1.5)
    assert await next_key(q, clock) is None
    clock.advance(0.5)
    assert await next_key(q, clock) == KEY


async def test_events_while_backing_off_do_not_multiply_attempts() -> None:
    clock = clock_mod.FakeClock()
    q = queue_mod.SchedulingQueue(clock=clock)
    q.add(KEY)
    await next_key(q, clock)
    for _ in range(4):
        q._failed(KEY)  # four earlier failures: 8 s backoff
    q.mark_unschedulable(KEY, {"NodeResourcesFit"})  # fifth: 10 s
    for _ in range(50):
        q.move()
        q.add(KEY)
    popped = 0
    for _ in range(10):
        clock.advance(1)
        popped += (await next_key(q, clock)) is not None
    assert popped == 1


async def test_the_safety_net_retries_after_five_minutes() -> None:
    clock = clock_mod.FakeClock()
    q = queue_mod.SchedulingQueue(clock=clock)
    q.add(KEY)
    await next_key(q, clock)
    q.mark_unschedulable(KEY, {"NodeAffinity"})
    clock.advance(299)
    assert await next_key(q, clock) is None
    clock.advance(1)
    assert await next_key(q, clock) == KEY


async def test_a_deleted_pod_is_forgotten() -> None:
    clock = clock_mod.FakeClock()
    q = queue_mod.SchedulingQueue(clock=clock)
    q.add(KEY)
    await next_key(q, clock)
    q.mark_unschedulable(KEY, {"NodeResourcesFit"})
    q.delete(KEY)
    assert q.move() == 0
    assert q.backoff_remaining(KEY) == 0
    q.shut_down()
