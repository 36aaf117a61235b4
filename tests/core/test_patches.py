"""Merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch and apply."""

from __future__ import annotations

import copy
import time
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.core import errors, patches

# --- strategies for JSON documents ---

_scalar = st.one_of(st.booleans(), st.integers(-10, 10), st.text("abc", max_size=3))
_key = st.sampled_from(["a", "b", "c", "d", "e"])


def _json(*, nulls: bool) -> st.SearchStrategy[Any]:
    leaf = st.one_of(_scalar, st.none()) if nulls else _scalar
    return st.recursive(
        leaf,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_key, inner, max_size=4)),
        max_leaves=12,
    )


_object = st.dictionaries(_key, _json(nulls=False), max_size=5)
_patch_object = st.dictionaries(_key, _json(nulls=True), max_size=5)


def _merge_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The RFC 7386 patch that turns `a` into `b` (the generator kubectl uses for CRs)."""
    diff: dict[str, Any] = {k: None for k in a if k not in b}
    for key, value in b.items():
        if key not in a:
            diff[key] = value
        elif isinstance(value, dict) and isinstance(a[key], dict):
            sub = _merge_diff(a[key], value)
            if sub:
                diff[key] = sub
        elif a[key] != value or type(a[key]) is not type(value):
            diff[key] = value
    return diff


# --- RFC 7386 ---


def test_merge_patch_basics() -> None:
    target = {"a": 1, "b": {"c": 2, "d": [1, 2]}, "e": "x"}
    out = patches.merge_patch(target, {"a": None, "b": {"c": 3, "d": [9]}, "f": {"g": None, "h": 1}})
    assert out == {"b": {"c": 3, "d": [9]}, "e": "x", "f": {"h": 1}}
    assert target == {"a": 1, "b": {"c": 2, "d": [1, 2]}, "e": "x"}  # untouched
    assert patches.merge_patch({"a": 1}, [1, 2]) == [1, 2]
    assert patches.merge_patch([1], {"a": 1}) == {"a": 1}
    assert patches.merge_patch({"a": {"b": 1}}, {"a": 5}) == {"a": 5}


@settings(max_examples=150, deadline=None)
@given(_object, _object)
def test_merge_patch_diff_law(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert patches.merge_patch(a, _merge_diff(a, b)) == b


@settings(max_examples=150, deadline=None)
@given(_object, _patch_object)
def test_merge_patch_idempotent_and_pure(a: dict[str, Any], p: dict[str, Any]) -> None:
    a_before, p_before = copy.deepcopy(a), copy.deepcopy(p)
    once = patches.merge_patch(a, p)
    assert patches.merge_patch(once, p) == once
    assert (a, p) == (a_before, p_before)
    for key, value in p.items():
        if value is None:
            assert key not in once  # null deletes
    once_mutated = patches.merge_patch(a, p)
    once_mutated["zzz"] = 1
    assert "zzz" not in a


# --- RFC 6902 ---


@settings(max_examples=100, deadline=None)
@given(_object, _object)
def test_json_patch_round_trip(a: dict[str, Any], b: dict[str, Any]) -> None:
    ops = jsonpatch.make_patch(a, b).patch
    before = copy.deepcopy(a)
    assert patches.json_patch(a, ops) == b
    assert a == before


def test_json_patch_kopf_finalizer_sequence() -> None:
    obj = {"metadata": {"resourceVersion": "104", "finalizers": ["a"]}}
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "104"},
        {"op": "add", "path": "/metadata/finalizers/-", "value": "kopf.zalando.org/KopfFinalizerMarker"},
    ]
    out = patches.json_patch(obj, ops)
    assert out["metadata"]["finalizers"] == ["a", "kopf.zalando.org/KopfFinalizerMarker"]
    assert obj["metadata"]["finalizers"] == ["a"]


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "test", "path": "/metadata/resourceVersion", "value": "1"}],
        [{"op": "remove", "path": "/nope"}],
        [{"op": "replace", "path": "/metadata/missing/x", "value": 1}],
        [{"op": "bogus", "path": "/a"}],
        [{"path": "/a"}],
        {"op": "add", "path": "/a", "value": 1},
        [{"op": "add", "path": "no-slash", "value": 1}],
    ],
)
def test_json_patch_failures_are_422(ops: Any) -> None:
    with pytest.raises(errors.Invalid) as info:
        patches.json_patch({"metadata": {"resourceVersion": "104"}}, ops)
    assert info.value.code == 422
    assert info.value.message == "the server rejected our request due to an error in our request"


def _copy_bomb(count: int) -> list[dict[str, Any]]:
    """Each op copies the map into itself: the document doubles with every op."""
    ops: list[dict[str, Any]] = [{"op": "add", "path": "/a", "value": {"seed": "x"}}]
    return ops + [{"op": "copy", "from": "/a", "path": f"/a/c{i}"} for i in range(count)]


def test_json_patch_copies_are_bounded() -> None:
    """Found writing tests/fuzz: 40 self-doubling copies (2 KB) took the API server's loop forever (18 took 2s)."""
    started = time.monotonic()
    with pytest.raises(errors.RequestEntityTooLarge, match="copies more than"):
        patches.json_patch({}, _copy_bomb(40))
    assert time.monotonic() - started < 2.0
    assert len(patches.json_patch({}, _copy_bomb(10))["a"]) == 11  # modest copies still work


