"""The informer against a real API server: sync, events, indexes, relist after expiry."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from reconcile.client import aio, informer, watching
from reconcile.core import errors
from tests import support
from tests.client import helpers


@pytest.fixture
async def ns(ac: aio.AsyncClient) -> str:
    name = f"i-{uuid.uuid4().hex[:10]}"
    await ac.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


class Recorder:
    """Handlers that write down what they were told, one sync and one async flavour."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.updates: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def on_add(self, obj: dict[str, Any]) -> None:
        self.events.append(("add", obj["metadata"]["name"]))

    async def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.events.append(("update", new["metadata"]["name"]))
        self.updates.append((old, new))

    def on_delete(self, obj: dict[str, Any]) -> None:
        self.events.append(("delete", obj["metadata"]["name"]))


def owned(name: str, owner_uid: str, labels: dict[str, str]) -> dict[str, Any]:
    obj = helpers.cm(name, labels=labels)
    obj["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": owner_uid, "controller": True}
    ]
    return obj


async def test_informer_sync_events_and_indexes(ac: aio.AsyncClient, ns: str) -> None:
    for i in range(5):
        await ac.create(
            "v1", "configmaps", helpers.cm(f"pre{i}", labels={"app": "web" if i < 3 else "db"}), namespace=ns
        )
    inf = informer.Informer(ac, "v1", "configmaps", namespace=ns, page_size=2)
    rec = Recorder()
    inf.add_handler(on_add=rec.on_add, on_update=rec.on_update, on_delete=rec.on_delete)
    assert not inf.has_synced
    await inf.start()
    try:
        await inf.wait_synced(timeout=10)
        assert inf.has_synced and len(inf.store) == 5
        assert sorted(rec.events) == [("add", f"pre{i}") for i in range(5)]  # dispatched before has_synced
        synced_rv = int(inf.resource_version or 0)

        owner = str(uuid.uuid4())
        await ac.create("v1", "configmaps", owned("child", owner, {"app": "web"}), namespace=ns)
        await ac.patch("v1", "configmaps", "pre0", {"data": {"k": "v"}}, namespace=ns)
        await ac.delete("v1", "configmaps", "pre4", namespace=ns)
        await support.eventually(lambda: ("delete", "pre4") in rec.events, what="delete event")
        assert rec.events[5:] == [("add", "child"), ("update", "pre0"), ("delete", "pre4")]
        old, new = rec.updates[0]
        assert not old.get("data") and new["data"] == {"k": "v"}

        assert inf.store.get(ns, "pre4") is None and inf.store.get(ns, "pre0")["data"] == {"k": "v"}
        web = {o["metadata"]["name"] for o in inf.store.by_index(informer.INDEX_LABEL, "app=web")}
        assert web == {"pre0", "pre1", "pre2", "child"}
        assert [o["metadata"]["name"] for o in inf.store.by_index(informer.INDEX_OWNER, owner)] == ["child"]
        assert len(inf.store.by_index(informer.INDEX_NAMESPACE, ns)) == 5
        assert int(inf.resource_version or 0) > synced_rv

        late = Recorder()  # a handler added while running first hears about what is cached
        inf.add_handler(on_add=late.on_add)
        await support.eventually(lambda: len(late.events) == 5, what="late handler replay")
    finally:
        await inf.stop()


async def test_informer_selector_and_rv_monotonic(ac: aio.AsyncClient, ns: str) -> None:
    inf = informer.Informer(ac, "v1", "configmaps", namespace=ns, label_selector="app=web")
    rvs: list[int] = []
    inf.add_handler(
        on_add=lambda obj: rvs.append(int(inf.resource_version or 0)),
        on_update=lambda old, new: rvs.append(int(inf.resource_version or 0)),
    )
    await inf.start()
    try:
        await inf.wait_synced(timeout=10)
        await ac.create("v1", "configmaps", helpers.cm("other", labels={"app": "db"}), namespace=ns)
        for i in range(5):
            await ac.create("v1", "configmaps", helpers.cm(f"w{i}", labels={"app": "web"}), namespace=ns)
            await ac.patch("v1", "configmaps", f"w{i}", {"data": {"i": str(i)}}, namespace=ns)
        await support.eventually(lambda: len(rvs) == 10, what="10 events")
        assert rvs == sorted(rvs)
        assert sorted(o["metadata"]["name"] for o in inf.store.list()) == [f"w{i}" for i in range(5)]
    finally:
        await inf.stop()


