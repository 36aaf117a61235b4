"""The watch cache passes the same storage conformance suite as the etcd store.

`CacheView` offers the store's read interface over a `WatchCache`, the way the API server
reads: the present from memory (after proving the cache current), the past from etcd.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from reconcile.api import watchcache
from reconcile.core import errors
from reconcile.store import etcd
from tests.store.conformance import StorageConformance


def _kv(entry: watchcache.Entry) -> etcd.KeyValue:
    return etcd.KeyValue(entry.key, entry.value, entry.create_revision, entry.mod_revision, entry.version)


def _event(event: watchcache.CacheEvent) -> etcd.Event:
    prev = event.prev.value if event.prev is not None else None
    if event.type == watchcache.DELETED:
        return etcd.Event("DELETE", event.entry.key, event.entry.value, event.revision, event.entry.create_revision, prev)
    return etcd.Event("PUT", event.entry.key, event.entry.value, event.revision, event.entry.create_revision, prev)


class CacheView:
    def __init__(self, cache: watchcache.WatchCache, store: etcd.EtcdStore) -> None:
        self.cache = cache
        self.store = store

    async def get(self, key: str, *, revision: int | None = None) -> tuple[etcd.KeyValue | None, int]:
        if revision:
            return await self.store.get(key, revision=revision)
        await self.cache.ensure_current()
        entry = self.cache.get(key)
        return (_kv(entry) if entry is not None else None), self.cache.revision

    async def list(self, prefix: str, *, revision: int | None = None, limit: int = 0,
                   start_after: str | None = None) -> etcd.RangeResult:
        if revision or start_after is not None:
            return await self.store.list(prefix, revision=revision, limit=limit, start_after=start_after)
        await self.cache.ensure_current()
        entries, read_at = self.cache.list(prefix)
        page = entries[:limit] if limit else entries
        return etcd.RangeResult([_kv(e) for e in page], read_at, len(page) < len(entries), len(entries))

    async def current_revision(self) -> int:
        await self.cache.ensure_current()
        return self.cache.revision

    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[etcd.WatchBatch]:
        # As the API does: a watch from N starts once the cache has reached N.
        await self.cache.wait_for_revision(min(start_revision - 1, await self.store.current_revision()))
        try:
            watcher, backlog = self.cache.watch(prefix, start_revision - 1)
        except errors.Gone:
            raise errors.Compacted(start_revision, self.cache.history_start) from None
        try:
            for event in backlog:
                yield etcd.WatchBatch([_event(event)], event.revision)
            async for event in self.cache.events(watcher):
                yield etcd.WatchBatch([_event(event)], event.revision)
        finally:
            self.cache.unwatch(watcher)


class TestWatchCacheConformance(StorageConformance):
    @pytest.fixture
    async def storage(self, writer: etcd.EtcdStore) -> AsyncIterator[Any]:
        cache = watchcache.WatchCache(writer, self.RESOURCE)
        await cache.start()
        try:
            yield CacheView(cache, writer)
        finally:
            await cache.stop()

    async def compact_to(self, writer: etcd.EtcdStore, storage: Any, revision: int) -> None:
        await writer.compact(revision)
        storage.cache.compacted(revision)


class TestFedWatchCacheConformance(TestWatchCacheConformance):
    """The same suite with the cache kept current by the shared feed, as the API server runs it."""

    @pytest.fixture
    async def storage(self, writer: etcd.EtcdStore) -> AsyncIterator[Any]:
        feed = watchcache.SharedFeed(writer)
        await feed.start()
        cache = watchcache.WatchCache(writer, self.RESOURCE)
        await cache.start(feed=feed)
        try:
            yield CacheView(cache, writer)
        finally:
            await cache.stop()
            await feed.stop()
