"""Bounded bursts: at most `BURST_REPLICAS` creates per sync, run in slow-start batches 1, 2, 4, ...

A ReplicaSet asking for a huge number of pods gets at most `BURST_REPLICAS` of them per sync
(upstream burstReplicas), and its next sync waits until the informer has seen them all
(expectations), so a controller never floods the API server however large `replicas` is.
Within a sync the creates run in batches that double while they succeed and stop at the first
batch with a failure: a ReplicaSet whose pods are all rejected (quota, a terminating namespace,
an invalid template) then costs one failed request per sync instead of `replicas` of them
(upstream slowStartBatch). The plan (`batch_sizes`) is pure; `slow_start` runs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

BURST_REPLICAS = 500  # creates (or deletes) of one ReplicaSet sync at most (upstream burstReplicas)
SLOW_START_INITIAL = 1  # the first batch (upstream SlowStartInitialBatchSize)
MAX_IN_FLIGHT = 32  # a batch ceiling; the AsyncClient itself caps requests in flight (watches use their own pool)


def per_sync(missing: int, *, burst: int = BURST_REPLICAS) -> int:
    """How many of `missing` objects one sync may create (or delete): never more than `burst`."""
    return max(0, min(missing, burst))


def batch_sizes(count: int, *, initial: int = SLOW_START_INITIAL) -> Iterator[int]:
    """The slow-start batches for `count` calls: `initial`, then doubling, the last one what is left.

    They sum to `count`; each is at most twice the one before; there are about log2(count) of them.
    """
    batch = min(count, max(1, initial))
    left = count
    while left > 0:
        yield batch
        left -= batch
        batch = min(2 * batch, left)


async def slow_start(count: int, call: Callable[[], Awaitable[object]], *, initial: int = SLOW_START_INITIAL,
                     max_in_flight: int = MAX_IN_FLIGHT) -> tuple[int, BaseException | None]:
    """Run `call` `count` times in `batch_sizes`, one batch at a time; (successes, first error or None).

    A batch runs to its end even when one of its calls fails (they are already in flight); no
    later batch starts.
    """
    done = 0
    gate = asyncio.Semaphore(max_in_flight)

    async def gated() -> object:
        async with gate:
            return await call()

    for batch in batch_sizes(count, initial=initial):
        results = await asyncio.gather(*(gated() for _ in range(batch)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        done += batch - len(failures)
        if failures:
            return done, failures[0]
    return done, None
