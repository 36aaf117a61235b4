"""What the fuzzed requests carry: whole objects, the four kinds of patch, DeleteOptions and query
parameters, each drawn from the target's schema with mutations mixed in.

Every builder takes hypothesis' `draw` and the state the request is aimed at (the stored object),
so a patch names fields that exist, a JSON patch points at real paths, a resourceVersion is current
or stale on purpose: the requests the server must get right, not just garbage it can refuse early.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch
from hypothesis import strategies as st

from tests.fuzz import metadata, mutations, schemas, targets
from tests.fuzz.schemas import Path

Params = tuple[tuple[str, str], ...]
MUTATED_OF_TEN = 4  # documents in ten that get mutations (the rest are schema-valid)


def _mutating(draw: st.DrawFn) -> bool:
    # Large draws mutate: hypothesis favours small integers, and the valid documents are the ones
    # that must not be starved (they reach the deep code paths).
    return draw(st.integers(0, 9)) >= 10 - MUTATED_OF_TEN


def _paths(target: targets.Target) -> list[tuple[Path, schemas.Schema]]:
    return mutations.paths_of(target.schema)


def overlay(draw: st.DrawFn, doc: dict[str, Any], target: targets.Target, *, fill: bool, most: int = 3) -> None:
    """Set up to `most` schema-declared fields of `doc` to drawn schema-valid values."""
    paths = _paths(target)
    for _ in range(draw(st.integers(0, most))):
        path, sub = draw(st.sampled_from(paths))
        schemas.set_at(draw, doc, target.schema, path, draw(schemas.value(sub, len(path))), fill=fill)


def maybe_mutate(draw: st.DrawFn, doc: Any, target: targets.Target) -> Any:
    if isinstance(doc, dict) and _mutating(draw):
        mutations.mutate(draw, doc, target.schema)
    return doc


def resource_version(draw: st.DrawFn, current: str) -> Any:
    """A resourceVersion for a write precondition: the current one mostly, else stale or broken."""
    return draw(st.sampled_from([current, current, current, "1", str(int(current) - 1), "", "0", "-1", "abc",
                                 "99999999999999999999999", " 1", int(current), None]))


def write_params(draw: st.DrawFn, *, field_manager: bool = False) -> tuple[Params, bool]:
    """Query parameters of a write, and whether it is a dry run the server should honour."""
    params: list[tuple[str, str]] = []
    dry = False
    roll = draw(st.integers(0, 99))
    if roll < 10:
        params.append(("dryRun", "All"))
        dry = True
    elif roll < 13:
        params.append(("dryRun", draw(st.sampled_from(["true", "None", "all", "All,All", ""]))))
    if schemas.one_in(draw, 5):
        params.append(("fieldValidation", draw(st.sampled_from(["Strict", "Warn", "Ignore", "warn", "ignore", "", "x",
                                                                 "Strictest"]))))
    if field_manager or schemas.one_in(draw, 10):
        params.append(("fieldManager", draw(st.sampled_from(["fuzz", "fuzz", "kubectl", "a" * 200, "名前", "a\nb"]))))
    if schemas.one_in(draw, 20):
        params.append(draw(st.sampled_from([("pretty", "true"), ("force", "true"), ("force", "maybe"),
                                             ("unknown", "1"), ("timeout", "1s"), ("resourceVersion", "1")])))
    return tuple(params), dry


# --- whole objects (create, replace) ---------------------------------------------------------------------------


def whole_object(draw: st.DrawFn, target: targets.Target, start: dict[str, Any], name: str | None) -> dict[str, Any]:
    """`start` (a base object or the stored one) with drawn fields set, maybe mutated; named `name`."""
    doc = copy.deepcopy(start)
    overlay(draw, doc, target, fill=True)
    doc.setdefault("metadata", {})
    if name is None:
        doc["metadata"].pop("name", None)
        doc["metadata"]["generateName"] = "fz-"
    else:
        doc["metadata"]["name"] = name
    if schemas.one_in(draw, 4):
        doc["metadata"]["labels"] = metadata.valid_labels(draw)
    return maybe_mutate(draw, doc, target)


# --- merge patch --------------------------------------------------------------------------------------------------


def _metadata_of(doc: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(doc.get("metadata"), dict):
        doc["metadata"] = {}
    return doc["metadata"]


def merge_patch(draw: st.DrawFn, target: targets.Target, stored: dict[str, Any]) -> Any:
    patch: dict[str, Any] = {}
    overlay(draw, patch, target, fill=False)
    existing = [p for p in mutations.doc_paths(stored) if p[0] not in ("apiVersion", "kind")
                and all(isinstance(part, str) for part in p)]
    for _ in range(draw(st.integers(0, 2))):  # deletions of fields that exist
        path = draw(st.sampled_from(existing))
        node = patch
        for part in path[:-1]:
            node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
        node[path[-1]] = None
    if draw(st.booleans()):
        _metadata_of(patch)["labels"] = draw(st.dictionaries(metadata.LABEL_KEYS, st.one_of(metadata.LABEL_VALUES, st.none()),
                                                             max_size=3))
    if schemas.one_in(draw, 4):
        _metadata_of(patch)["resourceVersion"] = resource_version(draw, stored["metadata"]["resourceVersion"])
    if schemas.one_in(draw, 30):
        return draw(schemas.pick([[], [1], "x", 5, None, True]))
    return maybe_mutate(draw, patch, target)


# --- JSON patch -------------------------------------------------------------------------------------------------


def pointer(path: Path) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


BAD_POINTERS = ("", "/", "spec", "/~", "/a~2b", "/spec/containers/999", "/spec/containers/-1", "/spec/containers/01",
                "/metadata/resourceVersion", "/metadata/name", "/metadata/uid", "/kind", "/apiVersion", "/status",
                "/metadata/labels/a~1b", "/-", "/metadata/finalizers/-", "/spec/template/spec/containers/-",
                "/data/a", "/spec/ports/-", "/spec/x" * 60)
OPS = ("add", "remove", "replace", "move", "copy", "test")


def _json_patch_op(draw: st.DrawFn, target: targets.Target, doc: dict[str, Any]) -> dict[str, Any]:
    """One operation aimed at `doc` as the patch has made it so far: mostly at a node that exists
    (a `test` of its actual value passes), else at a place the schema declares, or at a bad pointer."""
    existing = mutations.doc_paths(doc)
    roll = draw(st.integers(0, 9))  # small draws, hypothesis' favourites, aim at what exists
    if roll < 6 and existing:
        path = draw(st.sampled_from(existing))
        kind = draw(st.sampled_from(["replace", "replace", "add", "test", "remove", "move", "copy"]))
        value: Any = mutations.get_at(doc, path) if kind == "test" and draw(st.integers(0, 4)) else \
            draw(schemas.value(schemas.schema_at(target.schema, path), len(path)))
    elif roll < 9:
        path, sub = draw(st.sampled_from(_paths(target)))
        path = tuple("-" if isinstance(p, int) and draw(st.booleans()) else
                     (draw(schemas.MAP_KEYS) if p == schemas.STAR else p) for p in path)
        kind, value = "add", draw(schemas.value(sub, len(path)))
    else:
        path, kind, value = (), draw(st.sampled_from(OPS)), draw(schemas.ANY_JSON)
    op: dict[str, Any] = {"op": kind, "path": pointer(path) if path else draw(st.sampled_from(BAD_POINTERS))}
    if kind in ("add", "replace", "test"):
        op["value"] = value
    if kind in ("move", "copy"):
        op["from"] = pointer(draw(st.sampled_from(existing))) if existing else "/spec"
    return op


def json_patch(draw: st.DrawFn, target: targets.Target, stored: dict[str, Any]) -> Any:
    if schemas.one_in(draw, 25):
        return copy_bomb(draw(st.integers(10, 40)))
    if schemas.one_in(draw, 25):
        return draw(schemas.pick([{}, {"op": "add"}, "x", 5, None]))
    ops: list[Any] = []
    if schemas.one_in(draw, 5):  # as kopf and kubectl do: first test the resourceVersion
        ops.append({"op": "test", "path": "/metadata/resourceVersion",
                    "value": resource_version(draw, stored["metadata"]["resourceVersion"])})
    doc = copy.deepcopy(stored)
    for _ in range(draw(st.integers(1, 4))):
        op = _json_patch_op(draw, target, doc)
        ops.append(op)
        try:  # follow the patch, so the next operation aims at the document as it then is
            doc = jsonpatch.apply_patch(doc, [op])
        except Exception:  # noqa: BLE001 - the server will refuse it; later ops aim at the last good document
            pass
    if schemas.one_in(draw, 15):
        ops.insert(draw(st.integers(0, len(ops))), draw(schemas.pick([
            {"op": "nope", "path": "/a"}, {"op": "add"}, {"path": "/a"}, "add", 5, [],
            {"op": "add", "path": "/metadata/labels/x", "value": "y", "extra": 1}, {"op": 5, "path": 5},
            {"op": "move", "from": "/spec", "path": "/spec/x"}, {"op": "add", "path": "/metadata/x", "value": 1}])))
    return ops


def copy_bomb(count: int) -> list[dict[str, Any]]:
    """Each op copies the labels map into itself: its size doubles with every op."""
    ops: list[dict[str, Any]] = [{"op": "add", "path": "/metadata/annotations", "value": {"seed": "x"}}]
    for index in range(count):
        ops.append({"op": "copy", "from": "/metadata/annotations", "path": f"/metadata/annotations/c{index}"})
    return ops


# --- strategic merge patch -------------------------------------------------------------------------------------


def _merge_lists(target: targets.Target) -> list[tuple[Path, schemas.Schema]]:
    return [(p, s) for p, s in _paths(target)
            if s.get("type") == "array" and (s.get("x-kubernetes-patch-merge-key") or s.get("x-kubernetes-list-type"))
            and schemas.STAR not in p and 0 not in p[:-1]]


def strategic_patch(draw: st.DrawFn, target: targets.Target, stored: dict[str, Any]) -> Any:
    patch = merge_patch(draw, target, stored)
    if not isinstance(patch, dict):
        return patch
    lists = _merge_lists(target)
    for _ in range(draw(st.integers(0, 2))):
        if not lists:
            break
        path, sub = draw(st.sampled_from(lists))
        key = sub.get("x-kubernetes-patch-merge-key") or (sub.get("x-kubernetes-list-map-keys") or [None])[0]
        items = draw(st.lists(schemas.value(sub.get("items") or {}, len(path)), max_size=2))
        directive = draw(schemas.pick([None, None, "delete", "replace", "merge", "bogus", 5, {}]))
        if directive is not None and items and isinstance(items[0], dict):
            items[0]["$patch"] = directive
        schemas.set_at(draw, patch, target.schema, path, items, fill=False)
        if draw(st.booleans()):
            order = [{key: item.get(key)} if key and isinstance(item, dict) else item for item in items]
            schemas.set_at(draw, patch, target.schema, (*path[:-1], f"$setElementOrder/{path[-1]}"),
                           draw(schemas.pick([order, "x", [5], [[]], [{}]])), fill=False)
    holders = [()] + [p for p in mutations.doc_paths(patch) if isinstance(mutations.get_at(patch, p), dict)]
    for _ in range(draw(st.integers(0, 2))):
        where = mutations.get_at(patch, draw(st.sampled_from(holders)))
        directive = draw(st.sampled_from(["$patch", "$retainKeys", "$deleteFromPrimitiveList/finalizers",
                                          "$setElementOrder/containers", "$setElementOrder", "$deleteFromPrimitiveList"]))
        where[directive] = draw(schemas.pick(["replace", "delete", "merge", "bogus", None, 5, [], ["a"], [{}],
                                                 [["x"]], {"a": 1}, ["data", "spec", "metadata"]]))
    return patch


# --- server-side apply --------------------------------------------------------------------------------------------


def apply_config(draw: st.DrawFn, target: targets.Target, name: str) -> Any:
    """An applied configuration: apiVersion, kind, name and some fields (from the base or drawn)."""
    base = target.base(name)
    doc: dict[str, Any] = {"apiVersion": base["apiVersion"], "kind": base["kind"], "metadata": {"name": name}}
    if draw(st.booleans()):
        doc = copy.deepcopy(base)
    overlay(draw, doc, target, fill=True)
    return maybe_mutate(draw, doc, target)


# --- DeleteOptions ---------------------------------------------------------------------------------------------


def hostile(draw: st.DrawFn) -> bool:
    """Whether this request's options may be broken (four in ten); the others are all valid, so the
    operation itself runs."""
    return draw(st.integers(0, 9)) >= 6


def choose(draw: st.DrawFn, good: list[Any], bad: list[Any], broken: bool) -> Any:
    return draw(schemas.pick(good + bad if broken else good))


def delete_options(draw: st.DrawFn, stored: dict[str, Any]) -> tuple[Any | None, Params, bool]:
    """(DeleteOptions body or None, query parameters, whether it is a dry run)."""
    meta = stored["metadata"]
    broken = hostile(draw)
    options: dict[str, Any] = {}
    if draw(st.booleans()):
        options.update({"apiVersion": choose(draw, ["v1", "meta.k8s.io/v1"], ["x", 5], broken), "kind": "DeleteOptions"})
    fields = {
        "gracePeriodSeconds": ([0, 1, 30, -1, 2**31, 2**63 - 1, None], [1.5, "5", True, 2**63]),
        "propagationPolicy": (["Background", "Foreground", "Orphan", None], ["orphan", "", 5, ["Orphan"]]),
        "orphanDependents": ([True, False, None], ["yes", 1]),
        "preconditions": ([{"uid": meta["uid"]}, {"resourceVersion": meta["resourceVersion"]}, {"uid": "other"},
                           {"resourceVersion": "1"}, None, {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]}],
                          [{"uid": 5}, {"resourceVersion": []}, "x", []]),
        "dryRun": ([["All"], [], None], [["All", "All"], ["Nope"], "All", 5, [5], [["All"]], {"All": 1}]),
    }
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
        good, bad = fields[name]
        options[name] = choose(draw, good, bad, broken)
    params: list[tuple[str, str]] = []
    dry = options.get("dryRun") in (["All"], ["All", "All"])
    if schemas.one_in(draw, 4):
        params.append(choose(draw, [("gracePeriodSeconds", "0"), ("gracePeriodSeconds", "-5"),
                                    ("propagationPolicy", "Foreground"), ("dryRun", "All")],
                             [("gracePeriodSeconds", "1.5"), ("gracePeriodSeconds", "x"), ("propagationPolicy", "nope"),
                              ("gracePeriodSeconds", "99999999999999999999999"), ("dryRun", "x"),
                              ("orphanDependents", "true")], broken))
        if tuple(params[-1]) == ("dryRun", "All"):
            dry = True
    body: Any | None = options if options or draw(st.booleans()) else None
    if broken and schemas.one_in(draw, 8):
        body = draw(schemas.pick([[], "x", 5, [{"dryRun": ["All"]}]]))
        dry = ("dryRun", "All") in [tuple(p) for p in params]
    return body, tuple(tuple(p) for p in params), dry


# --- reads ------------------------------------------------------------------------------------------------------


def read_resource_version(draw: st.DrawFn, current: int) -> str:
    """A resourceVersion for a read: unset, any, current, old, or broken. Never a future revision
    within int64: upstream answers that with a 504 after waiting (see the module docstring of
    test_reads.py)."""
    return draw(st.sampled_from(["", "0", str(current), str(current), "1", str(max(1, current - 3)), "-1", "abc",
                                 "1.5", "0x10", " 5", "99999999999999999999999", str(2**63), str(2**64), "١٢"]))


def label_selector(draw: st.DrawFn, known: list[dict[str, str]], broken: bool) -> str:
    pairs = sorted({(k, v) for labels in known for k, v in labels.items()})
    good = [f"{k}={v}" for k, v in pairs] + [f"{k}!={v}" for k, v in pairs] + [k for k, _ in pairs]
    good += [f"{k} in ({v},zz)" for k, v in pairs] + [f"!{k}" for k, _ in pairs]
    bad = ["a in ()", "a in (", "!", "=", "a==", "a=b=c", ",", "a,,b", "a in (b) c", "a notin b", "a>1", "a<x",
           "a=" + "b" * 70, "ключ=1", "a b", "x" * 400, "a in (" + ",".join("v" * 3 for _ in range(500)) + ")", "a!",
           "(a)", "a=(b)", "a in (b,)", "\x00", "a=b\n"]
    terms = draw(st.lists(st.sampled_from(good + bad if broken else good), min_size=1, max_size=3))
    return ",".join(terms)


FIELD_NAMES = ("metadata.name", "metadata.namespace")
ODD_FIELD_NAMES = ("spec.nodeName", "status.phase", "spec.restartPolicy", "status.podIP", "spec.replicas", "data.a",
                   "", "metadata.labels.app")


def field_selector(draw: st.DrawFn, names: list[str], broken: bool) -> str:
    terms = []
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(FIELD_NAMES + ODD_FIELD_NAMES if broken else FIELD_NAMES))
        op = choose(draw, ["=", "==", "!="], ["", "~", "=!"], broken)
        value = choose(draw, [*names[:3], "fuzz", "x"], ["", "a\\,b", "a,b", "\\", "a\\", "Running", "名前"], broken)
        terms.append(f"{field}{op}{value}")
    return ",".join(terms)


def forged_token(draw: st.DrawFn, real: str | None) -> str:
    """A continue token: real, damaged, or made up."""
    forged = base64.urlsafe_b64encode(json.dumps({"v": "meta.k8s.io/v1", "rv": draw(st.sampled_from([1, 0, -1, "1", 2**70])),
                                                  "start": draw(st.sampled_from(["a", "../x", "", "a/../../b", 5])),
                                                  "scope": "0" * 16}).encode()).decode().rstrip("=")
    options = ["x", "!!!", "eyJ9", forged, "=" * 5, "a" * 5000]
    if real:
        options += [real, real, real[:-2], real[::-1], real + "x", real.upper()]
    return draw(st.sampled_from(options))


def list_params(draw: st.DrawFn, *, current: int, known: list[dict[str, str]], names: list[str],
                token: str | None) -> tuple[Params, bool]:
    """Query parameters of a list (or a watch); whether it is a watch."""
    broken = hostile(draw)
    params: list[tuple[str, str]] = []
    pick = draw(st.lists(st.sampled_from(["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion",
                                          "resourceVersionMatch", "watch", "timeoutSeconds", "allowWatchBookmarks",
                                          "sendInitialEvents", "other"]), max_size=4, unique=True))
    if token is not None and "continue" not in pick:
        pick.append("continue")
    bools = (["true", "false"], ["x", "yes", "2"])
    for name in pick:
        if name == "labelSelector":
            params.append((name, label_selector(draw, known, broken)))
        elif name == "fieldSelector":
            params.append((name, field_selector(draw, names, broken)))
        elif name == "limit":
            params.append((name, choose(draw, ["1", "2", "3", "0", "500"],
                                        ["-1", "-5", "x", "1.5", "", "99999999999999999999999", str(2**63)], broken)))
        elif name == "continue":
            params.append((name, forged_token(draw, token) if broken or not token else token))
        elif name == "resourceVersion":
            value = read_resource_version(draw, current)
            params.append((name, value if broken else choose(draw, ["", "0", str(current), "1"], [], False)))
        elif name == "resourceVersionMatch":
            params.append((name, choose(draw, ["NotOlderThan", "Exact"], ["exact", "", "Any", "x"], broken)))
        elif name == "watch":
            params.append((name, choose(draw, ["true", "1", "false", "0", "True"], ["garbage", ""], broken)))
        elif name == "timeoutSeconds":
            params.append((name, choose(draw, ["1"], ["x", "-1", "1.5"], broken)))
        elif name in ("allowWatchBookmarks", "sendInitialEvents"):
            params.append((name, choose(draw, *bools, broken)))
        else:
            params.append(choose(draw, [("includeObject", "Object"), ("pretty", "1")], [("includeObject", "x"), ("x", "y")],
                                 broken))
    params = [tuple(p) for p in params]  # type: ignore[misc]
    watching = dict(params).get("watch") in ("true", "1", "True")
    if watching:
        # a watch must end by itself: timeoutSeconds=1 (or a broken value the server refuses first)
        params = [(k, v) for k, v in params if k != "timeoutSeconds"]
        params.append(("timeoutSeconds", choose(draw, ["1"], ["x", "1.5"], broken)))
    return tuple(params), watching
