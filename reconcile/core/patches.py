"""The four PATCH flavours the API accepts: JSON merge, JSON patch, strategic merge and apply.

All functions return a new document and never mutate their arguments, so the API layer can
compare the result with the stored object (no-op detection) and retry on conflicts.

Strategic merge follows `k8s.io/apimachinery/pkg/util/strategicpatch`, but reads the list
strategies from the kind's openAPIV3Schema (`x-kubernetes-patch-strategy`,
`x-kubernetes-patch-merge-key`) instead of Go struct tags. Where a schema only carries
`x-kubernetes-list-type` (`map` with one key, or `set`), that is used as the fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonpatch

from reconcile.core import decoding, errors

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ELEMENT_ORDER = "$setElementOrder/"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"

_JSON_PATCH_REJECTED = "the server rejected our request due to an error in our request"

_MISSING: Any = object()

# ObjectMeta is never spelled out in a CRD schema, but kubectl's client-side apply knows its
# patch tags and sends `$deleteFromPrimitiveList/finalizers` etc.; these make them work.
_OBJECT_META_PROPERTIES: dict[str, Any] = {
    "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-patch-strategy": "merge"},
    "ownerReferences": {
        "type": "array",
        "items": {"type": "object"},
        "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-patch-merge-key": "uid",
    },
}


def deep_copy(value: Any) -> Any:
    """Copy a JSON document (dicts, lists, scalars); much faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


# --- RFC 7386 JSON merge patch ---


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, `null` deletes, everything else (arrays too) replaces."""
    if not isinstance(patch, dict):
        return deep_copy(patch)
    result = deep_copy(target) if isinstance(target, dict) else {}
    _merge_into(result, patch)
    return result


def _merge_into(result: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            if not isinstance(current, dict):
                current = {}
                result[key] = current
            _merge_into(current, value)
        else:
            result[key] = deep_copy(value)


# --- RFC 6902 JSON patch ---


# Upstream's maxJSONPatchOperations.
MAX_JSON_PATCH_OPERATIONS = 10_000
# What the `copy` operations of one patch may copy in all, in nodes as `decoding` counts them (the
# most a request body may hold): each copy can double the document, so without a bound a 2 KB patch
# of 40 copies builds 2**40 nodes on the API server's event loop. Upstream bounds the same with
# json-patch's AccumulatedCopySizeLimit.
MAX_COPIED_NODES = decoding.DEFAULT_LIMITS.max_nodes


class _CopyLimit(Exception):
    pass


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902 through `jsonpatch`; any failure (a failed `test` too) is 422 as upstream; more
    operations than upstream allows, or copies of more than `MAX_COPIED_NODES`, are 413."""
    if isinstance(ops, list) and len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise errors.RequestEntityTooLarge(f"The allowed maximum operations in a JSON patch is "
                                           f"{MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}")
    try:
        if not isinstance(ops, list):
            raise TypeError("a JSON patch must be an array of operations")
        doc = deep_copy(target)
        copied = 0
        for op in ops:  # one at a time, so every copy is measured against the document it copies from
            if isinstance(op, Mapping) and op.get("op") == "copy" and isinstance(op.get("from"), str):
                copied += _count_nodes(jsonpatch.JsonPointer(op["from"]).resolve(doc), MAX_COPIED_NODES - copied)
                if copied > MAX_COPIED_NODES:
                    raise _CopyLimit
            doc = jsonpatch.JsonPatch([op]).apply(doc, in_place=True)
        return doc
    except _CopyLimit:
        raise errors.RequestEntityTooLarge(f"Request entity too large: the JSON patch copies more than "
                                           f"{MAX_COPIED_NODES} values in all") from None
    except Exception as exc:  # noqa: BLE001 - the library raises many types; all mean "bad patch"
        raise errors.Invalid(_JSON_PATCH_REJECTED, details={"causes": [{"message": str(exc)}]}) from None


