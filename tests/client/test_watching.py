"""The resilient-watch bookkeeping and the informer's indexed store (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest

from reconcile.client import informer, watching
from reconcile.core import errors


def obj(
    name: str, rv: int, *, ns: str = "n", labels: dict[str, str] | None = None, owners: tuple[str, ...] = ()
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "resourceVersion": str(rv)}
    if labels:
        meta["labels"] = labels
    if owners:
        meta["ownerReferences"] = [{"uid": uid} for uid in owners]
    return {"metadata": meta}


def test_cursor_starting_points() -> None:
    assert watching.WatchCursor.starting_at(None).needs_list
    assert watching.WatchCursor.starting_at("0").needs_list
    resumed = watching.WatchCursor.starting_at("42")
    assert not resumed.needs_list and resumed.resource_version == "42"


def test_cursor_never_goes_backwards() -> None:
    cursor = watching.WatchCursor.starting_at("10")
    assert cursor.accept({"type": "ADDED", "object": obj("a", 11)}) is not None
    assert cursor.accept({"type": "MODIFIED", "object": obj("a", 9)}) is None  # replay: dropped
    assert cursor.accept({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "8"}}}) is None
    assert cursor.resource_version == "11" and cursor.dropped == 1
    assert cursor.accept({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "20"}}}) is not None
    assert cursor.resource_version == "20"
    assert watching.rv_newer("100", "99") and not watching.rv_newer("99", "100")


def test_relist_diff_after_expiry() -> None:
    cursor = watching.WatchCursor()
    first = cursor.relist([obj("a", 1), obj("b", 2), obj("c", 3)], "3")
    assert [e["type"] for e in first] == ["ADDED", "ADDED", "ADDED", "BOOKMARK"]
    assert watching.is_initial_events_end(first[-1])
    cursor.accept({"type": "MODIFIED", "object": obj("a", 4)})
    cursor.expire()
    assert cursor.needs_list
    events = cursor.relist([obj("a", 4), obj("b", 7), obj("d", 8)], "9")
    summary = [(e["type"], e["object"]["metadata"].get("name")) for e in events]
    assert summary == [("DELETED", "c"), ("MODIFIED", "b"), ("ADDED", "d"), ("BOOKMARK", None)]
    assert cursor.resource_version == "9" and sorted(k[1] for k in cursor.known) == ["a", "b", "d"]


def test_relist_older_than_position_is_refused() -> None:
    cursor = watching.WatchCursor.starting_at("50")
    with pytest.raises(errors.Gone):
        cursor.relist([], "40")


def test_complete_items_fills_kind() -> None:
    body = {"kind": "ConfigMapList", "apiVersion": "v1", "items": [{"metadata": {"name": "x"}}]}
    assert watching.complete_items(body) == [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    ]


def test_backoff_is_capped_and_resets() -> None:
    backoff = watching.Backoff(initial=1.0, cap=4.0)
    delays = [backoff.next() for _ in range(6)]
    assert all(d <= 4.0 for d in delays) and delays[-1] >= 2.0
    backoff.reset()
    assert backoff.next() <= 1.0
    assert watching.retryable(errors.ServiceUnavailable("x")) and not watching.retryable(
        errors.Forbidden("x")
    )


def test_store_indexes_follow_updates_and_deletes() -> None:
    store = informer.Store()
    store.put(obj("a", 1, labels={"app": "web"}, owners=("u1",)))
    store.put(obj("b", 2, ns="m", labels={"app": "web", "tier": "fe"}))
    assert {o["metadata"]["name"] for o in store.by_index(informer.INDEX_LABEL, "app=web")} == {"a", "b"}
    assert [o["metadata"]["name"] for o in store.by_index(informer.INDEX_NAMESPACE, "m")] == ["b"]
    assert [o["metadata"]["name"] for o in store.by_index(informer.INDEX_OWNER, "u1")] == ["a"]
    old = store.put(obj("a", 3, labels={"app": "db"}))
    assert old is not None and old["metadata"]["resourceVersion"] == "1"
    assert [o["metadata"]["name"] for o in store.by_index(informer.INDEX_LABEL, "app=web")] == ["b"]
    assert store.by_index(informer.INDEX_OWNER, "u1") == []
    store.remove(obj("b", 4, ns="m"))
    assert store.get("m", "b") is None and store.by_index(informer.INDEX_LABEL, "tier=fe") == []
    assert len(store) == 1 and store.get("n", "a") is not None
    assert store._indexes[informer.INDEX_LABEL] == {"app=db": {("n", "a")}}  # no empty sets left behind
    store.add_indexer("name", lambda o: [o["metadata"]["name"]])
    assert store.by_index("name", "a")
    with pytest.raises(KeyError):
        store.by_index("nope", "x")