def test_json_patch_operations_are_bounded() -> None:
    ops = [{"op": "add", "path": "/a", "value": 1}] * (patches.MAX_JSON_PATCH_OPERATIONS + 1)
    with pytest.raises(errors.RequestEntityTooLarge, match="maximum operations"):
        patches.json_patch({}, ops)
    assert patches.json_patch({}, ops[:-1]) == {"a": 1}


# --- strategic merge patch ---


def _merge_list(key: str | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "x-kubernetes-patch-strategy": "merge", **extra}
    if key:
        schema["x-kubernetes-patch-merge-key"] = key
    return schema


CONTAINER = {
    "type": "object",
    "properties": {
        "env": _merge_list("name", items={"type": "object"}),
        "ports": _merge_list("containerPort", items={"type": "object"}),
        "volumeMounts": _merge_list("mountPath", items={"type": "object"}),
        "args": {"type": "array", "items": {"type": "string"}},
    },
}
POD_SPEC = {
    "type": "object",
    "properties": {
        "containers": _merge_list("name", items=CONTAINER),
        "volumes": {
            **_merge_list("name", items={"type": "object"}),
            "x-kubernetes-patch-strategy": "merge,retainKeys",
        },
        "tolerations": {"type": "array", "items": {"type": "object"}},
    },
}
DEPLOYMENT = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "strategy": {"type": "object", "x-kubernetes-patch-strategy": "retainKeys"},
                "template": {"type": "object", "properties": {"spec": POD_SPEC}},
                "selector": {"type": "object", "x-kubernetes-patch-strategy": "replace"},
            },
        },
        "status": {
            "type": "object",
            "properties": {"conditions": _merge_list("type", items={"type": "object"})},
        },
    },
}


def _deployment(containers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a", "b"]},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "template": {"spec": {"containers": containers}},
        },
    }


def _smp(target: Any, patch: Any, schema: Any = DEPLOYMENT) -> Any:
    before = (copy.deepcopy(target), copy.deepcopy(patch))
    out = patches.strategic_merge_patch(target, patch, schema)
    assert (target, patch) == before, "strategic_merge_patch mutated its input"
    return out


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


def test_kubectl_client_side_apply_patch() -> None:
    live = _deployment(
        [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}], "resources": {}}]
    )
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "nginx"}],
                    "containers": [{"image": "nginx:1.26", "name": "nginx"}],
                }
            }
        },
    }
    out = _smp(live, patch)
    assert _containers(out) == [
        {"name": "nginx", "image": "nginx:1.26", "ports": [{"containerPort": 80}], "resources": {}}
    ]
    assert out["metadata"]["annotations"] == {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}
    assert out["metadata"]["labels"] == {"app": "web"}
    assert out["spec"]["replicas"] == 1


