"""What an informer will cache: ObjectMeta's types (pure), the store's all-or-nothing put, keyless events."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.client import decoding, informer, watching

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)
NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
STRING_MAPS = st.dictionaries(NAMES, st.text(max_size=8), max_size=3)
REFS = st.lists(st.fixed_dictionaries(
    {"apiVersion": st.just("apps/v1"), "kind": st.just("ReplicaSet"), "name": NAMES, "uid": NAMES},
    optional={"controller": st.booleans(), "blockOwnerDeletion": st.booleans() | st.none()},
), max_size=2)
METADATA = st.fixed_dictionaries(
    {"name": NAMES},
    optional={
        "namespace": NAMES, "uid": NAMES, "resourceVersion": st.integers(1, 10**9).map(str),
        "generation": st.integers(0, 10**6), "labels": STRING_MAPS | st.none(), "annotations": STRING_MAPS,
        "ownerReferences": REFS, "finalizers": st.lists(NAMES, max_size=2),
        "creationTimestamp": st.just("2026-01-01T00:00:00Z"), "deletionTimestamp": st.none(),
    },
)
GOOD = st.builds(lambda md, spec: {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec},
                 METADATA, st.dictionaries(NAMES, JSON, max_size=3))


@settings(max_examples=300)
@given(obj=JSON)
def test_problems_never_raises_whatever_it_is_given(obj: Any) -> None:
    found = decoding.problems(obj)
    assert isinstance(found, list) and all(isinstance(p, str) for p in found)
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
        assert found  # no metadata object: never cacheable
    decoding.describe(obj)  # log lines too
    assert watching.identity(obj) is None or isinstance(obj, dict)


@settings(max_examples=300)
@given(obj=GOOD)
def test_well_formed_objects_decode(obj: dict[str, Any]) -> None:
    assert decoding.problems(obj) == []
    assert watching.identity(obj) == (obj["metadata"].get("namespace") or "", obj["metadata"]["name"])


WRONG: list[tuple[str, Any]] = [
    ("ownerReferences", ["str"]),
    ("ownerReferences", [{"apiVersion": "v1", "kind": "X", "name": "n"}]),  # no uid
    ("ownerReferences", [{"apiVersion": "v1", "kind": "X", "name": "n", "uid": "u", "controller": "yes"}]),
    ("ownerReferences", {"uid": "u"}),
    ("labels", "app=web"),
    ("labels", {"app": 1}),
    ("labels", ["app"]),
    ("annotations", {"a": None}),
    ("finalizers", "kubernetes"),
    ("finalizers", [1]),
    ("managedFields", ["x"]),
    ("name", 7),
    ("name", ""),
    ("namespace", ["default"]),
    ("uid", 12),
    ("generation", "2"),
    ("generation", True),
    ("creationTimestamp", "yesterday"),
    ("deletionTimestamp", 1700000000),
]


@pytest.mark.parametrize(("field", "value"), WRONG, ids=[f"{f}={v!r}" for f, v in WRONG])
def test_each_wrong_type_in_metadata_is_a_problem(field: str, value: Any) -> None:
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n", field: value}}
    found = decoding.problems(obj)
    assert found and all(p.startswith(f"metadata.{field}") for p in found), found


@pytest.mark.parametrize("obj", [
    {"metadata": "x"}, {"metadata": None}, {}, [], "pod",
    {"metadata": {"name": "p"}, "spec": "x"}, {"metadata": {"name": "p"}, "status": []},
    {"metadata": {"name": "p"}, "kind": 3},
])
def test_shapes_that_are_not_objects_with_metadata(obj: Any) -> None:
    assert decoding.problems(obj)


def test_a_kind_check_that_raises_is_a_problem_not_a_crash() -> None:
    def parse(obj: dict[str, Any]) -> None:
        for container in obj["spec"]["containers"]:
            container.get("name")

    check = decoding.checked(parse)
    assert check({"spec": {"containers": [{"name": "a"}]}}) == []
    assert check({"spec": {"containers": ["a"]}}) == ["AttributeError: 'str' object has no attribute 'get'"]


def test_store_put_is_all_or_nothing_when_an_index_function_fails() -> None:
    def by_team(obj: dict[str, Any]) -> list[str]:
        return [obj["metadata"]["annotations"]["team"]]  # KeyError without the annotation

    store = informer.Store({"team": by_team})
    good = {"metadata": {"name": "a", "namespace": "n", "annotations": {"team": "red"}}}
    store.put(good)
    with pytest.raises(KeyError):
        store.put({"metadata": {"name": "a", "namespace": "n"}})
    assert store.get("n", "a") is good and [o is good for o in store.by_index("team", "red")] == [True]
    store.remove(good)
    assert store.by_index("team", "red") == [] and len(store) == 0


def test_default_indexes_tolerate_odd_metadata() -> None:
    store = informer.Store()
    odd = {"metadata": {"name": "a", "labels": "x", "ownerReferences": ["str", {"uid": 3}, {"uid": "u1"}]}}
    store.put(odd)  # the informer would not cache this; the store must still not break on it
    assert store.by_index(informer.INDEX_OWNER, "u1") == [odd]
    assert store.by_index(informer.INDEX_NAMESPACE, "") == [odd]


def test_cursor_drops_events_without_identity_but_keeps_their_position() -> None:
    cursor = watching.WatchCursor.starting_at("10")
    assert cursor.accept({"type": "ADDED", "object": "garbage"}) is None
    assert cursor.accept({"type": "ADDED", "object": {"metadata": {"name": 5, "resourceVersion": "11"}}}) is None
    assert cursor.malformed == 2 and cursor.resource_version == "11" and cursor.known == {}
    events = cursor.relist([{"metadata": "x"}, {"metadata": {"name": "ok", "resourceVersion": "12"}}], "12")
    assert [(e["type"], (e["object"]["metadata"] or {}).get("name")) for e in events] == [
        ("ADDED", "ok"), ("BOOKMARK", None)]
    assert cursor.malformed == 3
