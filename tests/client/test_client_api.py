"""The sync and async clients against a real API server (subprocess) on a real etcd."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reconcile.client import aio, api
from reconcile.core import errors
from tests import support
from tests.client import helpers


@pytest.fixture(scope="module")
def client(api_server: str) -> Iterator[api.Client]:
    with api.Client(support.connection(api_server).client_config()) as c:
        yield c


@pytest.fixture
def ns(client: api.Client) -> str:
    """A fresh namespace per test, so tests sharing the module's server never see each other."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def names(body: dict[str, Any]) -> list[str]:
    return sorted(item["metadata"]["name"] for item in body["items"])


def test_crud_configmap(client: api.Client, ns: str) -> None:
    created = client.create("v1", "configmaps", helpers.cm("c1", data={"a": "1"}), namespace=ns)
    assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
    assert client.get("v1", "configmaps", "c1", namespace=ns)["data"] == {"a": "1"}

    created["data"]["b"] = "2"
    replaced = client.replace("v1", "configmaps", created, namespace=ns)
    assert replaced["data"] == {"a": "1", "b": "2"}
    assert int(replaced["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])

    merged = client.patch("v1", "configmaps", "c1", {"data": {"a": None, "c": "3"}}, namespace=ns)
    assert merged["data"] == {"b": "2", "c": "3"}
    ops = [{"op": "add", "path": "/data/d", "value": "4"}]
    assert client.patch("v1", "configmaps", "c1", ops, namespace=ns, patch_type="json")["data"]["d"] == "4"
    strategic = client.patch(
        "v1", "configmaps", "c1", {"data": {"e": "5"}}, namespace=ns, patch_type="strategic"
    )
    assert strategic["data"]["e"] == "5"

    applied = client.patch(
        "v1",
        "configmaps",
        "c2",
        helpers.cm("c2", data={"x": "y"}),
        namespace=ns,
        patch_type="apply",
        field_manager="tests",
        force=True,
    )
    assert applied["data"] == {"x": "y"}  # server-side apply creates what is absent

    dry = client.create("v1", "configmaps", helpers.cm("c3"), namespace=ns, dry_run=True)
    assert dry["metadata"]["name"] == "c3"
    with pytest.raises(errors.NotFound):
        client.get("v1", "configmaps", "c3", namespace=ns)

    client.delete("v1", "configmaps", "c1", namespace=ns)
    with pytest.raises(errors.NotFound, match='configmaps "c1" not found'):
        client.get("v1", "configmaps", "c1", namespace=ns)


def test_typed_errors(client: api.Client, ns: str) -> None:
    first = client.create("v1", "configmaps", helpers.cm("dup"), namespace=ns)
    with pytest.raises(errors.AlreadyExists) as exists:
        client.create("v1", "configmaps", helpers.cm("dup"), namespace=ns)
    assert exists.value.code == 409 and "already exists" in exists.value.message

    client.patch("v1", "configmaps", "dup", {"data": {"k": "v"}}, namespace=ns)
    with pytest.raises(errors.Conflict, match="the object has been modified"):
        client.replace("v1", "configmaps", first, namespace=ns)  # stale resourceVersion

    failing_test = [{"op": "test", "path": "/data/k", "value": "other"}]
    with pytest.raises(errors.Invalid) as invalid:
        client.patch("v1", "configmaps", "dup", failing_test, namespace=ns, patch_type="json")
    assert invalid.value.code == 422

    with pytest.raises(errors.Invalid):
        client.create("v1", "configmaps", helpers.cm("Not_A_DNS_Name"), namespace=ns)
    with pytest.raises(errors.NotFound):
        client.delete("v1", "configmaps", "nope", namespace=ns)
    with pytest.raises(errors.BadRequest):
        client.list("v1", "configmaps", namespace=ns, label_selector="a in (")


def test_list_selectors_and_paging(client: api.Client, ns: str) -> None:
    for i in range(7):
        client.create(
            "v1",
            "configmaps",
            helpers.cm(f"p{i}", labels={"tier": "fe" if i % 2 else "be", "n": str(i)}),
            namespace=ns,
        )
    assert names(client.list("v1", "configmaps", namespace=ns, label_selector="tier=fe")) == [
        "p1",
        "p3",
        "p5",
    ]
    assert names(client.list("v1", "configmaps", namespace=ns, label_selector="tier!=fe,n notin (0,2)")) == [
        "p4",
        "p6",
    ]
    assert names(client.list("v1", "configmaps", namespace=ns, field_selector="metadata.name=p2")) == ["p2"]

    pages, token, rvs = [], None, set()
    while True:
        body = client.list("v1", "configmaps", namespace=ns, limit=3, continue_=token, label_selector="tier")
        pages.append(names(body))
        rvs.add(body["metadata"]["resourceVersion"])
        token = body["metadata"].get("continue")
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(sum(pages, [])) == [f"p{i}" for i in range(7)]
    assert len(rvs) == 1  # every page is the same snapshot
    merged = client.list_all("v1", "configmaps", namespace=ns, page_size=2)
    assert len(merged["items"]) == 7

    client.delete_collection("v1", "configmaps", namespace=ns, label_selector="tier=be")
    assert names(client.list("v1", "configmaps", namespace=ns)) == ["p1", "p3", "p5"]


def take(stream: Iterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The next `count` non-BOOKMARK events (bounded by the watch's own timeoutSeconds)."""
    out: list[dict[str, Any]] = []
    for event in stream:
        if event["type"] != "BOOKMARK":
            out.append(event)
        if len(out) == count:
            break
    return out


def test_watch_events_and_resume(client: api.Client, ns: str) -> None:
    start = client.list("v1", "configmaps", namespace=ns)["metadata"]["resourceVersion"]
    client.create("v1", "configmaps", helpers.cm("w"), namespace=ns)
    client.patch("v1", "configmaps", "w", {"data": {"x": "1"}}, namespace=ns)
    client.delete("v1", "configmaps", "w", namespace=ns)

    stream = client.watch("v1", "configmaps", namespace=ns, resource_version=start, timeout_seconds=10)
    events = take(stream, 3)
    stream.close()
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[1]["object"]["data"] == {"x": "1"}
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(start)

    # resume from the first event's RV: exactly what came after it
    after_first = events[0]["object"]["metadata"]["resourceVersion"]
    stream = client.watch("v1", "configmaps", namespace=ns, resource_version=after_first, timeout_seconds=10)
    assert [e["type"] for e in take(stream, 2)] == ["MODIFIED", "DELETED"]
    stream.close()

    # RV unset: synthetic ADDED for what exists
    client.create("v1", "configmaps", helpers.cm("exists"), namespace=ns)
    stream = client.watch("v1", "configmaps", namespace=ns, timeout_seconds=10)
    (added,) = take(stream, 1)
    stream.close()
    assert added["type"] == "ADDED" and added["object"]["metadata"]["name"] == "exists"


def test_watch_times_out_cleanly(client: api.Client, ns: str) -> None:
    rv = client.list("v1", "configmaps", namespace=ns)["metadata"]["resourceVersion"]
    events = list(client.watch("v1", "configmaps", namespace=ns, resource_version=rv, timeout_seconds=1))
    assert all(e["type"] == "BOOKMARK" for e in events)


def test_watch_selector(client: api.Client, ns: str) -> None:
    rv = client.list("v1", "configmaps", namespace=ns)["metadata"]["resourceVersion"]
    client.create("v1", "configmaps", helpers.cm("skip", labels={"app": "other"}), namespace=ns)
    client.create("v1", "configmaps", helpers.cm("keep", labels={"app": "web"}), namespace=ns)
    stream = client.watch(
        "v1", "configmaps", namespace=ns, resource_version=rv, label_selector="app=web", timeout_seconds=10
    )
    (event,) = take(stream, 1)
    stream.close()
    assert event["object"]["metadata"]["name"] == "keep"


def test_watch_from_compacted_rv_raises_gone(client: api.Client, ns: str, etcd_endpoint: str) -> None:
    client.create("v1", "configmaps", helpers.cm("old"), namespace=ns)
    helpers.etcd_compact(etcd_endpoint)
    with pytest.raises(errors.Gone):
        list(client.watch("v1", "configmaps", namespace=ns, resource_version="1", timeout_seconds=5))


def test_watch_resilient_lists_then_follows_and_relists(
    client: api.Client, ns: str, etcd_endpoint: str
) -> None:
    client.create("v1", "configmaps", helpers.cm("r1"), namespace=ns)
    stream = client.watch_resilient("v1", "configmaps", namespace=ns, page_size=1)
    first = next(stream)
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "r1")
    assert first["object"]["kind"] == "ConfigMap"
    end = next(stream)
    assert end["type"] == "BOOKMARK" and end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"]
    client.create("v1", "configmaps", helpers.cm("r2"), namespace=ns)
    (added,) = take(stream, 1)
    assert added["object"]["metadata"]["name"] == "r2"
    stream.close()

    # a consumer that was at a compacted RV relists and is told what vanished meanwhile
    from reconcile.client import watching

    ghost = {"metadata": {"name": "ghost", "namespace": ns, "resourceVersion": "1"}}
    cursor = watching.WatchCursor(resource_version="1", known={(ns, "ghost"): ghost}, needs_list=False)
    helpers.etcd_compact(etcd_endpoint)
    stream = client.watch_resilient("v1", "configmaps", namespace=ns, cursor=cursor)
    events = [next(stream) for _ in range(4)]
    stream.close()
    summary = sorted((e["type"], (e["object"]["metadata"] or {}).get("name")) for e in events)
    assert summary == [("ADDED", "r1"), ("ADDED", "r2"), ("BOOKMARK", None), ("DELETED", "ghost")]
    assert int(cursor.resource_version or 0) > 1


def test_retry_on_conflict_concurrent_writers(client: api.Client, ns: str) -> None:
    client.create("v1", "configmaps", helpers.cm("counter", data={"n": "0"}), namespace=ns)
    writers, increments = 8, 10
    conflicts = []

    def increment() -> None:
        def attempt() -> dict[str, Any]:
            obj = client.get("v1", "configmaps", "counter", namespace=ns)
            obj["data"]["n"] = str(int(obj["data"]["n"]) + 1)
            try:
                return client.replace("v1", "configmaps", obj, namespace=ns)
            except errors.Conflict:
                conflicts.append(1)
                raise

        for _ in range(increments):
            api.retry_on_conflict(attempt, attempts=200)

    threads = [threading.Thread(target=increment) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert client.get("v1", "configmaps", "counter", namespace=ns)["data"]["n"] == str(writers * increments)


def test_retry_on_conflict_gives_up() -> None:
    calls = []

    def always() -> None:
        calls.append(1)
        raise errors.Conflict("lost")

    with pytest.raises(errors.Conflict):
        api.retry_on_conflict(always, attempts=3)
    assert len(calls) == 3


def test_discovery(client: api.Client) -> None:
    resources = client.discover()
    assert any(r.plural == "configmaps" for r in resources)
    assert client.resolve("cm").plural == "configmaps"
    assert client.resolve("CONFIGMAP").kind == "ConfigMap"
    deploy = client.resolve("deploy")
    assert (deploy.group, deploy.plural, deploy.namespaced) == ("apps", "deployments", True)
    assert "scale" in deploy.subresources and "status" in deploy.subresources
    assert client.resolve("deployments.apps") == deploy
    assert client.resolve("ns").namespaced is False
    assert client.resource_for("v1", "ConfigMap").plural == "configmaps"
    with pytest.raises(errors.NotFound):
        client.resolve("nosuchthings")


async def test_async_client(api_server: str, client: api.Client, ns: str) -> None:
    async with aio.AsyncClient(support.connection(api_server).client_config()) as ac:
        created = await ac.create("v1", "configmaps", helpers.cm("a1", data={"n": "0"}), namespace=ns)
        got = await ac.get("v1", "configmaps", "a1", namespace=ns)
        assert got["metadata"]["uid"] == created["metadata"]["uid"]
        with pytest.raises(errors.AlreadyExists):
            await ac.create("v1", "configmaps", helpers.cm("a1"), namespace=ns)

        async def bump() -> dict[str, Any]:
            obj = await ac.get("v1", "configmaps", "a1", namespace=ns)
            obj["data"]["n"] = str(int(obj["data"]["n"]) + 1)
            return await ac.replace("v1", "configmaps", obj, namespace=ns)

        await asyncio.gather(*(aio.retry_on_conflict(bump, attempts=100) for _ in range(8)))
        assert (await ac.get("v1", "configmaps", "a1", namespace=ns))["data"]["n"] == "8"

        rv = (await ac.list("v1", "configmaps", namespace=ns))["metadata"]["resourceVersion"]
        await ac.patch("v1", "configmaps", "a1", {"data": {"w": "1"}}, namespace=ns)
        await ac.delete("v1", "configmaps", "a1", namespace=ns)
        seen = []
        async for event in ac.watch(
            "v1", "configmaps", namespace=ns, resource_version=rv, timeout_seconds=10
        ):
            if event["type"] != "BOOKMARK":
                seen.append(event["type"])
            if len(seen) == 2:
                break
        assert seen == ["MODIFIED", "DELETED"]
        assert (await ac.resolve("cm")).plural == "configmaps"
