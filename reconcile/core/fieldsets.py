"""Field sets as structured-merge-diff has them: which fields of an object a manager owns.

Server-side apply records, per field manager, the set of fields it set (`metadata.managedFields`,
`fieldsType: FieldsV1`). A field is named by a path of elements, written as Kubernetes writes them:

- `f:<name>`: a field of a struct or a key of a map;
- `k:<json>`: an item of an associative list (`x-kubernetes-list-type: map`), by its key fields
  (compact JSON, keys sorted);
- `v:<json>`: an item of a set (`x-kubernetes-list-type: set`), by its value;
- `i:<n>`: an item of a list without keys, by its index.

A set is a plain frozenset of such paths (tuples of element strings, canonical so that equal
elements compare equal), so the set algebra is Python's. `to_fields_v1` / `from_fields_v1` turn a
set into the FieldsV1 tree and back: `{"f:metadata":{"f:labels":{"f:app":{}}}}`, with `".":{}`
in a node that is itself a member and has members below it.

`flatten` walks an object with its schema's list and map markers; it is what both the set of
fields an applied configuration sets (`object_fields`) and the comparison of two versions of an
object (`compare`) are computed from. Pure: no I/O, no API types.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Path = tuple[str, ...]
FieldSet = frozenset[Path]
EMPTY: FieldSet = frozenset()

MEMBER = "."


class MapNode:
    """The value `flatten` gives a granular map that has entries (its entries are paths of their own)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MAP_NODE"


