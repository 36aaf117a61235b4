"""The work queue: client-go semantics on virtual time, a hypothesis state machine, and a hammer test."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Coroutine
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from reconcile.engine import clock, workqueue
from tests import support


def queue(*, limiter: workqueue.RateLimiter | None = None) -> tuple[workqueue.WorkQueue, clock.FakeClock]:
    fake = clock.FakeClock()
    return workqueue.WorkQueue(clock=fake, limiter=limiter, name="test"), fake


# --- unit tests on a fake clock ---------------------------------------------------------------


async def test_add_deduplicates_queued_keys() -> None:
    q, _ = queue()
    q.add("a")
    q.add("b")
    q.add("a")
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["a", "b"]


async def test_key_added_in_flight_runs_again_after_done_and_never_concurrently() -> None:
    q, fake = queue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    q.add("a")
    assert len(q) == 0 and q.in_flight == 1  # dirty, not queued: nobody else may take it
    second = asyncio.create_task(q.get())
    await fake.run_until_idle()
    assert not second.done()
    q.done("a")
    assert await asyncio.wait_for(second, 1) == "a"  # exactly one more run
    q.done("a")
    assert len(q) == 0 and q.in_flight == 0


async def test_add_after_orders_by_deadline_on_virtual_time() -> None:
    q, fake = queue()
    q.add_after("x", 3)
    q.add_after("y", 1)
    q.add_after("z", 2)
    q.add_after("now", 0)
    assert len(q) == 1 and q.waiting == 3
    assert await q.get() == "now"
    fake.advance(1)
    await fake.run_until_idle()
    assert len(q) == 1
    fake.advance(5)
    await fake.run_until_idle()
    assert [await q.get() for _ in range(3)] == ["y", "z", "x"]


async def test_add_after_earliest_request_wins() -> None:
    q, fake = queue()
    q.add_after("a", 5)
    q.add_after("a", 1)  # earlier: moves it up
    q.add_after("a", 10)  # later: ignored
    assert q.waiting == 1
    fake.advance(1)
    await fake.run_until_idle()
    assert len(q) == 1 and q.waiting == 0
    fake.advance(10)
    await fake.run_until_idle()
    assert len(q) == 1  # no second copy from the ignored request


async def test_get_blocks_until_a_delayed_key_is_due() -> None:
    q, fake = queue()
    getter = asyncio.create_task(q.get())
    q.add_after("late", 2)
    await fake.run_until_idle()
    assert not getter.done()
    fake.advance(2)
    assert await asyncio.wait_for(getter, 1) == "late"


async def test_item_exponential_backoff_doubles_caps_and_forgets() -> None:
    limiter = workqueue.ItemExponentialLimiter()
    delays = [limiter.when("k") for _ in range(20)]
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert all(b == min(a * 2, 1000.0) for a, b in itertools.pairwise(delays))
    assert max(delays) == 1000.0 and delays[-1] == 1000.0
    assert limiter.retries("k") == 20
    for _ in range(200):
        assert limiter.when("k") == 1000.0  # no overflow however long it fails
    assert limiter.when("other") == 0.005  # per key
    limiter.forget("k")
    assert limiter.retries("k") == 0
    assert limiter.when("k") == 0.005


async def test_bucket_limiter_burst_then_qps() -> None:
    fake = clock.FakeClock()
    bucket = workqueue.BucketLimiter(qps=10, burst=100, clock=fake)
    assert all(bucket.when(i) == 0 for i in range(100))
    assert bucket.when("x") == pytest.approx(0.1)
    assert bucket.when("y") == pytest.approx(0.2)
    fake.advance(1.0)  # 10 tokens back, 2 of them owed
    assert [round(bucket.when(i), 6) for i in range(9)] == [0] * 8 + [0.1]


async def test_default_limiter_is_the_max_of_both() -> None:
    fake = clock.FakeClock()
    limiter = workqueue.default_limiter(fake)
    assert limiter.when("a") == 0.005
    assert limiter.when("a") == 0.01
    for i in range(100):
        limiter.when(i)
    assert limiter.when("b") > 0.005  # bucket exhausted: its delay dominates a first failure
    assert limiter.retries("a") == 2
    limiter.forget("a")
    assert limiter.retries("a") == 0


async def test_add_rate_limited_waits_for_the_backoff_and_forget_resets() -> None:
    q, fake = queue(limiter=workqueue.ItemExponentialLimiter())
    q.add_rate_limited("a")
    assert len(q) == 0 and q.retries("a") == 1
    fake.advance(0.005)
    await fake.run_until_idle()
    assert await q.get() == "a"
    q.done("a")
    q.add_rate_limited("a")
    fake.advance(0.009)
    assert len(q) == 0  # second failure: 10 ms
    fake.advance(0.001)
    assert len(q) == 1
    q.forget("a")
    assert q.retries("a") == 0


async def test_shutdown_drains_then_raises_and_ignores_adds() -> None:
    q, fake = queue()
    q.add("a")
    q.add_after("later", 1)
    q.shut_down()
    q.add("b")
    fake.advance(5)
    await fake.run_until_idle()
    assert await q.get() == "a"
    with pytest.raises(workqueue.ShutDown):
        await q.get()


async def test_shutdown_wakes_parked_getters() -> None:
    q, fake = queue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await fake.run_until_idle()
    q.shut_down()
    for getter in getters:
        with pytest.raises(workqueue.ShutDown):
            await asyncio.wait_for(getter, 1)


async def test_a_cancelled_woken_getter_passes_the_key_on() -> None:
    q, fake = queue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await fake.run_until_idle()
    q.add("a")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 1) == "a"
    with pytest.raises(asyncio.CancelledError):
        await first


# --- hypothesis state machine: the queue against a model --------------------------------------

KEYS = st.sampled_from(["a", "b", "c", "d"])
CAP = 0.05


class QueueMachine(RuleBasedStateMachine):
    """Every operation is applied to the queue and to a plain model; they must agree."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = clock.FakeClock()
        self.q = workqueue.WorkQueue(
            clock=self.clock, limiter=workqueue.ItemExponentialLimiter(base=0.005, cap=CAP), name="sm"
        )
        self.now = 0.0
        self.queue: list[str] = []
        self.dirty: set[str] = set()
        self.processing: set[str] = set()
        self.waiting: dict[str, tuple[float, int]] = {}
        self.failures: dict[str, int] = {}
        self.seq = itertools.count()
        self.shut = False

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def in_loop(self, fn: Any) -> None:
        async def call() -> None:
            fn()

        self.run(call())

    def model_add(self, key: str) -> None:
        if self.shut or key in self.dirty:
            return
        self.dirty.add(key)
        if key not in self.processing:
            self.queue.append(key)

    def model_add_after(self, key: str, delay: float) -> None:
        if self.shut:
            return
        if delay <= 0:
            self.model_add(key)
            return
        ready = self.now + delay
        if key in self.waiting and self.waiting[key][0] <= ready:
            return
        self.waiting[key] = (ready, next(self.seq))

    @rule(key=KEYS)
    def add(self, key: str) -> None:
        self.q.add(key)
        self.model_add(key)

    @rule(key=KEYS, delay=st.sampled_from([0, 0.001, 0.5, 1.0, 2.5]))
    def add_after(self, key: str, delay: float) -> None:
        self.in_loop(lambda: self.q.add_after(key, delay))
        self.model_add_after(key, delay)

    @rule(key=KEYS)
    def add_rate_limited(self, key: str) -> None:
        n = self.failures.get(key, 0)
        self.failures[key] = n + 1
        self.in_loop(lambda: self.q.add_rate_limited(key))
        self.model_add_after(key, min(0.005 * 2**n, CAP))  # doubling, capped
        assert self.q.retries(key) == n + 1

    @rule(key=KEYS)
    def forget(self, key: str) -> None:
        self.q.forget(key)
        self.failures.pop(key, None)
        assert self.q.retries(key) == 0

    @precondition(lambda self: self.queue)
    @rule()
    def get(self) -> None:
        key = self.run(asyncio.wait_for(self.q.get(), 1))
        assert key == self.queue.pop(0)  # FIFO
        assert key not in self.processing  # never two workers on one key
        self.processing.add(key)
        self.dirty.discard(key)

    @precondition(lambda self: self.shut and not self.queue)
    @rule()
    def get_after_shutdown(self) -> None:
        try:
            self.run(asyncio.wait_for(self.q.get(), 1))
        except workqueue.ShutDown:
            return
        raise AssertionError("get on a drained, shut down queue must raise ShutDown")

    @precondition(lambda self: self.processing)
    @rule(data=st.data())
    def done(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.processing)))
        self.q.done(key)
        self.processing.remove(key)
        if key in self.dirty:  # re-added while in flight: runs again
            self.queue.append(key)

    @rule(dt=st.sampled_from([0.001, 0.004, 0.1, 0.5, 1.0, 3.0]))
    def advance(self, dt: float) -> None:
        self.clock.advance(dt)
        self.run(self.clock.run_until_idle(rounds=5))
        self.now += dt
        due = sorted((ready, seq, key) for key, (ready, seq) in self.waiting.items() if ready <= self.now)
        for _, _, key in due:  # earliest deadline first
            del self.waiting[key]
            self.model_add(key)

    @rule()
    def shut_down(self) -> None:
        self.q.shut_down()
        self.shut = True
        self.waiting.clear()

    @invariant()
    def agrees_with_model(self) -> None:
        assert len(self.q) == len(self.queue)
        assert list(self.q._queue) == self.queue
        assert self.q._processing == self.processing
        assert self.q._dirty == self.dirty
        assert self.q.waiting == len(self.waiting)
        assert len(set(self.queue)) == len(self.queue)  # dedup
        assert not set(self.queue) & self.processing
        assert set(self.queue) <= self.dirty

    def teardown(self) -> None:
        self.q.shut_down()
        self.run(self.clock.run_until_idle(rounds=3))
        self.loop.close()


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# --- hammer -------------------------------------------------------------------------------------


