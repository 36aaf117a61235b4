"""The storage conformance suite: read semantics every storage view must share.

kube-apiserver runs one storage test suite against etcd and against its watch cache; so do we.
`StorageConformance` is not collected by itself (no `Test` prefix). A subclass provides:

- `storage` (async fixture): the view under test, offering the `EtcdStore` read interface on keys
  under `self.RESOURCE` (relative to the writer's prefix):
  `get(key, *, revision=None) -> (KeyValue | None, revision)`,
  `list(prefix, *, revision=None, limit=0, start_after=None) -> RangeResult`,
  `watch(prefix, *, start_revision) -> AsyncIterator[WatchBatch]`, `current_revision() -> int`.
  Reads without a revision must be consistent: they see every write the `writer` acknowledged.
- optionally `compact_to(writer, storage, revision)`: make history before `revision` unavailable
  in both etcd and the view (the default compacts etcd only).

The base class provides `writer`: an open `EtcdStore` on the session etcd under the test's
`key_prefix`; the view must read what this writer writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from reconcile.core import errors
from reconcile.store import etcd
from tests.store import helpers


class StorageConformance:
    RESOURCE = "core/things/"  # every key of the suite lives under this prefix (one "resource")

    @pytest.fixture
    async def writer(self, etcd_endpoint: str, key_prefix: str) -> AsyncIterator[etcd.EtcdStore]:
        store = etcd.EtcdStore([etcd_endpoint], prefix=key_prefix)
        await store.open()
        try:
            yield store
        finally:
            await store.close()

    @pytest.fixture
    async def storage(self, writer: etcd.EtcdStore) -> Any:
        raise NotImplementedError("a conformance subclass provides the `storage` fixture")

    async def compact_to(self, writer: etcd.EtcdStore, storage: Any, revision: int) -> None:
        """Forget history before `revision` (a subclass with its own history overrides this)."""
        await writer.compact(revision)

    def key(self, name: str, namespace: str = "ns1") -> str:
        return f"{self.RESOURCE}{namespace}/{name}"

    # --- get ---

    async def test_get_sees_acknowledged_write(self, writer: etcd.EtcdStore, storage: Any) -> None:
        revision = await writer.create(self.key("a"), b"one")
        kv, read_at = await storage.get(self.key("a"))
        assert kv is not None
        assert (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version) == (
            self.key("a"), b"one", revision, revision, 1)
        assert read_at >= revision

    async def test_get_missing(self, writer: etcd.EtcdStore, storage: Any) -> None:
        revision = await writer.create(self.key("other"), b"x")
        kv, read_at = await storage.get(self.key("missing"))
        assert kv is None
        assert read_at >= revision

    async def test_get_after_update_and_delete(self, writer: etcd.EtcdStore, storage: Any) -> None:
        first = await writer.create(self.key("a"), b"one")
        second = await writer.update(self.key("a"), b"two", expected_revision=first)
        kv, _ = await storage.get(self.key("a"))
        assert kv is not None and (kv.value, kv.mod_revision, kv.create_revision, kv.version) == (
            b"two", second, first, 2)
        deleted_at, _ = await writer.delete(self.key("a"), expected_revision=second)
        kv, read_at = await storage.get(self.key("a"))
        assert kv is None and read_at >= deleted_at

    async def test_get_at_revision(self, writer: etcd.EtcdStore, storage: Any) -> None:
        first = await writer.create(self.key("a"), b"one")
        await writer.update(self.key("a"), b"two", expected_revision=first)
        kv, read_at = await storage.get(self.key("a"), revision=first)
        assert kv is not None and kv.value == b"one" and read_at == first

    # --- list ---

    async def test_list_prefix_in_key_order(self, writer: etcd.EtcdStore, storage: Any) -> None:
        for name in ("c", "a", "b"):
            await writer.create(self.key(name), name.encode())
        await writer.create(self.key("z", namespace="ns10"), b"other namespace")
        last = await writer.create(self.key("y", namespace="ns0"), b"other namespace")
        result = await storage.list(f"{self.RESOURCE}ns1/")
        assert [kv.key for kv in result.items] == [self.key(n) for n in ("a", "b", "c")]
        assert [kv.value for kv in result.items] == [b"a", b"b", b"c"]
        assert result.revision >= last and not result.more and result.count == 3
        everything = await storage.list(self.RESOURCE)
        assert len(everything.items) == 5

    async def test_list_at_revision_is_a_snapshot(self, writer: etcd.EtcdStore, storage: Any) -> None:
        revs = {name: await writer.create(self.key(name), b"v1") for name in ("a", "b", "c")}
        snapshot = revs["c"]
        await writer.update(self.key("b"), b"v2", expected_revision=revs["b"])
        await writer.delete(self.key("c"), expected_revision=None)
        await writer.create(self.key("d"), b"v1")
        old = await storage.list(self.RESOURCE, revision=snapshot)
        assert old.revision == snapshot
        assert [(kv.key, kv.value) for kv in old.items] == [(self.key(n), b"v1") for n in ("a", "b", "c")]
        new = await storage.list(self.RESOURCE)
        assert [(kv.key, kv.value) for kv in new.items] == [
            (self.key("a"), b"v1"), (self.key("b"), b"v2"), (self.key("d"), b"v1")]
        assert new.revision > snapshot

    async def test_list_paging_at_one_revision(self, writer: etcd.EtcdStore, storage: Any) -> None:
        names = [f"obj-{i:02d}" for i in range(7)]
        for name in names:
            await writer.create(self.key(name), name.encode())
        first = await storage.list(self.RESOURCE, limit=3)
        assert [kv.key for kv in first.items] == [self.key(n) for n in names[:3]]
        assert first.more and first.count == 7
        # writes between pages must not show up in later pages read at the first page's revision
        await writer.delete(self.key(names[4]), expected_revision=None)
        await writer.create(self.key("obj-99"), b"late")
        seen = [kv.key for kv in first.items]
        page = first
        while page.more:
            page = await storage.list(self.RESOURCE, revision=first.revision, limit=3, start_after=seen[-1])
            assert page.revision == first.revision
            seen += [kv.key for kv in page.items]
        assert seen == [self.key(n) for n in names]

    async def test_list_empty(self, writer: etcd.EtcdStore, storage: Any) -> None:
        await writer.create(self.key("a", namespace="elsewhere"), b"x")
        result = await storage.list(f"{self.RESOURCE}ns1/")
        assert result.items == [] and not result.more and result.count == 0

    # --- revisions ---

    async def test_current_revision_follows_writes(self, writer: etcd.EtcdStore, storage: Any) -> None:
        revision = await writer.create(self.key("a"), b"x")
        assert await storage.current_revision() >= revision
        later = await writer.update(self.key("a"), b"y", expected_revision=revision)
        assert later > revision
        assert await storage.current_revision() >= later

    # --- watch ---

    async def test_watch_from_revision_sees_exactly_what_follows(
        self, writer: etcd.EtcdStore, storage: Any
    ) -> None:
        revs = [await writer.create(self.key(f"k{i}"), f"v{i}".encode()) for i in range(5)]
        watcher = helpers.Watcher(storage.watch(self.RESOURCE, start_revision=revs[2]))
        try:
            later = await writer.update(self.key("k0"), b"v0b", expected_revision=revs[0])
            deleted_at, _ = await writer.delete(self.key("k1"), expected_revision=None)
            await helpers.eventually(lambda: len(watcher.events) >= 5, what="5 events")
            events = watcher.events
            assert [e.mod_revision for e in events] == [revs[2], revs[3], revs[4], later, deleted_at]
            assert [e.type for e in events] == ["PUT", "PUT", "PUT", "PUT", "DELETE"]
            assert [e.key for e in events] == [self.key(k) for k in ("k2", "k3", "k4", "k0", "k1")]
            assert events[0].value == b"v2" and events[0].prev_value is None
            assert events[0].create_revision == revs[2]
            assert events[3].value == b"v0b" and events[3].prev_value == b"v0"
            assert events[3].create_revision == revs[0]
            assert events[4].value == b"v1" and events[4].prev_value == b"v1"
            assert events[4].create_revision == revs[1]
            for batch in watcher.batches:
                if batch.events:
                    assert batch.revision >= batch.events[-1].mod_revision
            assert watcher.error is None
        finally:
            await watcher.stop()

    async def test_watch_only_its_prefix(self, writer: etcd.EtcdStore, storage: Any) -> None:
        start = await writer.create(self.key("before"), b"x")
        watcher = helpers.Watcher(storage.watch(f"{self.RESOURCE}ns1/", start_revision=start + 1))
        try:
            await writer.create(self.key("a", namespace="ns10"), b"not mine")
            await writer.create(self.key("a", namespace="ns0"), b"not mine")
            mine = await writer.create(self.key("a"), b"mine")
            await helpers.eventually(lambda: watcher.events, what="an event")
            assert [(e.key, e.mod_revision) for e in watcher.events] == [(self.key("a"), mine)]
        finally:
            await watcher.stop()

    async def test_watch_in_revision_order_under_concurrent_writes(
        self, writer: etcd.EtcdStore, storage: Any
    ) -> None:
        start = await writer.current_revision() + 1
        watcher = helpers.Watcher(storage.watch(self.RESOURCE, start_revision=start))
        try:
            async def write(worker: int) -> list[int]:
                return [await writer.create(self.key(f"w{worker}-{i}"), b"x") for i in range(20)]

            written = sorted(r for revs in await asyncio.gather(*(write(w) for w in range(5))) for r in revs)
            await helpers.eventually(lambda: len(watcher.events) >= len(written), what="all events")
            assert [e.mod_revision for e in watcher.events] == written
        finally:
            await watcher.stop()

    # --- compaction ---

    async def test_compacted_range_is_an_error(self, writer: etcd.EtcdStore, storage: Any) -> None:
        old = await writer.create(self.key("a"), b"1")
        newer = await writer.update(self.key("a"), b"2", expected_revision=old)
        await self.compact_to(writer, storage, newer)
        with pytest.raises(errors.Compacted) as caught:
            await storage.list(self.RESOURCE, revision=old)
        assert caught.value.requested == old and caught.value.compact_revision >= newer
        with pytest.raises(errors.Compacted):
            await storage.get(self.key("a"), revision=old)
        result = await storage.list(self.RESOURCE, revision=newer)  # the compaction point stays readable
        assert [kv.value for kv in result.items] == [b"2"]

    async def test_compacted_watch_is_an_error(self, writer: etcd.EtcdStore, storage: Any) -> None:
        old = await writer.create(self.key("a"), b"1")
        newer = await writer.update(self.key("a"), b"2", expected_revision=old)
        await writer.update(self.key("a"), b"3", expected_revision=newer)
        await self.compact_to(writer, storage, newer)
        with pytest.raises(errors.Compacted) as caught:
            async with asyncio.timeout(10):
                async for _batch in storage.watch(self.RESOURCE, start_revision=old):
                    pass
        assert caught.value.requested == old and caught.value.compact_revision >= newer