def test_kubectl_removes_and_reorders_containers() -> None:
    live = _deployment(
        [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}, {"name": "c", "image": "3"}]
    )
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "c"}, {"name": "d"}, {"name": "a"}],
                    "containers": [{"name": "d", "image": "4"}, {"$patch": "delete", "name": "b"}],
                }
            }
        }
    }
    assert [c["name"] for c in _containers(_smp(live, patch))] == ["c", "d", "a"]


def test_nested_merge_keys_and_replace_lists() -> None:
    live = _deployment(
        [
            {
                "name": "app",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 80, "name": "http"}],
                "args": ["x", "y"],
            }
        ]
    )
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                            "ports": [{"containerPort": 443}],
                            "args": ["z"],
                        }
                    ]
                }
            }
        }
    }
    (container,) = _containers(_smp(live, patch))
    assert {e["name"]: e["value"] for e in container["env"]} == {"A": "1", "B": "3", "C": "4"}
    assert [p["containerPort"] for p in container["ports"]] == [80, 443] or [
        p["containerPort"] for p in container["ports"]
    ] == [443, 80]
    assert container["args"] == ["z"]  # no strategy: replace


def test_map_and_list_directives() -> None:
    live = _deployment([{"name": "a", "image": "1"}, {"name": "b", "image": "2"}])
    out = _smp(
        live,
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "z", "image": "9"}, {"$patch": "replace"}]}}
            }
        },
    )
    assert _containers(out) == [{"name": "z", "image": "9"}]
    out = _smp(live, {"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}})
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    out = _smp(live, {"spec": {"strategy": {"$patch": "delete"}}})
    assert out["spec"]["strategy"] == {}
    out = _smp(live, {"spec": {"strategy": {"$patch": "merge", "type": "Recreate"}}})
    assert out["spec"]["strategy"] == {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}
    out = _smp(live, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    out = _smp(live, {"spec": {"replicas": None, "paused": True}})
    assert "replicas" not in out["spec"] and out["spec"]["paused"] is True
    with pytest.raises(errors.BadRequest):
        _smp(live, {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}})
    with pytest.raises(errors.BadRequest):
        _smp(live, {"spec": {"strategy": {"$patch": "explode"}}})
    with pytest.raises(errors.BadRequest):
        _smp(live, {"spec": {"template": {"spec": {"containers": [{"image": "no-name"}]}}}})
    with pytest.raises(errors.BadRequest):
        _smp(live, [1])


@pytest.mark.parametrize("retain", [[{}], [["type"]], "type", [1, "type"], None])
def test_retain_keys_must_be_a_list_of_names(retain: Any) -> None:
    """Found by tests/fuzz: `$retainKeys: [{}]` was a 500 (a dict is unhashable), now a 400."""
    live = _deployment([{"name": "a", "image": "1"}])
    with pytest.raises(errors.BadRequest, match="retainKeys"):
        _smp(live, {"spec": {"strategy": {"$retainKeys": retain, "type": "Recreate"}}})


def test_rollout_restart_patch() -> None:
    live = _deployment([{"name": "a", "image": "1"}])
    stamp = "2024-01-01T00:00:00Z"
    patch = {
        "spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}
    }
    out = _smp(live, patch)
    assert out["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] == stamp
    assert _containers(out) == [{"name": "a", "image": "1"}]


def test_finalizers_merge_as_set_without_schema() -> None:
    live = {"metadata": {"finalizers": ["a", "b"]}}
    patch = {
        "metadata": {
            "$deleteFromPrimitiveList/finalizers": ["b"],
            "$setElementOrder/finalizers": ["a", "c"],
            "finalizers": ["c"],
        }
    }
    assert _smp(live, patch, None) == {"metadata": {"finalizers": ["a", "c"]}}
    assert _smp(live, {"metadata": {"finalizers": ["b", "x"]}}, None)["metadata"]["finalizers"] == [
        "a",
        "b",
        "x",
    ]


def test_conditions_by_type_and_additional_properties() -> None:
    status = {
        "status": {
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "Progressing", "status": "True"}]
        }
    }
    out = _smp(status, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert {c["type"]: c["status"] for c in out["status"]["conditions"]} == {
        "Ready": "True",
        "Progressing": "True",
    }
    schema = {
        "properties": {
            "spec": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"items": _merge_list("id", items={"type": "object"})},
                },
            }
        }
    }
    obj = {"spec": {"x": {"items": [{"id": 1, "v": "a"}]}}}
    out = _smp(obj, {"spec": {"x": {"items": [{"id": 2, "v": "b"}]}}}, schema)
    # upstream's mergeSortedSlice puts items the live list has never seen first
    assert out["spec"]["x"]["items"] == [{"id": 2, "v": "b"}, {"id": 1, "v": "a"}]


