"""Field sets: FieldsV1 as Kubernetes writes it, the paths an object sets, comparisons, set laws."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.core import fieldsets as fs

CONTAINERS = {
    "type": "array",
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["name"],
    "items": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "image": {"type": "string"},
            "ports": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                "items": {"type": "object"},
            },
            "args": {"type": "array", "items": {"type": "string"}},
        },
    },
}
SCHEMA = {
    "type": "object",
    "properties": {
        "metadata": {
            "type": "object",
            "properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "finalizers": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer"},
                "selector": {"type": "object", "x-kubernetes-map-type": "atomic"},
                "containers": CONTAINERS,
            },
        },
    },
}


def test_fields_v1_as_kubernetes_writes_it() -> None:
    obj = {
        "metadata": {"labels": {"app": "web"}, "finalizers": ["a/b"]},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "containers": [{"name": "nginx", "image": "nginx:1", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "args": ["-v"]}],
        },
    }
    fields = fs.object_fields(fs.flatten(obj, SCHEMA))
    tree = fs.to_fields_v1(fields)
    assert tree == {
        "f:metadata": {"f:finalizers": {'v:"a/b"': {}}, "f:labels": {"f:app": {}}},
        "f:spec": {
            "f:containers": {
                'k:{"name":"nginx"}': {
                    ".": {}, "f:args": {}, "f:image": {}, "f:name": {},
                    "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {},
                                                                            "f:protocol": {}}},
                },
            },
            "f:replicas": {},
            "f:selector": {},
        },
    }
    # the serialized order is Kubernetes': f: by name, then k:, v:, i:; "." first
    text = json.dumps(tree, separators=(",", ":"))
    assert text.startswith('{"f:metadata":{"f:finalizers":{"v:\\"a/b\\"":{}},"f:labels":{"f:app":{}}},"f:spec":')
    assert fs.from_fields_v1(tree) == fields


def test_children_order_f_then_k_then_v_then_i() -> None:
    tree = fs.to_fields_v1({("i:10",), ("i:2",), ('v:"x"',), ('k:{"a":1}',), ("f:z",), ("f:a",)})
    assert list(tree) == ["f:a", "f:z", 'k:{"a":1}', 'v:"x"', "i:2", "i:10"]


def test_decode_makes_elements_canonical() -> None:
    assert fs.from_fields_v1({'k:{"b": 1, "a": "x"}': {}}) == {('k:{"a":"x","b":1}',)}
    assert fs.from_fields_v1({"f:a": {".": {}, "f:b": {}}}) == {("f:a",), ("f:a", "f:b")}
    assert fs.from_fields_v1({"f:a": {"f:b": {}}}) == {("f:a", "f:b")}


@pytest.mark.parametrize("tree", [
    [], "x", {"f:a": []}, {"f:a": {".": {"f:x": {}}}}, {"q:a": {}}, {"k:[1]": {}}, {"k:{}": {}},
    {"k:not json": {}}, {"i:-1": {}}, {"i:x": {}}, {"v:": {}}, {"": {}},
])
def test_decode_refuses_what_kubernetes_would_not_decode(tree: object) -> None:
    with pytest.raises(fs.FieldsV1Error):
        fs.from_fields_v1(tree)


def test_path_strings_as_upstream_prints_them() -> None:
    assert fs.path_string(("f:spec", "f:replicas")) == ".spec.replicas"
    assert fs.path_string(("f:spec", "f:containers", 'k:{"name":"nginx"}', "f:image")) == \
        '.spec.containers[name="nginx"].image'
    assert fs.path_string(("f:spec", "f:ports", 'k:{"containerPort":80,"protocol":"TCP"}')) == \
        '.spec.ports[containerPort=80,protocol="TCP"]'
    assert fs.path_string(("f:metadata", "f:finalizers", 'v:"a"')) == '.metadata.finalizers[="a"]'
    assert fs.path_string(("f:args", "i:3")) == ".args[3]"


def test_a_key_field_left_out_takes_its_schema_default() -> None:
    ports = {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
             "items": {"type": "object", "properties": {"containerPort": {"type": "integer"},
                                                        "protocol": {"type": "string", "default": "TCP"}}}}
    schema = {"type": "object", "properties": {"ports": ports}}
    fields = fs.object_fields(fs.flatten({"ports": [{"containerPort": 80}]}, schema))
    assert ("f:ports", 'k:{"containerPort":80,"protocol":"TCP"}') in fields
    # an item with none of its key fields is not keyed by defaults alone: the list is atomic then
    assert fs.flatten({"ports": [{"name": "x"}]}, schema)[("f:ports",)] == [{"name": "x"}]


def test_lists_without_markers_are_atomic_and_keyless_items_fall_back_to_atomic() -> None:
    flat = fs.flatten({"spec": {"containers": [{"image": "x"}], "other": [1, 2]}}, SCHEMA)
    assert flat[("f:spec", "f:containers")] == [{"image": "x"}]
    assert flat[("f:spec", "f:other")] == [1, 2]


def test_empty_maps_are_members_and_nulls_set_nothing() -> None:
    fields = fs.object_fields(fs.flatten({"spec": {"securityContext": {}, "replicas": None}}, SCHEMA))
    assert fields == {("f:spec", "f:securityContext")}


def test_compare_finds_added_modified_removed() -> None:
    old = fs.flatten({"spec": {"replicas": 1, "containers": [{"name": "a", "image": "x"}]}}, SCHEMA)
    new = fs.flatten({"spec": {"replicas": 2, "containers": [{"name": "b", "image": "x"}]}}, SCHEMA)
    diff = fs.compare(old, new)
    assert diff.modified == {("f:spec", "f:replicas")}
    assert ("f:spec", "f:containers", 'k:{"name":"b"}') in diff.added
    assert ("f:spec", "f:containers", 'k:{"name":"a"}', "f:image") in diff.removed
    assert fs.compare(old, old).empty
    # a type change is a change (1 and True are equal in Python, not in JSON)
    assert fs.compare(fs.flatten({"a": 1}, {}), fs.flatten({"a": True}, {})).modified == {("f:a",)}


def test_prefixes_and_under() -> None:
    paths = {("f:a", "f:b", "f:c"), ("f:a", "f:d")}
    assert fs.prefixes(paths) == {("f:a",), ("f:a", "f:b"), ("f:a", "f:b", "f:c"), ("f:a", "f:d")}
    assert fs.under(paths, ("f:a", "f:b")) == {("f:a", "f:b", "f:c")}


# --- properties ---

_name = st.text("abcxyz.-/", min_size=1, max_size=4)
_scalar = st.one_of(st.integers(-5, 300), st.text("ab\"é", max_size=3), st.booleans(), st.none())
_element = st.one_of(
    _name.map(fs.field),
    st.dictionaries(_name, _scalar, min_size=1, max_size=2).map(fs.key),
    _scalar.map(fs.value),
    st.integers(0, 20).map(fs.index),
)
_paths = st.frozensets(st.lists(_element, min_size=1, max_size=4).map(tuple), max_size=12)


@given(_paths)
def test_encode_decode_roundtrip(fields: frozenset[tuple[str, ...]]) -> None:
    tree = fs.to_fields_v1(fields)
    assert fs.from_fields_v1(tree) == fields
    # and through JSON text, as it is stored
    assert fs.from_fields_v1(json.loads(json.dumps(tree))) == fields
    assert fs.to_fields_v1(fs.from_fields_v1(tree)) == tree


@given(_paths, _paths, _paths)
def test_set_algebra_laws(a: frozenset, b: frozenset, c: frozenset) -> None:
    assert a | b == b | a and a & b == b & a
    assert (a | b) | c == a | (b | c)
    assert a & (b | c) == (a & b) | (a & c)
    assert (a - b) & b == fs.EMPTY
    assert (a - b) | (a & b) == a
    # encoding distributes: the union's tree decodes to the union
    assert fs.from_fields_v1(fs.to_fields_v1(a | b)) == fs.from_fields_v1(fs.to_fields_v1(a)) | b


_doc = st.recursive(
    _scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_name, inner, max_size=3)),
    max_leaves=10,
)


@given(st.dictionaries(_name, _doc, max_size=4))
def test_object_fields_roundtrip_and_self_comparison(obj: dict) -> None:
    flat = fs.flatten(obj, {})
    fields = fs.object_fields(flat)
    assert fs.from_fields_v1(fs.to_fields_v1(fields)) == fields
    assert fs.compare(flat, flat).empty
    assert fs.compare({}, flat).added == frozenset(flat)
