"""The shared head-revision read: every caller gets a revision read by a request sent after it
arrived (linearizable), and callers waiting at the same moment share one request."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.store import headread
from tests import support


class FakeEtcd:
    """A head read that answers only when told: `answer()` completes the oldest read in flight
    with the number of reads sent so far (so a value names the read that produced it)."""

    def __init__(self) -> None:
        self.sent = 0
        self.in_flight: list[asyncio.Future[int]] = []
        self.fail_next = False

    async def read(self) -> int:
        self.sent += 1
        number = self.sent
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.in_flight.append(future)
        await future
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("etcd went away")
        return number

    def answer(self) -> None:
        self.in_flight.pop(0).set_result(0)


async def _until(condition, what: str) -> None:
    """Wait (a turn of the loop at a time: everything here is in-process) until `condition` holds."""
    await support.eventually(condition, timeout=5, interval=0, what=what)


async def test_callers_at_one_moment_share_one_read() -> None:
    etcd = FakeEtcd()
    shared = headread.SharedRead(etcd.read)
    callers = [asyncio.create_task(shared()) for _ in range(50)]
    await _until(lambda: etcd.in_flight, "the read is sent")
    etcd.answer()
    assert await asyncio.gather(*callers) == [1] * 50
    assert etcd.sent == 1 == shared.sent


async def test_a_caller_arriving_while_a_read_is_in_flight_waits_for_a_later_read() -> None:
    etcd = FakeEtcd()
    shared = headread.SharedRead(etcd.read)
    first = asyncio.create_task(shared())
    await _until(lambda: etcd.in_flight, "read 1 is sent")
    arrived = 0

    async def late_caller() -> int:
        nonlocal arrived
        arrived += 1  # and asks in the same step: no turn of the loop in between
        return await shared()

    late = [asyncio.create_task(late_caller()) for _ in range(5)]
    await _until(lambda: arrived == 5, "the late callers arrived")
    assert len(etcd.in_flight) == 1  # one read at a time
    etcd.answer()
    assert await first == 1
    await _until(lambda: etcd.in_flight, "read 2 is sent")
    assert not any(t.done() for t in late)  # read 1 began before they arrived: not theirs
    etcd.answer()
    assert await asyncio.gather(*late) == [2] * 5


async def test_an_error_reaches_that_reads_callers_and_the_next_read_goes_on() -> None:
    etcd = FakeEtcd()
    shared = headread.SharedRead(etcd.read)
    failing = [asyncio.create_task(shared()) for _ in range(3)]
    await _until(lambda: etcd.in_flight, "read 1 is sent")
    later = asyncio.create_task(shared())
    etcd.fail_next = True
    etcd.answer()
    for task in failing:
        with pytest.raises(ConnectionError):
            await task
    await _until(lambda: etcd.in_flight, "read 2 is sent")
    etcd.answer()
    assert await later == 2


async def test_a_caller_giving_up_does_not_cancel_the_others() -> None:
    etcd = FakeEtcd()
    shared = headread.SharedRead(etcd.read)
    impatient, patient = asyncio.create_task(shared()), asyncio.create_task(shared())
    await _until(lambda: etcd.in_flight, "the read is sent")
    impatient.cancel()
    await _until(impatient.done, "the impatient caller gave up")
    etcd.answer()
    assert await patient == 1
    assert impatient.cancelled()


@given(st.lists(st.sampled_from(["arrive", "answer", "run"]), max_size=60))
@settings(max_examples=200, deadline=None)
def test_every_answer_comes_from_a_read_sent_after_its_caller_arrived(steps: list[str]) -> None:
    async def scenario() -> None:
        etcd = FakeEtcd()
        shared = headread.SharedRead(etcd.read)
        callers: list[tuple[int, asyncio.Task[int]]] = []  # (reads sent when the caller arrived, its call)
        for step in steps:
            if step == "arrive":
                callers.append((etcd.sent, asyncio.create_task(shared())))
            elif step == "answer" and etcd.in_flight:
                etcd.answer()
            for _ in range(3):
                await asyncio.sleep(0)  # the scenario's turns of the loop between steps: not a synchronization
            assert len(etcd.in_flight) <= 1

        def all_answered() -> bool:
            if etcd.in_flight:
                etcd.answer()  # etcd answers each read in turn
            return all(task.done() for _, task in callers)

        await _until(all_answered, "every caller has its answer")
        for sent_at_arrival, task in callers:
            assert task.result() > sent_at_arrival  # linearizable: a read sent after the caller arrived
        assert etcd.sent <= len(callers)

    asyncio.run(scenario())