def test_list_type_map_fallback() -> None:
    schema = {
        "properties": {
            "spec": {
                "properties": {
                    "rules": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {"type": "object"},
                    },
                    "atomic": {"type": "array", "x-kubernetes-list-type": "atomic"},
                }
            }
        }
    }
    obj = {"spec": {"rules": [{"name": "a", "x": 1}], "atomic": [1, 2]}}
    out = _smp(obj, {"spec": {"rules": [{"name": "a", "y": 2}], "atomic": [3]}}, schema)
    assert out == {"spec": {"rules": [{"name": "a", "x": 1, "y": 2}], "atomic": [3]}}


# --- hypothesis: strategic merge of lists by key ---

_names = st.sampled_from(["a", "b", "c", "d", "e", "f"])
_container = st.fixed_dictionaries(
    {"image": st.sampled_from(["1", "2", "3"])},
    optional={
        "tty": st.booleans(),
        "env": st.lists(
            st.fixed_dictionaries({"name": _names, "value": _names}),
            max_size=2,
            unique_by=lambda e: e["name"],
        ),
    },
)


@st.composite
def _container_list(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(st.lists(_names, unique=True, max_size=5))
    return [{"name": n, **draw(_container)} for n in names]


@settings(max_examples=120, deadline=None)
@given(_container_list(), _container_list())
def test_smp_merge_by_key_keeps_unmentioned(live: list[dict[str, Any]], patch: list[dict[str, Any]]) -> None:
    out = _containers(_smp(_deployment(live), {"spec": {"template": {"spec": {"containers": patch}}}}))
    by_name = {c["name"]: c for c in out}
    assert len(by_name) == len(out)
    assert set(by_name) == {c["name"] for c in live} | {c["name"] for c in patch}
    patched = {c["name"] for c in patch}
    for c in live:
        if c["name"] not in patched:
            assert by_name[c["name"]] == c
    for c in patch:
        assert by_name[c["name"]]["image"] == c["image"]
        if "env" in c:
            env = {e["name"]: e["value"] for e in by_name[c["name"]]["env"]}
            assert all(env[e["name"]] == e["value"] for e in c["env"])
    # patch order is kept among the patched items
    assert [c["name"] for c in out if c["name"] in patched] == [c["name"] for c in patch]


@settings(max_examples=120, deadline=None)
@given(_container_list(), _container_list(), st.data())
def test_smp_set_element_order_and_idempotence(
    live: list[dict[str, Any]], patch: list[dict[str, Any]], data: st.DataObject
) -> None:
    final = sorted({c["name"] for c in live} | {c["name"] for c in patch})
    order = data.draw(st.permutations(final))
    deleted = data.draw(st.lists(st.sampled_from(final), unique=True)) if final else []
    deleted = [n for n in deleted if n not in {c["name"] for c in patch}]
    body = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": n} for n in order if n not in deleted],
                    "containers": [*patch, *({"$patch": "delete", "name": n} for n in deleted)],
                }
            }
        }
    }
    once = _smp(_deployment(live), body)
    assert [c["name"] for c in _containers(once)] == [n for n in order if n not in deleted]
    assert _smp(once, body) == once


