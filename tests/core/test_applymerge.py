"""Server-side apply and field ownership: upstream's examples (two managers, shared fields, conflicts,
force, removal of an un-sent field, lists merged by key) on plain documents."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.core import applymerge as am
from reconcile.core import errors
from reconcile.core import fieldsets as fs

CONTAINER = {
    "type": "object",
    "properties": {
        "name": {"type": "string"}, "image": {"type": "string"},
        "ports": {"type": "array", "x-kubernetes-list-type": "map",
                  "x-kubernetes-list-map-keys": ["containerPort", "protocol"], "items": {"type": "object"}},
    },
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer"},
                "paused": {"type": "boolean"},
                "selector": {"type": "object", "x-kubernetes-map-type": "atomic"},
                "args": {"type": "array", "items": {"type": "string"}},
                "containers": {"type": "array", "x-kubernetes-list-type": "map",
                               "x-kubernetes-list-map-keys": ["name"], "items": CONTAINER},
            },
        },
        "status": {"type": "object"},
    },
}
T1, T2, T3 = "2026-12-02T10:00:00Z", "2026-12-02T10:01:00Z", "2026-12-02T10:02:00Z"


def _apply(live: Any, config: dict[str, Any], entries: list[am.Entry], manager: str, *, force: bool = False,
           now: str = T1) -> am.Applied:
    return am.apply(live, config, entries, manager=manager, api_version="apps/v1", schema=SCHEMA, now=now,
                    force=force)


def _deploy(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec}


def _owner(entries: list[am.Entry], path: tuple[str, ...]) -> set[str]:
    return {e.manager for e in entries if path in e.fields}


REPLICAS = ("f:spec", "f:replicas")


def test_first_apply_creates_and_owns_exactly_the_config() -> None:
    result = _apply(None, _deploy(replicas=1, containers=[{"name": "nginx", "image": "nginx:1"}]), [], "kubectl")
    assert result.obj["spec"]["replicas"] == 1
    [entry] = result.entries
    assert (entry.manager, entry.operation, entry.api_version, entry.time) == ("kubectl", "Apply", "apps/v1", T1)
    assert fs.to_fields_v1(entry.fields) == {"f:spec": {
        "f:containers": {'k:{"name":"nginx"}': {".": {}, "f:image": {}, "f:name": {}}},
        "f:replicas": {},
    }}
    # name, apiVersion, kind are nobody's
    assert ("f:metadata", "f:name") not in entry.fields and ("f:kind",) not in entry.fields


def test_reapply_without_a_field_removes_it() -> None:
    first = _apply(None, _deploy(replicas=1, paused=True), [], "kubectl")
    second = _apply(first.obj, _deploy(replicas=1), first.entries, "kubectl", now=T2)
    assert "paused" not in second.obj["spec"]
    assert second.entries[0].fields == {REPLICAS}


def test_a_field_another_manager_also_owns_is_not_removed() -> None:
    first = _apply(None, _deploy(replicas=1, paused=True), [], "a")
    shared = _apply(first.obj, _deploy(paused=True), first.entries, "b")  # same value: co-owned, no conflict
    assert _owner(shared.entries, ("f:spec", "f:paused")) == {"a", "b"}
    dropped = _apply(shared.obj, _deploy(replicas=1), shared.entries, "a", now=T2)
    assert dropped.obj["spec"]["paused"] is True
    assert _owner(dropped.entries, ("f:spec", "f:paused")) == {"b"}


def test_two_appliers_with_different_values_conflict_with_upstreams_message() -> None:
    first = _apply(None, _deploy(replicas=1), [], "a")
    with pytest.raises(errors.Conflict) as caught:
        _apply(first.obj, _deploy(replicas=3), first.entries, "b")
    exc = caught.value
    assert exc.code == 409 and exc.reason == "Conflict"
    assert exc.message == 'Apply failed with 1 conflict: conflict with "a": .spec.replicas'
    assert exc.details == {"causes": [{"reason": "FieldManagerConflict", "message": 'conflict with "a"',
                                       "field": ".spec.replicas"}]}


def test_force_takes_ownership() -> None:
    first = _apply(None, _deploy(replicas=1, paused=True), [], "a")
    forced = _apply(first.obj, _deploy(replicas=3), first.entries, "b", force=True, now=T2)
    assert forced.obj["spec"]["replicas"] == 3
    assert _owner(forced.entries, REPLICAS) == {"b"}
    assert _owner(forced.entries, ("f:spec", "f:paused")) == {"a"}


def test_an_update_then_reapply_conflicts_on_replicas_as_kubectl_scale_does() -> None:
    first = _apply(None, _deploy(replicas=1), [], "kubectl")
    scaled = copy.deepcopy(first.obj)
    scaled["spec"]["replicas"] = 5
    entries = am.update(first.obj, scaled, first.entries, manager="kubectl-scale", api_version="apps/v1",
                        schema=SCHEMA, now=T2, subresource="scale")
    assert _owner(entries, REPLICAS) == {"kubectl-scale"}
    with pytest.raises(errors.Conflict) as caught:
        _apply(scaled, _deploy(replicas=1), entries, "kubectl", now=T3)
    assert caught.value.message == ('Apply failed with 1 conflict: conflict with "kubectl-scale" with subresource '
                                    f'"scale" using apps/v1 at {T2}: .spec.replicas')
    # the same value again is not a conflict: co-ownership
    same = _apply(scaled, _deploy(replicas=5), entries, "kubectl", now=T3)
    assert _owner(same.entries, REPLICAS) == {"kubectl", "kubectl-scale"}


def test_forgiven_conflicts_are_taken_over_and_the_rest_reported() -> None:
    first = am.update(None, _deploy(replicas=1, paused=False), [], manager="kubectl-client-side-apply",
                      api_version="apps/v1", schema=SCHEMA, now=T1)
    live = _deploy(replicas=1, paused=False)
    forgiven = am.unchanged_fields(_deploy(replicas=1), live, SCHEMA)
    assert forgiven == {REPLICAS}
    taken = am.apply(live, _deploy(replicas=2), first, manager="kubectl", api_version="apps/v1", schema=SCHEMA,
                     now=T2, forgiven=forgiven)
    assert taken.obj["spec"]["replicas"] == 2 and _owner(taken.entries, REPLICAS) == {"kubectl"}
    with pytest.raises(errors.Conflict) as caught:
        am.apply(live, _deploy(replicas=2, paused=True), first, manager="kubectl", api_version="apps/v1",
                 schema=SCHEMA, now=T2, forgiven=forgiven)
    assert [c["field"] for c in caught.value.details["causes"]] == [".spec.paused"]


def test_many_conflicts_are_listed_by_manager() -> None:
    first = _apply(None, _deploy(replicas=1, paused=False), [], "a")
    second = _apply(first.obj, _deploy(args=["x"]), first.entries, "c")
    with pytest.raises(errors.Conflict) as caught:
        _apply(second.obj, _deploy(replicas=2, paused=True, args=["y"]), second.entries, "b")
    assert caught.value.message == ('Apply failed with 3 conflicts: conflicts with "a":\n- .spec.paused\n'
                                    '- .spec.replicas\nconflicts with "c":\n- .spec.args')
    assert len(caught.value.details["causes"]) == 3


def test_associative_lists_are_shared_by_key() -> None:
    first = _apply(None, _deploy(containers=[{"name": "app", "image": "app:1"}]), [], "a")
    second = _apply(first.obj, _deploy(containers=[{"name": "sidecar", "image": "envoy"}]), first.entries, "b")
    assert [c["name"] for c in second.obj["spec"]["containers"]] == ["app", "sidecar"]
    # a stops sending its container: it goes; b's stays
    third = _apply(second.obj, _deploy(), second.entries, "a", now=T2)
    assert third.obj["spec"]["containers"] == [{"name": "sidecar", "image": "envoy"}]
    # b changes a field of the item a owns: a conflict naming the item by its key
    with pytest.raises(errors.Conflict) as caught:
        _apply(second.obj, _deploy(containers=[{"name": "app", "image": "app:2"}]), second.entries, "b")
    assert caught.value.details["causes"][0]["field"] == '.spec.containers[name="app"].image'


def test_an_item_someone_else_still_has_fields_in_survives() -> None:
    first = _apply(None, _deploy(containers=[{"name": "app", "image": "app:1"}]), [], "a")
    second = _apply(first.obj, _deploy(containers=[{"name": "app", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]),
                    first.entries, "b")
    third = _apply(second.obj, _deploy(), second.entries, "a", now=T2)
    assert third.obj["spec"]["containers"] == [{"name": "app", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]


def test_atomic_maps_and_lists_are_replaced_whole() -> None:
    first = _apply(None, _deploy(selector={"matchLabels": {"a": "1"}}, args=["x", "y"]), [], "a")
    second = _apply(first.obj, _deploy(selector={"matchLabels": {"b": "2"}}, args=["z"]), first.entries, "a")
    assert second.obj["spec"]["selector"] == {"matchLabels": {"b": "2"}}
    assert second.obj["spec"]["args"] == ["z"]


def test_labels_removed_by_their_applier_and_an_empty_map_goes_with_them() -> None:
    config = _deploy(replicas=1)
    config["metadata"]["labels"] = {"team": "a"}
    first = _apply(None, config, [], "a")
    assert fs.to_fields_v1(first.entries[0].fields)["f:metadata"] == {"f:labels": {"f:team": {}}}
    second = _apply(first.obj, _deploy(replicas=1), first.entries, "a", now=T2)
    assert "labels" not in second.obj["metadata"]


def test_a_noop_apply_changes_nothing() -> None:
    first = _apply(None, _deploy(replicas=1), [], "a")
    again = _apply(first.obj, _deploy(replicas=1), first.entries, "a", now=T3)
    assert again.obj is first.obj or again.obj == first.obj
    assert again.entries == first.entries  # the timestamp too


def test_update_moves_changed_fields_and_keeps_timestamps_of_noops() -> None:
    created = am.update(None, _deploy(replicas=1, paused=True), [], manager="kubectl-create", api_version="apps/v1",
                        schema=SCHEMA, now=T1)
    assert fs.to_fields_v1(created[0].fields) == {"f:spec": {"f:paused": {}, "f:replicas": {}}}
    edited = am.update(_deploy(replicas=1, paused=True), _deploy(replicas=2, paused=True), created,
                       manager="kubectl-edit", api_version="apps/v1", schema=SCHEMA, now=T2)
    assert _owner(edited, REPLICAS) == {"kubectl-edit"}
    assert _owner(edited, ("f:spec", "f:paused")) == {"kubectl-create"}
    assert am.update(_deploy(replicas=2), _deploy(replicas=2), edited, manager="x", api_version="apps/v1",
                     schema=SCHEMA, now=T3) == edited


def test_update_of_a_map_owns_the_map_itself_as_upstream() -> None:
    new = {"metadata": {"name": "web", "labels": {"app": "web"}}}
    entries = am.update(None, new, [], manager="m", api_version="apps/v1", schema=SCHEMA, now=T1)
    assert fs.to_fields_v1(entries[0].fields) == {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}


def test_status_is_nobodys_on_the_main_resource() -> None:
    config = _deploy(replicas=1)
    config["status"] = {"replicas": 9}
    result = am.apply(None, config, [], manager="a", api_version="apps/v1", schema=SCHEMA, now=T1,
                      ignored=[("f:status",)])
    assert all(p[0] != "f:status" for p in result.entries[0].fields)


def test_update_entries_are_capped_into_ancient_changes() -> None:
    entries: list[am.Entry] = []
    obj: dict[str, Any] = _deploy()
    for n in range(12):
        new = copy.deepcopy(obj)
        new["spec"][f"f{n}"] = n
        entries = am.update(obj, new, entries, manager=f"m{n}", api_version="apps/v1", schema=SCHEMA,
                            now=f"2026-12-02T10:{n:02d}:00Z")
        obj = new
    names = [e.manager for e in entries]
    assert len(names) == am.MAX_UPDATE_ENTRIES and "ancient-changes" in names


def test_entries_encode_in_upstreams_order_and_decode_back() -> None:
    entries = [am.Entry("z", "Update", "v1", frozenset({("f:a",)}), T1),
               am.Entry("b", "Apply", "v1", frozenset({("f:b",)}), T2),
               am.Entry("a", "Update", "v1", frozenset({("f:c",)}), T1, "status"),
               am.Entry("empty", "Update", "v1", frozenset(), T1)]
    raw = am.encode_entries(entries)
    assert [(e["manager"], e["operation"]) for e in raw] == [("b", "Apply"), ("a", "Update"), ("z", "Update")]
    assert list(raw[1]) == ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1", "subresource"]
    decoded, problems = am.decode_entries(raw)
    assert problems == [] and sorted(decoded, key=lambda e: e.manager) == sorted(entries[:3], key=lambda e: e.manager)


@pytest.mark.parametrize(("raw", "field"), [
    ("x", "metadata.managedFields"),
    (["x"], "metadata.managedFields[0]"),
    ([{"manager": "m", "operation": "Delete", "fieldsType": "FieldsV1"}], "metadata.managedFields[0].operation"),
    ([{"manager": "m", "operation": "Apply", "fieldsType": "FieldsV2"}], "metadata.managedFields[0].fieldsType"),
    ([{"manager": "m" * 129, "operation": "Apply", "fieldsType": "FieldsV1"}], "metadata.managedFields[0].manager"),
    ([{"manager": "m", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"x:y": {}}}],
     "metadata.managedFields[0].fieldsV1"),
    ([{"manager": "m", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": []}],
     "metadata.managedFields[0].fieldsV1"),
])
def test_bad_entries_name_the_field(raw: Any, field: str) -> None:
    _, problems = am.decode_entries(raw)
    assert problems and problems[0].field == field


# --- properties ---

_names = st.sampled_from(["a", "b", "c"])
_configs = st.fixed_dictionaries({}, optional={
    "replicas": st.integers(0, 3), "paused": st.booleans(), "args": st.lists(st.sampled_from("xy"), max_size=2),
    "containers": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["p", "q"])},
                                                 optional={"image": st.sampled_from(["i1", "i2"])}),
                           max_size=2, unique_by=lambda c: c["name"]),
})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_names, _configs, st.booleans()), min_size=1, max_size=5))
def test_forced_applies_leave_each_applier_owning_exactly_its_config(steps: list) -> None:
    obj: Any = None
    entries: list[am.Entry] = []
    for manager, spec, force in steps:
        try:
            result = _apply(obj, _deploy(**spec), entries, manager, force=force)
        except errors.Conflict:
            assert not force
            continue
        obj, entries = result.obj, result.entries
        mine = [e for e in entries if e.manager == manager]
        assert mine and mine[0].fields == am.fields_of(_deploy(**spec), SCHEMA)
        # what the object holds is what the config says for the applier's fields
        for key, value in spec.items():
            if key != "containers":
                assert obj["spec"][key] == value
        # every owned path exists in the object (an applied `spec: {}` owns a spec that has fields now)
        flat = fs.prefixes(fs.flatten(obj, am.with_object_meta(SCHEMA)))
        for entry in entries:
            assert entry.fields <= flat


_JSONISH = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                        max_leaves=12)


@given(st.fixed_dictionaries({"apiVersion": st.just("v1"), "kind": st.just("ConfigMap"),
                              "metadata": st.fixed_dictionaries({"name": st.just("x")}, optional={
                                  "labels": st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=3)}),
                              "data": st.dictionaries(st.text(max_size=3), _JSONISH, max_size=4)}),
       st.sampled_from([(), (("f:data",),)]))
@settings(max_examples=100, deadline=None)
def test_a_create_owns_what_a_comparison_with_nothing_would_give(obj: dict[str, Any], ignored: tuple) -> None:
    """The create shortcut (no comparison) gives the writer exactly the fields a diff from {} does."""
    entries = am.update(None, obj, [], manager="m", api_version="v1", schema=None, now="t", ignored=ignored)
    root = am.with_object_meta(None)
    expected = am._owned(fs.compare(fs.flatten({}, root), fs.flatten(obj, root)).changed, ignored)
    assert [e.fields for e in entries] == ([expected] if expected else [])
