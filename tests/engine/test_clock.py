"""FakeClock: virtual time wakes sleepers in deadline order; RealClock is monotonic and UTC."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from reconcile.engine import clock


async def test_fake_clock_wakes_sleepers_in_deadline_order() -> None:
    fake = clock.FakeClock(start=100.0)
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await fake.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 3), ("a", 1), ("b", 2), ("a2", 1))]
    await fake.run_until_idle()
    assert fake.sleepers == 4
    fake.advance(0.5)
    await fake.run_until_idle()
    assert woke == []
    fake.advance(1.5)
    await fake.run_until_idle()
    assert woke == ["a", "a2", "b"]
    assert fake.now() == 102.0
    fake.advance(10)
    await asyncio.gather(*tasks)
    assert woke == ["a", "a2", "b", "c"]
    assert fake.sleepers == 0


async def test_fake_clock_cancelled_sleeper_is_not_counted() -> None:
    fake = clock.FakeClock()
    task = asyncio.create_task(fake.sleep(5))
    await fake.run_until_idle()
    assert fake.sleepers == 1
    task.cancel()
    await fake.run_until_idle()
    assert fake.sleepers == 0
    fake.advance(10)  # waking a cancelled future must not fail


async def test_fake_clock_wall_follows_virtual_time() -> None:
    start = datetime(2026, 11, 26, 19, 56, 34, tzinfo=UTC)
    fake = clock.FakeClock(wall_start=start)
    fake.advance(90)
    assert (fake.wall() - start).total_seconds() == 90
    await fake.sleep(0)  # zero sleeps just yield


async def test_real_clock() -> None:
    real = clock.RealClock()
    before = real.now()
    await real.sleep(0)
    assert real.now() >= before
    assert real.wall().tzinfo is not None
