"""One bad object is its own problem: informers against a real API server, objects written into its etcd.

The API server is meant to reject such objects; these are written straight into etcd under the
server's prefix (as an older server, a bug, or a restore could leave them), and the server
serves them as stored.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from reconcile.client import aio, informer
from tests import support
from tests.client import helpers


@pytest.fixture
async def ns(ac: aio.AsyncClient) -> str:
    name = f"bad-{uuid.uuid4().hex[:10]}"
    await ac.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def pod(ns: str, name: str, **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, **metadata},
            "spec": {"containers": [{"name": "main", "image": "nginx:1"}]}}


class Seen:
    """What an informer told its handlers and its invalid-object handler."""

    def __init__(self, inf: informer.Informer) -> None:
        self.events: list[tuple[str, str, str]] = []  # (kind, name, resourceVersion)
        self.invalid: list[tuple[str, str, list[str]]] = []  # (name, resourceVersion, problems)
        inf.add_handler(on_add=lambda o: self._note("add", o), on_update=lambda _, o: self._note("update", o),
                        on_delete=lambda o: self._note("delete", o))
        inf.add_invalid_handler(lambda o, problems: self.invalid.append(
            (o["metadata"]["name"], o["metadata"]["resourceVersion"], problems)))

    def _note(self, kind: str, obj: dict[str, Any]) -> None:
        self.events.append((kind, obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))

    def names(self, kind: str) -> list[str]:
        return [name for k, name, _ in self.events if k == kind]


async def test_an_object_that_does_not_decode_is_skipped_reported_once_and_never_ends_the_stream(
    ac: aio.AsyncClient, ns: str, server_process: support.ApiServerProcess, etcd_endpoint: str
) -> None:
    await ac.create("v1", "pods", pod(ns, "good"), namespace=ns)
    bad_rv = await helpers.aput_raw(etcd_endpoint, server_process, "", "pods", helpers.malformed_pod(ns, "bad"))
    inf = informer.Informer(ac, "v1", "pods", namespace=ns)
    seen = Seen(inf)
    await inf.start()
    try:
        await inf.wait_synced(timeout=10)
        assert [o["metadata"]["name"] for o in inf.store.list()] == ["good"]
        assert [(name, rv) for name, rv, _ in seen.invalid] == [("bad", str(bad_rv))]
        assert seen.invalid[0][2] == ["metadata.ownerReferences[0]: must be an object, got str"]

        # a storm of other events, and the reconnects: the bad version is not reported again
        for i in range(10):
            await ac.patch("v1", "pods", "good", {"metadata": {"labels": {"n": str(i)}}}, namespace=ns)
        await support.eventually(lambda: inf.store.get(ns, "good")["metadata"]["labels"] == {"n": "9"},
                                 what="updates after the bad object")
        assert len(seen.invalid) == 1 and not inf.stopped

        # a new version, still bad: reported again; other wrong types are found too
        bad_rv = await helpers.aput_raw(etcd_endpoint, server_process, "", "pods",
                                        helpers.malformed_pod(ns, "bad", labels="x", finalizers=[1]))
        await support.eventually(lambda: len(seen.invalid) == 2, what="second bad version reported")
        assert seen.invalid[1][1] == str(bad_rv)
        assert "metadata.labels: must be an object of strings, got str" in seen.invalid[1][2]
        assert "metadata.finalizers: must be a list of strings" in seen.invalid[1][2]
        assert inf.store.get(ns, "bad") is None and "bad" not in seen.names("add")

        # fixed: it appears, as a new object to the handlers
        fixed = pod(ns, "bad", uid=str(uuid.uuid4()), creationTimestamp="2026-01-01T00:00:00Z")
        await helpers.aput_raw(etcd_endpoint, server_process, "", "pods", fixed)
        await support.eventually(lambda: "bad" in seen.names("add"), what="fixed object added")
        assert inf.store.get(ns, "bad") is not None
        assert inf.invalid_objects == 2
    finally:
        await inf.stop()


async def test_an_object_that_goes_bad_keeps_its_last_good_version_until_deleted(
    ac: aio.AsyncClient, ns: str, server_process: support.ApiServerProcess, etcd_endpoint: str
) -> None:
    created = await ac.create("v1", "pods", pod(ns, "web", labels={"app": "web"}), namespace=ns)
    inf = informer.Informer(ac, "v1", "pods", namespace=ns)
    seen = Seen(inf)
    await inf.start()
    try:
        await inf.wait_synced(timeout=10)
        broken = {**created, "metadata": {**created["metadata"], "labels": {"app": 7}}}
        await helpers.aput_raw(etcd_endpoint, server_process, "", "pods", broken)
        await support.eventually(lambda: seen.invalid, what="the broken version reported")
        cached = inf.store.get(ns, "web")
        assert cached is not None and cached["metadata"]["labels"] == {"app": "web"}  # the last good one
        assert [o["metadata"]["name"] for o in inf.store.by_index(informer.INDEX_LABEL, "app=web")] == ["web"]
        assert seen.names("update") == []  # handlers never see the bad version

        await ac.delete("v1", "pods", "web", namespace=ns)
        await support.eventually(lambda: "web" in seen.names("delete"), what="delete of the broken object")
        assert inf.store.get(ns, "web") is None and inf.store.by_index(informer.INDEX_LABEL, "app=web") == []
        deleted = [e for e in seen.events if e[0] == "delete"][0]
        assert deleted[2] == created["metadata"]["resourceVersion"]  # handed the version they knew
    finally:
        await inf.stop()


async def test_a_failing_handler_for_one_key_stops_neither_the_informer_nor_other_keys(
    ac: aio.AsyncClient, ns: str
) -> None:
    inf = informer.Informer(ac, "v1", "configmaps", namespace=ns)
    handled: list[str] = []

    def on_add(obj: dict[str, Any]) -> None:
        if obj["metadata"]["name"].startswith("poison"):
            raise TypeError("handler bug on this object")
        handled.append(obj["metadata"]["name"])

    inf.add_handler(on_add=on_add)
    await inf.start()
    try:
        await inf.wait_synced(timeout=10)
        for name in ("a", "poison-1", "b", "poison-2", "c"):
            await ac.create("v1", "configmaps", helpers.cm(name), namespace=ns)
        await support.eventually(lambda: handled == ["a", "b", "c"], what="the other keys handled")
        assert len(inf.store) == 5 and not inf.stopped  # the failing objects are cached like any other
    finally:
        await inf.stop()


async def test_a_stopped_informer_says_so_and_restarts_where_it_was(ac: aio.AsyncClient, ns: str) -> None:
    inf = informer.Informer(ac, "v1", "configmaps", namespace=ns)
    seen = Seen(inf)
    await inf.start()
    try:
        await inf.wait_synced(timeout=10)
        await ac.create("v1", "configmaps", helpers.cm("before"), namespace=ns)
        await support.eventually(lambda: seen.names("add") == ["before"])
        assert not inf.stopped and not await inf.restart()  # running: nothing to restart
        task = next(t for t in asyncio.all_tasks() if t.get_name() == "informer:configmaps")
        task.cancel()  # the task ends "for any reason"
        await support.eventually(lambda: inf.stopped, what="informer stopped")
        await ac.create("v1", "configmaps", helpers.cm("while-stopped"), namespace=ns)
        assert await inf.restart() and inf.restarts == 1 and not inf.stopped
        await ac.create("v1", "configmaps", helpers.cm("after"), namespace=ns)
        await support.eventually(lambda: seen.names("add") == ["before", "while-stopped", "after"],
                                 what="resumed from its resourceVersion: nothing missed, nothing twice")
    finally:
        await inf.stop()
    assert not inf.stopped  # stop() is not "stopped by itself"