@settings(max_examples=120, deadline=None)
@given(
    st.lists(_names, unique=True, max_size=5),
    st.lists(_names, max_size=4),
    st.lists(_names, max_size=3),
)
def test_smp_primitive_set_lists(live: list[str], add: list[str], remove: list[str]) -> None:
    body: dict[str, Any] = {"metadata": {"finalizers": add, "$deleteFromPrimitiveList/finalizers": remove}}
    once = _smp({"metadata": {"finalizers": live}}, body, None)
    expected = ({*live} | {*add}) - {*remove}
    assert set(once["metadata"]["finalizers"]) == expected
    assert len(once["metadata"]["finalizers"]) == len(expected)
    assert _smp(once, body, None) == once


@settings(max_examples=100, deadline=None)
@given(_object, _object)
def test_smp_without_lists_agrees_with_merge_patch(a: dict[str, Any], b: dict[str, Any]) -> None:
    # with no list strategies a strategic merge patch is a JSON merge patch
    diff = _merge_diff(a, b)
    if "$patch" in str(diff) or "$retainKeys" in str(diff):
        return
    assert _smp(a, diff, {}) == patches.merge_patch(a, diff)


# --- long lists: linear, and ordered as the original (quadratic) algorithm ordered them ---


def _normalize_reference(merged: list[Any], order: list[Any], server_order: list[Any], key: str | None) -> list[Any]:
    """normalizeElementOrder as it was written first, scanning for every item: the oracle for the
    hash-indexed `patches._normalize`."""
    def ident(item: Any) -> Any:
        return item.get(key, "<missing>") if key is not None and isinstance(item, dict) else item

    def index(items: list[Any], item: Any) -> int:
        return next((i for i, other in enumerate(items) if ident(other) == ident(item)), -1)

    in_order = sorted((m for m in merged if index(order, m) >= 0), key=lambda m: index(order, m))
    server_only = sorted((m for m in merged if index(order, m) < 0),
                         key=lambda m: i if (i := index(server_order, m)) >= 0 else len(server_order))
    out: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(in_order):
        take_server = j >= len(in_order) or (
            i < len(server_only) and 0 <= index(server_order, server_only[i]) < index(server_order, in_order[j]))
        if take_server:
            out.append(server_only[i])
            i += 1
        else:
            out.append(in_order[j])
            j += 1
    return out


_list_item = st.one_of(st.integers(0, 3), st.booleans(), st.sampled_from(["a", "b"]), st.lists(st.integers(0, 1), max_size=2),
                       st.builds(lambda n, x: {"name": n, "x": x}, st.sampled_from(["a", "b", 1, None]), st.integers(0, 1)),
                       st.builds(dict))
_item_lists = st.lists(_list_item, max_size=6)


@given(_item_lists, _item_lists, _item_lists, st.sampled_from([None, "name"]))
def test_list_order_agrees_with_the_scanning_original(merged: list[Any], order: list[Any], server: list[Any],
                                                      key: str | None) -> None:
    assert patches._normalize(merged, order, server, key) == _normalize_reference(merged, order, server, key)


@pytest.mark.parametrize("how", ["strategic", "apply"])
def test_long_keyed_lists_merge_in_linear_time(how: str) -> None:
    """Found writing tests/fuzz: a patch of 8,000 containers took 34 s (strategic merge) and 49 s
    (apply) of the API server's event loop; every item was looked up by scanning the list."""
    live = _deployment([{"name": f"c{i}", "image": "old"} for i in range(0, 20_000, 2)])
    wanted = [{"name": f"c{i}", "image": "new"} for i in range(20_000)]
    started = time.monotonic()
    if how == "strategic":
        out = patches.strategic_merge_patch(live, {"spec": {"template": {"spec": {"containers": wanted}}}}, DEPLOYMENT)
    else:
        out = patches.apply_patch(live, {"spec": {"template": {"spec": {"containers": wanted}}}}, DEPLOYMENT)
    assert time.monotonic() - started < 3.0
    containers = _containers(out)
    assert len(containers) == 20_000 and all(c["image"] == "new" for c in containers)
    if how == "strategic":
        assert [c["name"] for c in containers] == [c["name"] for c in wanted]


