"""EtcdStore against a real etcd: conformance, compare-and-swap, watch resilience, failover."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from reconcile.core import errors
from reconcile.etcdserver import embedded
from reconcile.store import etcd
from tests import support
from tests.store import conformance, helpers


@pytest.fixture
async def store(etcd_endpoint: str, key_prefix: str) -> AsyncIterator[etcd.EtcdStore]:
    async with etcd.EtcdStore([etcd_endpoint], prefix=key_prefix) as opened:
        yield opened


class TestEtcdConformance(conformance.StorageConformance):
    """The etcd store itself, read through a second client on the same prefix."""

    @pytest.fixture
    async def storage(self, etcd_endpoint: str, key_prefix: str) -> AsyncIterator[etcd.EtcdStore]:
        async with etcd.EtcdStore([etcd_endpoint], prefix=key_prefix) as reader:
            yield reader


# --- compare-and-swap ---


async def test_create_twice_is_key_exists(store: etcd.EtcdStore) -> None:
    revision = await store.create("core/things/a", b"1")
    with pytest.raises(errors.KeyExists):
        await store.create("core/things/a", b"2")
    kv, _ = await store.get("core/things/a")
    assert kv is not None and kv.value == b"1" and kv.mod_revision == revision


async def test_stale_update_is_revision_conflict(store: etcd.EtcdStore) -> None:
    first = await store.create("k", b"1")
    second = await store.update("k", b"2", expected_revision=first)
    with pytest.raises(errors.RevisionConflict):
        await store.update("k", b"3", expected_revision=first)
    kv, _ = await store.get("k")
    assert kv is not None and kv.value == b"2" and kv.mod_revision == second


async def test_update_missing_is_key_missing(store: etcd.EtcdStore) -> None:
    with pytest.raises(errors.KeyMissing):
        await store.update("nope", b"x", expected_revision=5)
    with pytest.raises(errors.KeyMissing):
        await store.update("nope", b"x", expected_revision=None)
    kv, _ = await store.get("nope")
    assert kv is None  # an unconditional update never creates


async def test_unconditional_update(store: etcd.EtcdStore) -> None:
    first = await store.create("k", b"1")
    second = await store.update("k", b"2", expected_revision=None)
    assert second > first


async def test_delete_cas_and_returns_deleted(store: etcd.EtcdStore) -> None:
    first = await store.create("k", b"1")
    second = await store.update("k", b"2", expected_revision=first)
    with pytest.raises(errors.RevisionConflict):
        await store.delete("k", expected_revision=first)
    revision, kv = await store.delete("k", expected_revision=second)
    assert revision > second
    assert (kv.key, kv.value, kv.mod_revision, kv.create_revision, kv.version) == ("k", b"2", second, first, 2)
    with pytest.raises(errors.KeyMissing):
        await store.delete("k", expected_revision=None)
    with pytest.raises(errors.KeyMissing):
        await store.delete("k", expected_revision=second)


async def test_prefixes_isolate_stores(etcd_endpoint: str, store: etcd.EtcdStore) -> None:
    await store.create("shared", b"mine")
    async with etcd.EtcdStore([etcd_endpoint], prefix=store.prefix + "x") as other:
        assert (await other.get("shared"))[0] is None
        assert (await other.list("")).items == []


async def test_value_too_large(store: etcd.EtcdStore) -> None:
    with pytest.raises(errors.ValueTooLarge):
        await store.create("big", b"x" * 2_000_000)
    with pytest.raises(errors.ValueTooLarge):
        await store.create("bigger", b"x" * 4_000_000)
    assert (await store.get("big"))[0] is None


async def test_future_revision(store: etcd.EtcdStore) -> None:
    current = await store.current_revision()
    with pytest.raises(errors.FutureRevision):
        await store.get("k", revision=current + 1000)


async def test_concurrent_cas_increments_lose_nothing(store: etcd.EtcdStore) -> None:
    """16 tasks x 500 read-modify-write attempts: the counter equals the successful increments."""
    await store.create("counter", b"0")

    async def worker() -> int:
        succeeded = 0
        for _ in range(500):
            kv, _ = await store.get("counter")
            assert kv is not None
            try:
                await store.update("counter", str(int(kv.value) + 1).encode(), expected_revision=kv.mod_revision)
            except errors.RevisionConflict:
                continue
            succeeded += 1
        return succeeded

    successes = sum(await asyncio.gather(*(worker() for _ in range(16))))
    kv, _ = await store.get("counter")
    assert kv is not None
    assert int(kv.value) == successes > 0
    assert kv.version == successes + 1


# --- availability ---


async def test_unreachable_endpoint_is_store_unavailable() -> None:
    async with etcd.EtcdStore([f"http://127.0.0.1:{support.free_port()}"], request_timeout=5) as dead:
        with pytest.raises(errors.StoreUnavailable):
            await dead.get("k")
        with pytest.raises(errors.StoreUnavailable):
            await dead.create("k", b"x")


async def test_fails_over_to_the_next_endpoint(etcd_endpoint: str, key_prefix: str) -> None:
    dead = f"http://127.0.0.1:{support.free_port()}"
    async with etcd.EtcdStore([dead, etcd_endpoint], prefix=key_prefix) as store:
        revision = await store.create("k", b"x")
        assert (await store.get("k"))[0].mod_revision == revision  # type: ignore[union-attr]
        assert store.stats["failovers"] >= 1
        watcher = helpers.Watcher(store.watch("", start_revision=revision))
        try:
            await helpers.eventually(lambda: watcher.events, what="an event after failover")
            assert watcher.events[0].mod_revision == revision
        finally:
            await watcher.stop()


async def test_not_open_is_store_unavailable() -> None:
    store = etcd.EtcdStore(["http://127.0.0.1:1"])
    with pytest.raises(errors.StoreUnavailable):
        await store.get("k")


# --- watch resilience ---


async def test_watch_reconnects_without_loss_or_repeat(etcd_endpoint: str, key_prefix: str) -> None:
    """Cut the watch's TCP connection three times mid-stream; every revision arrives exactly once."""
    target = urlsplit(etcd_endpoint)
    proxy = await helpers.Proxy(target.hostname or "127.0.0.1", target.port or 2379).start()
    async with etcd.EtcdStore([etcd_endpoint], prefix=key_prefix) as writer, \
            etcd.EtcdStore([proxy.endpoint], prefix=key_prefix) as reader:
        start = await writer.current_revision() + 1
        watcher = helpers.Watcher(reader.watch("", start_revision=start))
        written: list[int] = []
        try:
            for round_ in range(4):
                await helpers.eventually(lambda: proxy.live, what="the watch stream connected")
                for i in range(50):
                    written.append(await writer.create(f"k{round_}-{i}", b"x"))
                proxy.cut()  # some of this round's events are usually still in flight
            await helpers.eventually(lambda: len(watcher.events) >= len(written), what="every event")
            # the last cut may land after the last event was delivered: wait for its reconnect
            await helpers.eventually(lambda: reader.stats["watch_reconnects"] >= 4, what="4 reconnects")
            # a marker written after the last reconnect proves the resumed stream repeats nothing
            written.append(await writer.create("marker", b"x"))
            await helpers.eventually(lambda: len(watcher.events) >= len(written), what="the marker")
            assert [e.mod_revision for e in watcher.events] == written
            assert watcher.error is None
            # reads through the cut connections recover too
            assert (await reader.get("k0-0"))[0] is not None
        finally:
            await watcher.stop()
            await proxy.stop()