def _count_nodes(value: Any, budget: int) -> int:
    """Nodes in `value` (the value itself, map keys and values, list items), counting stops past `budget`."""
    count = 1
    stack = [value]
    while stack and count <= budget:
        node = stack.pop()
        if isinstance(node, dict):
            count += 2 * len(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            count += len(node)
            stack.extend(node)
    return count


# --- schema lookups ---


def _child(schema: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    """The schema of property `key` (or of the map's values) — empty when unknown."""
    if not schema:
        return {}
    props = schema.get("properties")
    if isinstance(props, Mapping) and isinstance(props.get(key), Mapping):
        return props[key]
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        return extra
    return {}


def _items(schema: Mapping[str, Any] | None) -> Mapping[str, Any]:
    items = (schema or {}).get("items")
    return items if isinstance(items, Mapping) else {}


def _strategies(schema: Mapping[str, Any]) -> tuple[frozenset[str], str | None]:
    """(patch strategies, merge key) of a field; falls back to x-kubernetes-list-type."""
    raw = schema.get("x-kubernetes-patch-strategy")
    if isinstance(raw, str):
        key = schema.get("x-kubernetes-patch-merge-key")
        strategies = frozenset(s.strip() for s in raw.split(",") if s.strip())
        return strategies, key if isinstance(key, str) else None
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        return frozenset({"merge"}), None
    keys = schema.get("x-kubernetes-list-map-keys")
    if list_type == "map" and isinstance(keys, list) and len(keys) == 1:
        return frozenset({"merge"}), str(keys[0])
    return frozenset(), None


def _with_object_meta(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """The root schema with ObjectMeta's patch tags filled in under `metadata`."""
    root = dict(schema or {})
    props = dict(root.get("properties") or {})
    meta = dict(props.get("metadata") or {})
    meta_props = dict(meta.get("properties") or {})
    for name, tags in _OBJECT_META_PROPERTIES.items():
        meta_props[name] = {**tags, **meta_props.get(name, {})}
    meta["properties"] = meta_props
    props["metadata"] = meta
    root["properties"] = props
    return root


# --- strategic merge patch ---


def strategic_merge_patch(target: Any, patch: Any, schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """Apply a strategic merge patch (kubectl apply/rollout/patch on built-in kinds)."""
    if not isinstance(patch, dict):
        raise errors.BadRequest("invalid JSON document: a strategic merge patch must be a JSON object")
    original = deep_copy(target) if isinstance(target, dict) else {}
    return _merge_map(original, deep_copy(patch), _with_object_meta(schema))


def _bad(message: str) -> errors.BadRequest:
    return errors.BadRequest(message)


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """mergeMap: both arguments are owned copies and may be changed in place."""
    directive = patch.pop(DIRECTIVE, None)
    if directive == "replace":
        return _merge_map({}, patch, schema)
    if directive == "delete":
        return {}
    if directive not in (None, "merge"):
        raise _bad(f"Unknown patch type: {directive} in map: {patch}")

    if RETAIN_KEYS in patch:
        retain = patch.pop(RETAIN_KEYS)
        if not isinstance(retain, list) or not all(isinstance(key, str) for key in retain):
            raise _bad("invalid patch format of retainKeys: it must be a list of field names")
        keep = set(retain)
        for key, value in patch.items():
            if value is not None and not key.startswith("$") and key not in keep:
                raise _bad("invalid patch format of retainKeys")
        for key in [k for k in original if k not in keep]:
            del original[key]

    for order_key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        _apply_set_element_order(original, patch, order_key, schema)

    for key, value in patch.items():
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            field = key[len(DELETE_FROM_PRIMITIVE_LIST) :]
            if not isinstance(value, list):
                raise _bad("invalid patch format of primitive list")
            current = original.get(field)
            if isinstance(current, list):
                removed = {_frozen(v) for v in value}
                original[field] = [v for v in current if _frozen(v) not in removed]
            continue
        if key in ("$setElementOrder", "$deleteFromPrimitiveList"):
            raise _bad(f"invalid patch format: {key} needs a field name")
        if value is None:
            original.pop(key, None)
            continue
        original[key] = _merge_value(original.get(key, _MISSING), value, _child(schema, key))
    return original


def _merge_value(current: Any, value: Any, schema: Mapping[str, Any]) -> Any:
    strategies, merge_key = _strategies(schema)
    if isinstance(value, dict):
        if "replace" in strategies or not isinstance(current, dict):
            current = {}
        return _merge_map(current, value, schema)
    if isinstance(value, list):
        if "merge" in strategies:
            return _merge_list(current if isinstance(current, list) else [], value, _items(schema), merge_key)
        return [_merge_map({}, v, _items(schema)) if isinstance(v, dict) else v for v in value]
    return value


def _frozen(value: Any) -> Any:
    """A hashable stand-in for a JSON value, equal to another's exactly when the values are equal
    (`==`): list merges look items up in dicts by it, so they stay linear in the list's length
    (scanning for each item made a patch of 8,000 containers take 34 s of the server's loop)."""
    if isinstance(value, dict):
        return ("map", frozenset((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", tuple(_frozen(v) for v in value))
    return value


def _identity(item: Any, merge_key: str | None) -> Any:
    """What identifies a list item: its merge key's value (maps in a keyed list), or itself; frozen."""
    if merge_key is not None and isinstance(item, dict):
        return _frozen(item.get(merge_key, _MISSING))
    return _frozen(item)


def _positions(items: list[Any], merge_key: str | None) -> dict[Any, int]:
    """Identity -> the index of the first item with it."""
    positions: dict[Any, int] = {}
    for index, item in enumerate(items):
        positions.setdefault(_identity(item, merge_key), index)
    return positions


def _merge_list(
    original: list[Any], patch: list[Any], item_schema: Mapping[str, Any], merge_key: str | None
) -> list[Any]:
    """mergeSlice: scalars merge as a set, maps merge by key; then patch order wins."""
    if not original and not patch:
        return []
    if any(isinstance(v, list) for v in (*original, *patch)):
        raise _bad("lists of lists are not supported")
    if not any(isinstance(v, dict) for v in (*original, *patch)):
        merged: list[Any] = []
        seen: set[Any] = set()
        for v in (*original, *patch):
            ident = _frozen(v)
            if ident not in seen:
                seen.add(ident)
                merged.append(v)
        return _normalize(merged, patch, original, None)

    if merge_key is None:
        raise _bad("cannot merge lists without merge key for type map")
    plain: list[dict[str, Any]] = []
    replace = False
    deleted: set[Any] = set()
    for item in patch:
        if not isinstance(item, dict):
            raise _bad(f"list element types are not identical: {patch}")
        directive = item.get(DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if merge_key not in item:
                raise _bad(f"map: {item} does not contain declared merge key: {merge_key}")
            deleted.add(_frozen(item[merge_key]))
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            rest = {k: v for k, v in item.items() if k != DIRECTIVE}
            if rest:
                plain.append(rest)
        else:
            raise _bad(f"Unknown patch type: {directive} in map: {item}")
    if replace:
        return [_merge_map({}, item, item_schema) for item in plain]
    if deleted:  # an item without the key has the key's value None, as upstream reads it
        original = [o for o in original if not (isinstance(o, dict) and _frozen(o.get(merge_key)) in deleted)]

    merged = list(original)
    positions = _positions(merged, merge_key)
    for item in plain:
        if merge_key not in item:
            raise _bad(f"map: {item} does not contain declared merge key: {merge_key}")
        at = positions.get(_identity(item, merge_key), -1)
        if at >= 0 and isinstance(merged[at], dict):
            merged[at] = _merge_map(merged[at], item, item_schema)
        else:
            merged.append(_merge_map({}, item, item_schema))
            positions.setdefault(_identity(item, merge_key), len(merged) - 1)
    return _normalize(merged, plain, original, merge_key)


def _normalize(
    merged: list[Any], order: list[Any], server_order: list[Any], merge_key: str | None
) -> list[Any]:
    """normalizeElementOrder: items named in `order` follow it; server-only items keep their
    relative places from `server_order`, interleaved as upstream's mergeSortedSlice does."""
    wanted, served = _positions(order, merge_key), _positions(server_order, merge_key)
    keyed = [(m, _identity(m, merge_key)) for m in merged]
    in_order = [(m, ident) for m, ident in keyed if ident in wanted]
    server_only = [(m, ident) for m, ident in keyed if ident not in wanted]
    in_order.sort(key=lambda pair: wanted[pair[1]])
    big = len(server_order)
    server_only.sort(key=lambda pair: served.get(pair[1], big))
    out: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(in_order):
        if i >= len(server_only):
            out.append(in_order[j][0])
            j += 1
        elif j >= len(in_order):
            out.append(server_only[i][0])
            i += 1
        else:
            li = served.get(server_only[i][1], -1)
            ri = served.get(in_order[j][1], -1)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(server_only[i][0])
                i += 1
            else:
                out.append(in_order[j][0])
                j += 1
    return out


def _apply_set_element_order(
    original: dict[str, Any], patch: dict[str, Any], order_key: str, schema: Mapping[str, Any]
) -> None:
    """mergePatchIntoOriginal: merge the list named by `$setElementOrder/<f>`, then order it."""
    order = patch.pop(order_key)
    field = order_key[len(SET_ELEMENT_ORDER) :]
    if not isinstance(order, list):
        raise _bad("invalid patch format of setElementOrder list")
    field_schema = _child(schema, field)
    strategies, merge_key = _strategies(field_schema)
    current = original.get(field)
    base = current if isinstance(current, list) else None
    patch_list = patch.get(field)
    if patch_list is not None and not isinstance(patch_list, list):
        raise _bad("invalid patch format of setElementOrder list")
    if patch_list is not None:
        del patch[field]
    if base is None and patch_list is None:
        return
    if patch_list is None:
        merged = list(base or [])
    elif "merge" in strategies:
        merged = _merge_list(list(base or []), patch_list, _items(field_schema), merge_key)
    else:
        merged = _merge_value(_MISSING, patch_list, field_schema)
    if merge_key is None and any(isinstance(v, dict) for v in merged):
        original[field] = merged
        return
    original[field] = _normalize(merged, order, base or [], merge_key)


# --- server-side apply (pragmatic: create-or-merge) ---


def apply_patch(live: Any, applied: Mapping[str, Any], schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """Server-side apply without field ownership: create from `applied`, or merge it onto `live`.

    Nothing the applied configuration leaves out is removed; `null`s are ignored; lists with
    keys merge by key, sets union, other lists and atomic maps are replaced.
    """
    if not isinstance(applied, Mapping):
        raise errors.BadRequest("the applied configuration must be an object")
    root = _with_object_meta(schema)
    if not isinstance(live, dict):
        return _apply_map({}, applied, root)
    return _apply_map(deep_copy(live), applied, root)


def _apply_keys(schema: Mapping[str, Any]) -> tuple[str, ...]:
    merge_key = schema.get("x-kubernetes-patch-merge-key")
    if isinstance(merge_key, str):
        return (merge_key,)
    keys = schema.get("x-kubernetes-list-map-keys")
    if schema.get("x-kubernetes-list-type") == "map" and isinstance(keys, list) and keys:
        return tuple(str(k) for k in keys)
    return ()


def _apply_map(live: dict[str, Any], applied: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in applied.items():
        if value is None:
            continue
        live[key] = _apply_value(live.get(key, _MISSING), value, _child(schema, key))
    return live


def _apply_value(current: Any, value: Any, schema: Mapping[str, Any]) -> Any:
    if isinstance(value, Mapping):
        atomic = schema.get("x-kubernetes-map-type") == "atomic" or "replace" in _strategies(schema)[0]
        base = current if isinstance(current, dict) and not atomic else {}
        return _apply_map(base, value, schema)
    if isinstance(value, list):
        return _apply_list(current if isinstance(current, list) else [], value, schema)
    return value


def _apply_list(current: list[Any], value: list[Any], schema: Mapping[str, Any]) -> list[Any]:
    item_schema = _items(schema)
    keys = _apply_keys(schema)
    strategies, _ = _strategies(schema)
    if keys and all(isinstance(v, Mapping) for v in value):
        out = list(current)
        positions: dict[Any, int] = {}  # the keys' values -> the first item with them (a dict)
        for index, existing in enumerate(out):
            if isinstance(existing, dict):
                positions.setdefault(tuple(_frozen(existing.get(k, _MISSING)) for k in keys), index)
        for item in value:
            ident = tuple(_frozen(item.get(k, _MISSING)) for k in keys)
            at = positions.get(ident, -1)
            if at >= 0:
                out[at] = _apply_map(out[at], item, item_schema)
            else:
                out.append(_apply_map({}, item, item_schema))
                positions[ident] = len(out) - 1
        return out
    if "merge" in strategies and not any(isinstance(v, Mapping | list) for v in value):
        out = list(current)
        seen = {_frozen(o) for o in out}
        for item in value:
            if _frozen(item) not in seen:
                seen.add(_frozen(item))
                out.append(item)
        return out
    return [_apply_value(_MISSING, v, item_schema) for v in value]