def test_long_primitive_lists_merge_in_linear_time() -> None:
    live = {"metadata": {"finalizers": [f"f{i}" for i in range(0, 40_000, 2)]}}
    started = time.monotonic()
    out = patches.strategic_merge_patch(live, {"metadata": {"finalizers": [f"f{i}" for i in range(40_000)]}}, {})
    removed = patches.strategic_merge_patch(out, {"metadata": {
        "$deleteFromPrimitiveList/finalizers": [f"f{i}" for i in range(1, 40_000, 2)]}}, {})
    applied = patches.apply_patch(live, {"metadata": {"finalizers": [f"f{i}" for i in range(40_000)]}}, {})
    assert time.monotonic() - started < 3.0
    assert len(out["metadata"]["finalizers"]) == 40_000 and len(applied["metadata"]["finalizers"]) == 40_000
    assert removed["metadata"]["finalizers"] == live["metadata"]["finalizers"]


# --- server-side apply ---


def test_apply_creates_then_merges() -> None:
    applied = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": None}}
    created = patches.apply_patch(None, applied, DEPLOYMENT)
    assert created == {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    live = _deployment([{"name": "a", "image": "1", "tty": True}, {"name": "b", "image": "2"}])
    before = copy.deepcopy(live)
    applied = {
        "spec": {
            "replicas": 3,
            "template": {"spec": {"containers": [{"name": "a", "image": "5"}, {"name": "c"}]}},
        }
    }
    out = patches.apply_patch(live, applied, DEPLOYMENT)
    assert live == before
    assert out["spec"]["replicas"] == 3
    assert out["spec"]["strategy"] == live["spec"]["strategy"]
    assert _containers(out) == [
        {"name": "a", "image": "5", "tty": True},
        {"name": "b", "image": "2"},
        {"name": "c"},
    ]
    # selector is `replace`: atomic under apply
    out = patches.apply_patch(
        {"spec": {"selector": {"matchLabels": {"a": "1"}}}},
        {"spec": {"selector": {"matchLabels": {"b": "2"}}}},
        DEPLOYMENT,
    )
    assert out["spec"]["selector"] == {"matchLabels": {"b": "2"}}


def test_apply_list_map_keys() -> None:
    schema = {
        "properties": {
            "ports": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["port", "protocol"],
                "items": {"type": "object"},
            },
            "tags": {"type": "array", "x-kubernetes-list-type": "set"},
        }
    }
    live = {
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP", "name": "dns"}],
        "tags": ["x"],
    }
    out = patches.apply_patch(
        live, {"ports": [{"port": 53, "protocol": "TCP", "name": "dns-tcp"}], "tags": ["y"]}, schema
    )
    assert out["ports"] == [
        {"port": 53, "protocol": "UDP"},
        {"port": 53, "protocol": "TCP", "name": "dns-tcp"},
    ]
    assert out["tags"] == ["x", "y"]


def _shipped_schema(file_name: str) -> dict[str, Any]:
    import yaml

    from reconcile.core import paths

    path = paths.data_dir("crds") / file_name
    if not path.is_file():
        pytest.skip(f"{file_name} not shipped yet")
    crd = yaml.safe_load(path.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_kubectl_apply_against_shipped_deployment_schema() -> None:
    schema = _shipped_schema("apps-deployments.yaml")
    live = _deployment([{"name": "nginx", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}]}])
    patch = {
        "spec": {
            "strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None},
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "nginx"}, {"name": "side"}],
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.26",
                            "$setElementOrder/env": [{"name": "B"}],
                            "env": [{"name": "B", "value": "2"}, {"$patch": "delete", "name": "A"}],
                        },
                        {"name": "side", "image": "busybox"},
                    ],
                }
            },
        }
    }
    out = _smp(live, patch, schema)
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    assert _containers(out) == [
        {"name": "nginx", "image": "nginx:1.26", "env": [{"name": "B", "value": "2"}]},
        {"name": "side", "image": "busybox"},
    ]
    assert _smp(out, patch, schema) == out
