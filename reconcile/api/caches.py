"""The set of watch caches, one per served resource type, started and stopped with the registry,
all fed by one etcd watch (`watchcache.SharedFeed`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from reconcile.api import registry, watchcache
from reconcile.store import etcd, keys

log = logging.getLogger(__name__)


class CacheSet:
    """Maps (group, plural) to its WatchCache; every version of a resource shares one cache."""

    def __init__(self, store: etcd.EtcdStore) -> None:
        self.store = store
        self._caches: dict[tuple[str, str], watchcache.WatchCache] = {}
        self._starting: dict[tuple[str, str], asyncio.Task[watchcache.WatchCache]] = {}
        self.listeners: dict[tuple[str, str], Callable[[watchcache.CacheEvent], None]] = {}
        self.feed = watchcache.SharedFeed(store)  # one etcd watch for every cache

    def add_listener(self, ident: tuple[str, str], listener: Callable[[watchcache.CacheEvent], None]) -> None:
        """Also call `listener` with every event of the (group, plural) cache, after any listener set
        before (several parts of the server may follow one resource). Only before the cache starts."""
        previous = self.listeners.get(ident)
        if previous is None:
            self.listeners[ident] = listener
            return

        def both(event: watchcache.CacheEvent) -> None:
            previous(event)
            listener(event)

        self.listeners[ident] = both

    def peek(self, resource: registry.Resource) -> watchcache.WatchCache | None:
        """The cache for `resource` if one already runs (never starts one)."""
        return self._caches.get((resource.group, resource.plural))

    async def ensure(self, resource: registry.Resource) -> watchcache.WatchCache:
        """The cache for `resource`, started (list + watch) on first use."""
        ident = (resource.group, resource.plural)
        cache = self._caches.get(ident)
        if cache is not None:
            return cache
        task = self._starting.get(ident)
        if task is None:
            task = asyncio.create_task(self._start(ident))
            self._starting[ident] = task
        return await asyncio.shield(task)

    async def _start(self, ident: tuple[str, str]) -> watchcache.WatchCache:
        try:
            await self.feed.start()
            cache = watchcache.WatchCache(
                self.store, keys.resource_prefix(*ident), on_event=self.listeners.get(ident)
            )
            await cache.start(feed=self.feed)
            self._caches[ident] = cache
            return cache
        finally:
            self._starting.pop(ident, None)

    def get(self, group: str, plural: str) -> watchcache.WatchCache | None:
        return self._caches.get((group, plural))

    async def drop(self, group: str, plural: str) -> None:
        cache = self._caches.pop((group, plural), None)
        if cache is not None:
            await cache.stop()

    def all(self) -> list[watchcache.WatchCache]:
        return list(self._caches.values())

    def compacted(self, revision: int) -> None:
        for cache in self._caches.values():
            cache.compacted(revision)

    async def stop(self) -> None:
        await self.feed.stop()
        for cache in list(self._caches.values()):
            await cache.stop()
        self._caches.clear()