async def test_informer_relists_after_expiry(ac: aio.AsyncClient, ns: str, etcd_endpoint: str) -> None:
    """An informer whose position was compacted away relists and deletes what vanished meanwhile."""
    await ac.create("v1", "configmaps", helpers.cm("alive"), namespace=ns)
    inf = informer.Informer(ac, "v1", "configmaps", namespace=ns)
    rec = Recorder()
    inf.add_handler(on_add=rec.on_add, on_update=rec.on_update, on_delete=rec.on_delete)
    # Seed the informer as if it had synced long ago: it knows a ghost that is no longer there,
    # and its resourceVersion is older than the compaction point.
    ghost = {"metadata": {"name": "ghost", "namespace": ns, "resourceVersion": "1"}}
    inf.store.put(ghost)
    inf._cursor = watching.WatchCursor(resource_version="1", known={(ns, "ghost"): ghost}, needs_list=False)
    helpers.etcd_compact(etcd_endpoint)
    await inf.start()
    try:
        await support.eventually(lambda: inf.has_synced, what="relist")
        assert sorted(rec.events) == [("add", "alive"), ("delete", "ghost")]
        assert [o["metadata"]["name"] for o in inf.store.list()] == ["alive"]
        assert inf.store.by_index(informer.INDEX_NAMESPACE, ns)[0]["metadata"]["name"] == "alive"
        await ac.create("v1", "configmaps", helpers.cm("after"), namespace=ns)
        await support.eventually(lambda: ("add", "after") in rec.events, what="watch resumed after relist")
    finally:
        await inf.stop()


async def test_informer_reconnects_when_server_unreachable() -> None:
    """No server yet: the informer keeps retrying with backoff instead of dying; stop() ends it."""
    from tests import support

    async with aio.AsyncClient(f"http://127.0.0.1:{support.free_port()}") as client:
        inf = informer.Informer(client, "v1", "configmaps", backoff=watching.Backoff(initial=0.01, cap=0.05))
        await inf.start()
        with pytest.raises(TimeoutError):
            await inf.wait_synced(timeout=0.5)
        assert inf.error is None and not inf.has_synced and inf._backoff.attempt >= 3
        await inf.stop()


async def test_informer_fatal_error_surfaces(ac: aio.AsyncClient) -> None:
    inf = informer.Informer(ac, "v1", "configmaps", label_selector="a in (")
    await inf.start()
    with pytest.raises(errors.BadRequest):
        await inf.wait_synced(timeout=10)
    await inf.stop()


async def test_informer_survives_server_restart(etcd_endpoint: str) -> None:
    """The API server goes away and comes back on the same address: the informer reconnects and converges."""
    from tests import support

    first = support.ApiServerProcess(etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry")
    second = support.ApiServerProcess(etcd_endpoint, prefix=first.prefix, pki=first.pki)  # the same CA
    second.port, second.url, second.connection = first.port, first.url, first.connection
    await asyncio.to_thread(first.start)
    try:
        async with aio.AsyncClient(support.connection(first.url).client_config()) as client:
            inf = informer.Informer(
                client,
                "v1",
                "configmaps",
                namespace="default",
                backoff=watching.Backoff(initial=0.05, cap=0.5),
            )
            rec = Recorder()
            inf.add_handler(on_add=rec.on_add, on_update=rec.on_update, on_delete=rec.on_delete)
            await client.create("v1", "configmaps", helpers.cm("before"), namespace="default")
            await inf.start()
            try:
                await inf.wait_synced(timeout=10)
                await asyncio.to_thread(first.stop)
                await asyncio.to_thread(second.start)
                await client.create("v1", "configmaps", helpers.cm("after"), namespace="default")
                await client.delete("v1", "configmaps", "before", namespace="default")
                await support.eventually(
                    lambda: ("delete", "before") in rec.events, timeout=30, what="events after restart"
                )
                assert [o["metadata"]["name"] for o in inf.store.list()] == ["after"]
                assert ("add", "after") in rec.events and inf.error is None
            finally:
                await inf.stop()
    finally:
        await asyncio.to_thread(first.stop)
        await asyncio.to_thread(second.stop)
