"""Consistent reads from the watch cache never wait for a quiet moment (issue 8).

A consistent read must reflect everything written before it began, and only that: a writer that
never pauses (on this prefix, or on another one) must not keep a reader waiting until it gives up.
The old check chased etcd's moving head revision and fell back to etcd after 3 s under any steady
writer; these tests give the check a short deadline and a writer that never stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from reconcile.api import watchcache
from reconcile.store import etcd

READS = 40
WRITERS = 4  # concurrent writers, so a write is always in flight
DEADLINE = 5.0  # generous: the proof is judged by how many etcd reads it takes, not by time
MAX_PROOF_READS = 3  # range reads one consistent read may need: changes up to the head, then none


class CountingStore(etcd.EtcdStore):
    """The real store, counting the keys-only range reads a consistency proof makes."""

    proofs = 0

    async def prefix_changes(self, prefix: str, **options: int | None) -> tuple[int, int, int, int]:
        self.proofs += 1
        return await super().prefix_changes(prefix, **options)  # type: ignore[arg-type]


@pytest.fixture
async def store(etcd_endpoint: str) -> AsyncIterator[CountingStore]:
    async with CountingStore([etcd_endpoint], prefix=f"/consistent-{uuid.uuid4().hex[:8]}") as opened:
        yield opened


async def _write_forever(store: CountingStore, prefix: str, stop: asyncio.Event, acknowledged: list[int]) -> None:
    """Overwrite one key under `prefix` back to back, recording each acknowledged revision."""
    n = 0
    while not stop.is_set():
        n += 1
        acknowledged.append(await store.update(f"{prefix}busy", str(n).encode(), expected_revision=None))


@pytest.mark.parametrize("writes_to", ["same prefix", "another prefix"])
async def test_consistent_reads_complete_under_steady_writers(store: CountingStore, writes_to: str) -> None:
    prefix, other = "core/configmaps/", "core/secrets/"
    await store.create(f"{prefix}busy", b"0")
    await store.create(f"{other}busy", b"0")
    cache = watchcache.WatchCache(store, prefix)
    await cache.start()
    stop = asyncio.Event()
    acknowledged: list[int] = []
    target = prefix if writes_to == "same prefix" else other
    writers = [asyncio.create_task(_write_forever(store, target, stop, acknowledged)) for _ in range(WRITERS)]
    try:
        for _ in range(READS):
            before = await store.current_revision()  # everything acknowledged so far is at or below this
            proofs = store.proofs
            await cache.ensure_current(timeout=DEADLINE)  # raises CacheBehind if it cannot prove it in time
            assert store.proofs - proofs <= MAX_PROOF_READS, "the proof chased writes made after the read began"
            assert cache.revision >= before
            if writes_to == "same prefix":
                entry = cache.get(f"{prefix}busy")
                assert entry is not None and entry.mod_revision >= max((r for r in acknowledged if r <= before), default=0)
        assert len(acknowledged) > READS  # the writer really kept writing throughout
    finally:
        stop.set()
        for writer in writers:
            with contextlib.suppress(Exception):
                await writer
        await cache.stop()


async def test_a_read_sees_the_writes_acknowledged_before_it(store: CountingStore) -> None:
    """The proof is pinned to the head read when the read begins: a write acknowledged before the read
    is in its answer even when nothing else moves the watch afterwards."""
    prefix = "core/configmaps/"
    cache = watchcache.WatchCache(store, prefix)
    await cache.start()
    try:
        for n in range(20):
            revision = await store.create(f"{prefix}k{n}", b"v")
            await cache.ensure_current(timeout=DEADLINE)
            entry = cache.get(f"{prefix}k{n}")
            assert entry is not None and entry.mod_revision == revision
    finally:
        await cache.stop()


async def test_with_the_shared_feed_writes_elsewhere_need_no_range_proof(store: CountingStore) -> None:
    """The server's caches share one watch over the cluster's keys, so a write to Secrets moves the
    ConfigMap cache too: consistent ConfigMap reads under a steady Secret writer read no range."""
    feed = watchcache.SharedFeed(store)
    await feed.start()
    # a grace long enough that only a feed that never moved the cache could need a range proof
    configmaps = watchcache.WatchCache(store, "core/configmaps/", feed_grace=DEADLINE)
    secrets = watchcache.WatchCache(store, "core/secrets/")
    await configmaps.start(feed=feed)
    await secrets.start(feed=feed)
    await store.create("core/secrets/busy", b"0")
    stop = asyncio.Event()
    acknowledged: list[int] = []
    writers = [asyncio.create_task(_write_forever(store, "core/secrets/", stop, acknowledged))
               for _ in range(WRITERS)]
    try:
        proofs = store.proofs
        for _ in range(READS):
            before = await store.current_revision()
            await configmaps.ensure_current(timeout=DEADLINE)
            assert configmaps.revision >= before
        assert store.proofs == proofs
        assert len(acknowledged) > READS
    finally:
        stop.set()
        for writer in writers:
            with contextlib.suppress(Exception):
                await writer
        await configmaps.stop()
        await secrets.stop()
        await feed.stop()