class ItemNode:
    """The value `flatten` gives an associative-list item (its fields are paths of their own)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ITEM_NODE"


MAP_NODE = MapNode()
ITEM_NODE = ItemNode()


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys, as structured-merge-diff writes `k:` and `v:` elements."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def field(name: str) -> str:
    return "f:" + name


def key(fields: Mapping[str, Any]) -> str:
    return "k:" + canonical_json(dict(fields))


def value(item: Any) -> str:
    return "v:" + canonical_json(item)


def index(position: int) -> str:
    return f"i:{position}"


# --- FieldsV1 ---


def _element_order(element: str) -> tuple[int, Any]:
    """Children are written `f:` by name, then `k:`, `v:`, `i:` (structured-merge-diff's order)."""
    kind, rest = element[:2], element[2:]
    if kind == "f:":
        return (0, rest)
    if kind == "k:":
        return (1, rest)
    if kind == "v:":
        return (2, rest)
    return (3, int(rest))


def to_fields_v1(fields: Iterable[Path]) -> dict[str, Any]:
    """The FieldsV1 JSON tree of a set (the empty set is `{}`)."""
    root: dict[str, Any] = {}
    members: set[int] = set()  # id() of the nodes that are members themselves
    for path in fields:
        node = root
        for element in path:
            node = node.setdefault(element, {})
        members.add(id(node))
    return _ordered(root, members)


def _ordered(node: dict[str, Any], members: set[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if node and id(node) in members:
        out[MEMBER] = {}
    for element in sorted(node, key=_element_order):
        out[element] = _ordered(node[element], members)
    return out


class FieldsV1Error(ValueError):
    """A FieldsV1 tree that is not one; the message says where."""


def from_fields_v1(tree: Any) -> FieldSet:
    """The set a FieldsV1 tree describes; `FieldsV1Error` for anything Kubernetes would not decode."""
    if not isinstance(tree, Mapping):
        raise FieldsV1Error("expected an object")
    out: set[Path] = set()
    _decode(tree, (), out)
    return frozenset(out)


def _decode(node: Mapping[str, Any], path: Path, out: set[Path]) -> None:
    if path and (not node or MEMBER in node):
        out.add(path)
    for raw, child in node.items():
        if raw == MEMBER:
            if child != {}:
                raise FieldsV1Error(f"the {MEMBER!r} member of {_shown(path)} must be an empty object")
            continue
        if not isinstance(child, Mapping):
            raise FieldsV1Error(f"{_shown(path + (str(raw),))}: expected an object")
        _decode(child, path + (parse_element(raw),), out)


def _shown(path: Path) -> str:
    return "/".join(path) or "the root"


def parse_element(raw: Any) -> str:
    """An element string made canonical; `FieldsV1Error` when it is not one."""
    if not isinstance(raw, str) or len(raw) < 2 or raw[1] != ":":
        raise FieldsV1Error(f"{raw!r} is not a path element (f:, k:, v: or i:)")
    kind, rest = raw[:2], raw[2:]
    if kind == "f:":
        return raw
    if kind == "i:":
        if not rest.isdigit() or not rest.isascii():
            raise FieldsV1Error(f"{raw!r}: the index must be a non-negative integer")
        return index(int(rest))
    if kind in ("k:", "v:"):
        try:
            parsed = json.loads(rest)
        except ValueError:
            raise FieldsV1Error(f"{raw!r}: not JSON") from None
        if kind == "k:":
            if not isinstance(parsed, dict) or not parsed:
                raise FieldsV1Error(f"{raw!r}: the key must be a non-empty JSON object")
            return key(parsed)
        return value(parsed)
    raise FieldsV1Error(f"{raw!r} is not a path element (f:, k:, v: or i:)")


# --- paths as text (conflict messages) ---


def path_string(path: Path) -> str:
    """How structured-merge-diff prints a path: `.spec.replicas`, `.spec.containers[name="nginx"].image`,
    `.metadata.finalizers[="a"]`, `.spec.args[3]`."""
    out: list[str] = []
    for element in path:
        kind, rest = element[:2], element[2:]
        if kind == "f:":
            out.append("." + rest)
        elif kind == "k:":
            fields = json.loads(rest)
            out.append("[" + ",".join(f"{name}={_go_value(fields[name])}" for name in sorted(fields)) + "]")
        elif kind == "v:":
            out.append(f"[={_go_value(json.loads(rest))}]")
        else:
            out.append(f"[{rest}]")
    return "".join(out)


def _go_value(item: Any) -> str:
    if isinstance(item, str):
        return json.dumps(item, ensure_ascii=False)
    return canonical_json(item)


# --- schemas ---


@dataclass(frozen=True, slots=True)
class ListKind:
    """How a list merges: `atomic` (replaced whole), `set` (items by value) or `map` (items by `keys`)."""

    kind: str
    keys: tuple[str, ...] = ()


ATOMIC = ListKind("atomic")


def child_schema(schema: Mapping[str, Any] | None, name: str) -> Mapping[str, Any]:
    """The schema of property `name` (or of a map's values); empty when unknown."""
    if not schema:
        return {}
    props = schema.get("properties")
    if isinstance(props, dict) and isinstance(props.get(name), dict):
        return props[name]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else {}


def items_schema(schema: Mapping[str, Any] | None) -> Mapping[str, Any]:
    items = (schema or {}).get("items")
    return items if isinstance(items, dict) else {}


def list_kind(schema: Mapping[str, Any]) -> ListKind:
    """`x-kubernetes-list-type` (+ `-list-map-keys`); where only patch tags are given, a merge key
    makes a map and a bare merge strategy a set; no marker at all is atomic, as upstream."""
    marker = schema.get("x-kubernetes-list-type")
    keys = schema.get("x-kubernetes-list-map-keys")
    if marker == "map" and isinstance(keys, list) and keys and all(isinstance(k, str) for k in keys):
        return ListKind("map", tuple(keys))
    if marker == "set":
        return ListKind("set")
    if marker == "atomic":
        return ATOMIC
    strategy = schema.get("x-kubernetes-patch-strategy")
    if isinstance(strategy, str) and "merge" in strategy.split(","):
        merge_key = schema.get("x-kubernetes-patch-merge-key")
        return ListKind("map", (merge_key,)) if isinstance(merge_key, str) else ListKind("set")
    return ATOMIC


def atomic_map(schema: Mapping[str, Any]) -> bool:
    return schema.get("x-kubernetes-map-type") == "atomic"


def is_map(schema: Mapping[str, Any]) -> bool:
    """A map (`additionalProperties`, no named properties) rather than a struct."""
    return isinstance(schema.get("additionalProperties"), dict) and not schema.get("properties")


def item_key(item: Mapping[str, Any], keys: tuple[str, ...],
             item_schema: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The key fields an associative-list item has (None when it has none of them). A key field the
    item leaves out takes its schema default, as upstream defaults an applied configuration first
    (a container port without `protocol` is `{"containerPort":80,"protocol":"TCP"}`)."""
    if not any(item.get(name) is not None for name in keys):
        return None
    found: dict[str, Any] = {}
    for name in keys:
        if item.get(name) is not None:
            found[name] = item[name]
        elif item_schema:
            default = child_schema(item_schema, name).get("default")
            if default is not None:
                found[name] = default
    return found


# --- objects to paths ---


def flatten(obj: Any, schema: Mapping[str, Any] | None) -> dict[Path, Any]:
    """Every path of `obj` under `schema`, with its value: scalars, atomic lists and maps and empty
    maps are leaves (their value); set items are leaves (True); associative-list items are
    `ITEM_NODE`s and granular maps (`additionalProperties`) with entries `MAP_NODE`s, with their
    contents as paths below them; a struct with fields is only its fields, as in upstream's sets.
    `null`s are left out, as an applied `null` sets nothing."""
    out: dict[Path, Any] = {}  # JSON documents: plain dicts and lists (isinstance of dict is the fast check)
    if isinstance(obj, dict):
        _walk_map(obj, schema or {}, (), out)
    return out


def _walk(item: Any, schema: Mapping[str, Any], path: Path, out: dict[Path, Any]) -> None:
    if isinstance(item, dict):
        if atomic_map(schema) or not item:
            out[path] = item
            return
        if is_map(schema):  # a map's presence is tracked; a struct's only through its fields (as upstream)
            out[path] = MAP_NODE
        _walk_map(item, schema, path, out)
    elif isinstance(item, list):
        _walk_list(item, schema, path, out)
    else:
        out[path] = item


def _walk_map(item: Mapping[str, Any], schema: Mapping[str, Any], path: Path, out: dict[Path, Any]) -> None:
    for name, child in item.items():
        if child is not None:
            _walk(child, child_schema(schema, name), path + (field(name),), out)


def _walk_list(items: list[Any], schema: Mapping[str, Any], path: Path, out: dict[Path, Any]) -> None:
    kinds = list_kind(schema)
    if kinds.kind == "set" and not any(isinstance(v, dict | list) for v in items):
        for item in items:
            out.setdefault(path + (value(item),), True)
        return
    if kinds.kind == "map" and items and all(isinstance(v, dict) for v in items):
        sub = items_schema(schema)
        found = [item_key(v, kinds.keys, sub) for v in items]
        if all(k is not None for k in found):
            for item, fields in zip(items, found, strict=True):
                at = path + (key(fields or {}),)
                if at in out:  # a duplicate key: the first item is the one tracked
                    continue
                out[at] = ITEM_NODE
                _walk_map(item, sub, at, out)
            return
    out[path] = items


def object_fields(flat: Mapping[Path, Any]) -> FieldSet:
    """The fields an object sets (what an applier of it owns): every path but granular-map nodes."""
    return frozenset(p for p, v in flat.items() if v is not MAP_NODE)


@dataclass(frozen=True, slots=True)
class Comparison:
    """What changed from one version of an object to the next."""

    added: FieldSet
    modified: FieldSet
    removed: FieldSet

    @property
    def changed(self) -> FieldSet:
        return self.added | self.modified

    @property
    def empty(self) -> bool:
        return not (self.added or self.modified or self.removed)


def compare(old: Mapping[Path, Any], new: Mapping[Path, Any]) -> Comparison:
    """Paths only in `new`, paths in both whose value differs, paths only in `old`."""
    added = frozenset(p for p in new if p not in old)
    removed = frozenset(p for p in old if p not in new)
    modified = frozenset(p for p, v in new.items() if p in old and not _same(old[p], v))
    return Comparison(added, modified, removed)


def _same(a: Any, b: Any) -> bool:
    if a is MAP_NODE or a is ITEM_NODE or b is MAP_NODE or b is ITEM_NODE:
        return a is b
    return type(a) is type(b) and a == b


def prefixes(fields: Iterable[Path]) -> frozenset[Path]:
    """Every path of `fields` and every path above one of them (the root excluded)."""
    out: set[Path] = set()
    for path in fields:
        for end in range(len(path), 0, -1):
            head = path[:end]
            if head in out:
                break
            out.add(head)
    return frozenset(out)


def under(fields: Iterable[Path], top: Path) -> FieldSet:
    """The paths of `fields` at or below `top`."""
    size = len(top)
    return frozenset(p for p in fields if p[:size] == top)
