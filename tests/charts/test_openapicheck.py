"""The OpenAPI walk `chart lint` runs over rendered objects (pure: schemas written here)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.charting import openapicheck

COMPONENTS: dict[str, Any] = {
    "Meta": {"type": "object", "properties": {"name": {"type": "string"},
                                              "labels": {"type": "object", "additionalProperties": {"type": "string"}}}},
    "Thing": {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"},
        "metadata": {"allOf": [{"$ref": "#/components/schemas/Meta"}]},
        "spec": {"type": "object", "properties": {
            "replicas": {"type": "integer"},
            "ratio": {"type": "number"},
            "on": {"type": "boolean"},
            "port": {"x-kubernetes-int-or-string": True},
            "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "anything": {},
            "self": {"$ref": "#/components/schemas/Thing"},
        }}}},
}
THING = COMPONENTS["Thing"]


def check(obj: dict[str, Any]) -> list[str]:
    return openapicheck.check(obj, THING, COMPONENTS)


def test_a_valid_object_passes_and_an_unknown_key_is_named_even_when_null() -> None:
    assert check({"apiVersion": "x/v1", "kind": "Thing", "metadata": {"name": "a", "labels": {"k": "v"}},
                  "spec": {"replicas": 2, "ratio": 1, "on": True, "port": "http", "items": [{"name": "n"}],
                           "free": {"any": {"thing": 1}}, "anything": [1, "x"], "self": {"spec": {"replicas": 1}},
                           "ratio2": None} | {"ratio": 2.5, "replicas": None}}) == ['unknown field "spec.ratio2"']


@pytest.mark.parametrize(("obj", "expected"), [
    ({"spec": {"replicaz": 1}}, ['unknown field "spec.replicaz"']),
    ({"metadata": {"nmae": "a"}}, ['unknown field "metadata.nmae"']),
    ({"spec": {"items": [{"name": "a"}, {"nmae": "b"}]}}, ['unknown field "spec.items[1].nmae"']),
    ({"spec": {"self": {"spec": {"x": 1}}}}, ['unknown field "spec.self.spec.x"']),
    ({"spec": {"replicas": "two"}},
     ['spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"']),
    ({"spec": {"replicas": True}},
     ['spec.replicas: Invalid value: "boolean": spec.replicas in body must be of type integer: "boolean"']),
    ({"spec": {"on": "yes"}},
     ['spec.on: Invalid value: "string": spec.on in body must be of type boolean: "string"']),
    ({"spec": {"items": {"name": "a"}}},
     ['spec.items: Invalid value: "object": spec.items in body must be of type array: "object"']),
    ({"metadata": {"labels": {"a": 1}}},
     ['metadata.labels.a: Invalid value: "integer": metadata.labels.a in body must be of type string: "integer"']),
    ({"spec": {"port": 1.5}},
     ['spec.port: Invalid value: "number": spec.port in body must be of type integer-or-string: "number"']),
])
def test_unknown_fields_and_wrong_types_are_named_by_path(obj: dict[str, Any], expected: list[str]) -> None:
    assert check(obj) == expected


def test_a_self_referring_schema_is_walked_to_a_bounded_depth() -> None:
    deep: dict[str, Any] = {"spec": {"replicas": 1}}
    for _ in range(500):
        deep = {"spec": {"self": deep}}
    assert check(deep) == []


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                         max_size=3), max_leaves=20)


@given(json_values)
def test_any_json_value_gives_a_list_of_lines_never_an_exception(value: Any) -> None:
    problems = openapicheck.check(value, THING, COMPONENTS)
    assert all(isinstance(p, str) and p for p in problems)


def test_schemas_fetches_the_index_and_each_group_version_once() -> None:
    calls: list[tuple[str, dict[str, str]]] = []
    doc = {"components": {"schemas": {"io.x.v1.Thing": {**THING, "x-kubernetes-group-version-kind": [
        {"group": "x.example", "version": "v1", "kind": "Thing"}]}}}}

    def fetch(path: str, params: dict[str, str]) -> dict[str, Any]:
        calls.append((path, params))
        if path == "/openapi/v3":
            return {"paths": {"apis/x.example/v1": {"serverRelativeURL": "/openapi/v3/apis/x.example/v1?hash=AB"}}}
        return doc

    schemas = openapicheck.Schemas(fetch)
    assert schemas.lookup("x.example/v1", "Thing") is not None
    assert schemas.lookup("x.example/v1", "Other") is None
    assert schemas.lookup("v1", "ConfigMap") is None  # not published: left to the dry run
    assert calls == [("/openapi/v3", {}), ("/openapi/v3/apis/x.example/v1", {"hash": "AB"})]