async def test_watch_progress_notification_on_idle_prefix(store: etcd.EtcdStore) -> None:
    """An idle watch learns the current revision (embedded etcd notifies every 5 s)."""
    start = await store.create("k", b"x")
    watcher = helpers.Watcher(store.watch("idle/", start_revision=start + 1))
    try:
        await store.create("busy/elsewhere", b"y")
        progress = await helpers.eventually(
            lambda: [b for b in watcher.batches if not b.events], timeout=20, what="a progress notification")
        assert progress[0].revision > start
    finally:
        await watcher.stop()


async def test_watch_without_previous_values(store: etcd.EtcdStore) -> None:
    """For a consumer that keeps values itself: no previous values, and deletes carry no value."""
    created = await store.create("lean/a", b"v1")
    watcher = helpers.Watcher(store.watch("lean/", start_revision=created, prev_values=False))
    try:
        updated = await store.update("lean/a", b"v2", expected_revision=created)
        deleted, _ = await store.delete("lean/a", expected_revision=updated)
        await helpers.eventually(lambda: len(watcher.events) >= 3, what="3 events")
        put, update, delete = watcher.events
        assert (put.type, put.value, put.prev_value, put.mod_revision) == ("PUT", b"v1", None, created)
        assert (update.type, update.value, update.prev_value, update.mod_revision) == ("PUT", b"v2", None, updated)
        assert (delete.type, delete.value, delete.prev_value, delete.mod_revision) == ("DELETE", b"", None, deleted)
    finally:
        await watcher.stop()


def _event(revision: int, key: str = "k") -> etcd.Event:
    return etcd.Event("PUT", key, b"v", revision, revision, None)


def test_watch_filter_drops_duplicates_and_out_of_order() -> None:
    seen = etcd.WatchFilter(after=9)
    assert seen.accept([_event(9)]) == []  # before the start
    assert seen.accept([_event(10, "a"), _event(10, "b")]) == [_event(10, "a"), _event(10, "b")]
    assert seen.accept([_event(10, "a"), _event(10, "c"), _event(11)]) == [_event(10, "c"), _event(11)]
    assert seen.accept([_event(11), _event(10, "d"), _event(12)]) == [_event(12)]
    assert seen.dropped == 4
    assert seen.last_revision == 12
    assert seen.advance(15) is True
    assert seen.advance(14) is False
    assert seen.accept([_event(15, "z"), _event(16)]) == [_event(16)]  # 15 is closed by progress
    assert seen.dropped == 5


def test_stream_splitter_handles_any_chunking() -> None:
    from reconcile.store import stream

    big = "x" * 300_000  # over aiohttp's readline limit
    data = b'{"result":{"a":1}}\n{"result":{"big":"' + big.encode() + b'"}}\n{"result":{"c":3}}\n'
    for size in (1, 7, 4096, len(data)):
        splitter = stream.MessageSplitter()
        messages = []
        for i in range(0, len(data), size):
            messages += splitter.feed(data[i:i + size])
        messages += splitter.finish()
        assert messages == [{"result": {"a": 1}}, {"result": {"big": big}}, {"result": {"c": 3}}]
    splitter = stream.MessageSplitter()
    assert splitter.feed(b'{"a":1}{"b":2}') == []
    assert splitter.finish() == [{"a": 1}, {"b": 2}]
    with pytest.raises(stream.StreamDecodeError):
        stream.MessageSplitter().feed(b"not json\n")


# --- embedded etcd ---


def test_embedded_etcd_starts_and_stops_by_pid(tmp_path: Path) -> None:
    member = embedded.EmbeddedEtcd(tmp_path / "etcd").start()
    pid = member.pid
    try:
        assert pid and member.healthy() and member.endpoint.startswith("http://127.0.0.1:")
        assert member.log_path.exists()
    finally:
        member.stop()
    assert not member.healthy()
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)
