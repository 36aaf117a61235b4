"""Hypothesis strategies for values that fit a Kubernetes structural schema (a CRD's openAPIV3Schema).

Our own rather than hypothesis-jsonschema: structural schemas are OpenAPI 3.0 with `x-kubernetes-*`
extensions (int-or-string, list-map keys, sets, preserve-unknown-fields, embedded resources,
nullable) that JSON Schema tools do not read, and the built-in schemas are large (a PodSpec nests
dozens of optional fields). This generator draws every required field and only a few optional ones
per object, stops descending past `MAX_DEPTH`, and keeps strings mostly to names the server's
semantic checks accept; so values are small, fast to draw, and mostly pass validation, which is
what lets a fuzzed write reach the deep code paths (defaulting, strategies, storage).

`schema_paths` lists every place a schema declares (for mutations and overlays that aim at a real
field rather than a random one); `set_at` puts a drawn value at such a place, building what lies
between from the schema too.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

Schema = dict[str, Any]


def pick(values: Sequence[Any]) -> st.SearchStrategy[Any]:
    """`sampled_from` for values that may be lists or maps: each draw is a fresh copy, because the
    documents built from draws are changed in place later (a shared `{}` would leak between examples)."""
    return st.sampled_from(values).map(copy.deepcopy)


def one_in(draw: st.DrawFn, chances: int) -> bool:
    """True about once in `chances` draws. Hypothesis favours the smallest draws (and keeps mutating
    examples that it found once), so the rare branch is the largest value, not 0."""
    return draw(st.integers(1, chances)) == chances


def fresh_empty() -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(dict)


# A path into a document: dict keys, 0 for "an item of this list", STAR for "a key of this map".
STAR = "*"
Path = tuple[str | int, ...]

MAX_DEPTH = 7  # below this many levels objects hold their required fields only
INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}

# Names most fields accept (DNS labels, keys, images), with a little free text mixed in.
NICE_NAMES = st.from_regex(r"\A[a-z]([a-z0-9-]{0,10}[a-z0-9])?\Z")
FREE_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
STRINGS = st.one_of(NICE_NAMES, NICE_NAMES, NICE_NAMES, FREE_TEXT)
MAP_KEYS = st.from_regex(r"\A[a-z]([a-z0-9.-]{0,8}[a-z0-9])?\Z")
TIMESTAMPS = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)).map(
    lambda moment: moment.replace(tzinfo=UTC, microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ"))
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**31), 2**31), st.floats(allow_nan=False, allow_infinity=False),
                         STRINGS)
ANY_JSON = st.recursive(JSON_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                             st.dictionaries(MAP_KEYS, inner, max_size=3)),
                        max_leaves=8)


def _types(schema: Schema) -> tuple[str, ...]:
    declared = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        return ("integer", "string")
    if isinstance(declared, list):
        return tuple(declared)
    return (declared,) if declared else ()


def _integers(schema: Schema) -> st.SearchStrategy[int]:
    low, high = INT_RANGES.get(schema.get("format", ""), INT_RANGES["int64"])
    if "minimum" in schema:
        low = max(low, int(schema["minimum"]) + (1 if schema.get("exclusiveMinimum") is True else 0))
    if "maximum" in schema:
        high = min(high, int(schema["maximum"]) - (1 if schema.get("exclusiveMaximum") is True else 0))
    small = st.integers(max(low, min(0, high)), min(high, max(low, 0) + 10))
    return st.one_of(small, small, st.integers(low, high))


def _numbers(schema: Schema) -> st.SearchStrategy[float | int]:
    low = schema.get("minimum")
    high = schema.get("maximum")
    return st.one_of(st.integers(int(low) if low is not None else -1000, int(high) if high is not None else 1000),
                     st.floats(low, high, allow_nan=False, allow_infinity=False))


def _strings(schema: Schema) -> st.SearchStrategy[str]:
    fmt = schema.get("format")
    if fmt == "date-time":
        return TIMESTAMPS
    if fmt == "byte":
        return st.binary(max_size=12).map(lambda raw: base64.b64encode(raw).decode())
    strings = STRINGS
    if "maxLength" in schema:
        strings = strings.map(lambda text, n=int(schema["maxLength"]): text[:n])
    if "minLength" in schema:
        strings = strings.map(lambda text, n=int(schema["minLength"]): text.ljust(n, "x"))
    return strings


# (id of the schema, depth) -> (the schema, its strategy): holding the schema keeps its id from
# being reused by another dict while the entry lives.
_CACHE: dict[tuple[int, int], tuple[Schema, st.SearchStrategy[Any]]] = {}


def value(schema: Schema, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values that fit `schema` (drawn small; `depth` counts the levels above, for the cut-off)."""
    ident = (id(schema), min(depth, MAX_DEPTH + 1))
    found = _CACHE.get(ident)
    if found is None:
        found = _CACHE[ident] = (schema, _build(schema, depth))
    return found[1]


def _build(schema: Schema, depth: int) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(list(schema["enum"]))
    choices: list[st.SearchStrategy[Any]] = []
    for kind in _types(schema) or (("object",) if "properties" in schema else ()):
        if kind == "integer":
            choices.append(_integers(schema) if not schema.get("x-kubernetes-int-or-string") else
                           st.integers(0, 100))
        elif kind == "number":
            choices.append(_numbers(schema))
        elif kind == "boolean":
            choices.append(st.booleans())
        elif kind == "string":
            choices.append(st.sampled_from(["25%", "1", "http", "100m", "1Gi"]) if schema.get("x-kubernetes-int-or-string")
                           else _strings(schema))
        elif kind == "array":
            choices.append(_arrays(schema, depth))
        elif kind == "object":
            choices.append(_objects(schema, depth))
    if not choices:  # no type: preserve-unknown-fields or an untyped placeholder
        choices.append(ANY_JSON if schema.get("x-kubernetes-preserve-unknown-fields") else fresh_empty())
    strategy = st.one_of(choices) if len(choices) > 1 else choices[0]
    if schema.get("nullable"):
        strategy = st.one_of(strategy, st.none())
    return strategy


