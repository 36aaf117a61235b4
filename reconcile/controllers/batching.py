"""Slow-start batches: 1, 2, 4, ... calls at once, stopping at the first batch that fails.

A ReplicaSet whose pods are all rejected (quota, a terminating namespace) then costs one
failed request per sync instead of `replicas` of them (upstream slowStartBatch).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

MAX_IN_FLIGHT = 32  # a batch ceiling; the AsyncClient itself caps requests in flight (watches use their own pool)


async def slow_start(count: int, call: Callable[[], Awaitable[object]], *, initial: int = 1,
                     max_in_flight: int = MAX_IN_FLIGHT) -> tuple[int, BaseException | None]:
    """Run `call` `count` times in growing batches; returns (successes, first error or None)."""
    done = 0
    attempted = 0
    batch = min(count, initial)
    gate = asyncio.Semaphore(max_in_flight)

    async def gated() -> object:
        async with gate:
            return await call()

    while batch > 0:
        results = await asyncio.gather(*(gated() for _ in range(batch)), return_exceptions=True)
        attempted += batch
        failures = [r for r in results if isinstance(r, BaseException)]
        done += batch - len(failures)
        if failures:
            return done, failures[0]
        batch = min(2 * batch, count - attempted)
    return done, None