async def test_hammer_many_workers_random_adds() -> None:
    """8 workers, 3000 random adds (some failing with backoff): no key ever runs twice at once, and
    every key runs at least once after its last add."""
    rng = random.Random(1234)
    q = workqueue.WorkQueue(limiter=workqueue.ItemExponentialLimiter(base=0.0001, cap=0.002), name="hammer")
    keys = [f"k{i}" for i in range(25)]
    tick = itertools.count()
    last_add: dict[str, int] = {}
    last_start: dict[str, int] = {}
    active: set[str] = set()
    overlaps: list[str] = []
    runs = 0

    async def worker() -> None:
        nonlocal runs
        while True:
            try:
                key = await q.get()
            except workqueue.ShutDown:
                return
            if key in active:
                overlaps.append(key)
            active.add(key)
            last_start[key] = next(tick)
            runs += 1
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)  # yield: let other workers interleave (the workload, not a synchronization)
            active.discard(key)
            if rng.random() < 0.05:
                q.add_rate_limited(key)  # a failure: retried with backoff
            else:
                q.forget(key)
            q.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(8)]
    for _ in range(3000):
        key = rng.choice(keys)
        last_add[key] = next(tick)
        q.add(key)
        if rng.random() < 0.5:
            await asyncio.sleep(0)  # yield: let the workers interleave with the adds (not a synchronization)
    await support.eventually(lambda: not (q.depth or q.in_flight or q.waiting), timeout=20, interval=0.001,
                             what="the queue drains")
    q.shut_down()
    await asyncio.wait_for(asyncio.gather(*workers), 5)
    assert overlaps == []
    assert runs > len(keys)
    for key, added in last_add.items():
        assert last_start[key] > added, key