def _arrays(schema: Schema, depth: int) -> st.SearchStrategy[list[Any]]:
    items = schema.get("items") if isinstance(schema.get("items"), dict) else EMPTY
    low = int(schema.get("minItems", 0))
    high = max(low, min(int(schema.get("maxItems", 3)), 0 if depth >= MAX_DEPTH else (2 if depth < 4 else 1)))
    unique_by: Callable[[Any], Any] | None = None
    if schema.get("x-kubernetes-list-type") == "map":
        keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
        unique_by = lambda item: tuple(repr(item.get(k)) if isinstance(item, dict) else repr(item) for k in keys)  # noqa: E731
    elif schema.get("x-kubernetes-list-type") == "set":
        unique_by = repr
    if low > high:
        high = low
    return st.lists(value(items, depth + 1), min_size=low, max_size=high, unique_by=unique_by)


def _objects(schema: Schema, depth: int) -> st.SearchStrategy[dict[str, Any]]:
    if schema.get("x-kubernetes-embedded-resource"):
        return st.fixed_dictionaries({"apiVersion": st.just("v1"), "kind": st.just("ConfigMap"),
                                      "metadata": st.fixed_dictionaries({"name": NICE_NAMES})})
    props: dict[str, Schema] = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    if not props and not isinstance(extra, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") or extra is True:
            return st.dictionaries(MAP_KEYS, ANY_JSON, max_size=2)
        return fresh_empty()
    required = [k for k in schema.get("required") or () if k in props]
    optional = [k for k in props if k not in required]
    budget = 0 if depth >= MAX_DEPTH else (3 if depth < 3 else 1)

    @st.composite
    def draw_object(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        chosen = list(required)
        if optional and budget:
            chosen += draw(st.lists(st.sampled_from(optional), unique=True, max_size=budget))
        for key in chosen:
            out[key] = draw(value(props[key], depth + 1))
        if isinstance(extra, dict) and depth < MAX_DEPTH:
            out.update(draw(st.dictionaries(MAP_KEYS, value(extra, depth + 1), max_size=2)))
        return out

    return draw_object()


# --- places in a schema ----------------------------------------------------------------------------------------


def schema_paths(schema: Schema, *, skip: tuple[str, ...] = ("apiVersion", "kind", "metadata"),
                 max_depth: int = 12) -> list[tuple[Path, Schema]]:
    """Every (path, sub-schema) the schema declares, parents before children."""
    out: list[tuple[Path, Schema]] = []

    def walk(node: Schema, path: Path) -> None:
        if len(path) >= max_depth:
            return
        for key, sub in (node.get("properties") or {}).items():
            if not path and key in skip:
                continue
            out.append(((*path, key), sub))
            walk(sub, (*path, key))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            out.append(((*path, STAR), extra))
            walk(extra, (*path, STAR))
        items = node.get("items")
        if isinstance(items, dict):
            out.append(((*path, 0), items))
            walk(items, (*path, 0))

    walk(schema, ())
    return out


EMPTY: Schema = {}  # "the schema does not say": one shared dict, so strategies for it are cached once


def schema_at(schema: Schema, path: Path) -> Schema:
    """The sub-schema at `path` (EMPTY when the schema does not say)."""
    node = schema
    for part in path:
        extra = node.get("additionalProperties")
        extra = extra if isinstance(extra, dict) else EMPTY
        if part == STAR:
            node = extra
        elif isinstance(part, int):
            node = node.get("items") if isinstance(node.get("items"), dict) else EMPTY
        else:
            node = (node.get("properties") or {}).get(part) or extra
    return node


def set_at(draw: st.DrawFn, doc: dict[str, Any], schema: Schema, path: Path, leaf: Any, *,
           fill: bool = True) -> None:
    """Put `leaf` at `path` in `doc` (in place). Missing or wrong-typed nodes on the way are drawn
    from their schema when `fill` (a whole object: what a PUT or create needs), or made empty
    (a patch: only what changes)."""
    node: Any = doc
    for index, part in enumerate(path):
        last = index == len(path) - 1
        sub = schema_at(schema, path[: index + 1])
        if isinstance(part, int):
            if not isinstance(node, list):
                return
            if not node and last:
                node.append(leaf)
                return
            if not node:
                node.append(draw(value(sub)) if fill else _empty_for(sub))
            position = draw(st.integers(0, len(node) - 1))
            if last:
                node[position] = leaf
                return
            if not isinstance(node[position], dict | list):
                node[position] = draw(value(sub)) if fill else _empty_for(sub)
            node = node[position]
            continue
        if not isinstance(node, dict):
            return
        key = part
        if part == STAR:
            existing = sorted(node)
            key = draw(st.sampled_from(existing) if existing and draw(st.booleans()) else MAP_KEYS)
        if last:
            node[key] = leaf
            return
        if not isinstance(node.get(key), dict | list):
            node[key] = draw(value(sub)) if fill else _empty_for(sub)
            if not isinstance(node[key], dict | list):
                node[key] = _empty_for(sub)
        node = node[key]


def _empty_for(schema: Schema) -> Any:
    return [] if "array" in _types(schema) else {}


