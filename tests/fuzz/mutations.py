"""Hostile changes to an otherwise valid document: what a buggy or malicious client sends.

Each mutation aims at one place (a path that exists in the document, or one the schema declares) and
breaks it in one way: a wrong type, an unknown field, a null, a number out of range or a float where
an integer goes, a deep or wide structure, an odd string (very long, control characters, unicode),
a dropped field, a part shared with another place (a YAML alias), or hostile metadata (`metadata.py`). One to three per document, so most of the
document stays valid and the broken part is judged where the server would reach it.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.fuzz import metadata, schemas
from tests.fuzz.schemas import Path, Schema

HOSTILE_INTS = (-1, 0, 2**31 - 1, 2**31, -(2**31) - 1, 2**53 + 1, 2**63 - 1, -(2**63), 2**63, 2**64, 10**30,
                -(10**30))
HOSTILE_FLOATS = (0.5, 1.0, 2.0, -0.0, 1e-300, 1e300, 1.5e19, -2.5)
HOSTILE_STRINGS = ("", " ", "\x00", "a\x00b", "\r\n", "line\nbreak", "\t", "\x7f", "\x1b[31m", "\u202e", "\ufeff",
                   "\u0085", "\u2028", "名前", "😀" * 8, "\U0010ffff", "é", "A", "UPPER", "-a-", ".", "..", "a/b", "a b",
                   "a%2Fb", "<script>", "${HOME}", "{{ . }}", "0", "true", "null", "1e3", "\\", '"', "'", "a" * 64,
                   "a" * 254, "a" * 5000)
HUGE_LENGTHS = (70_000, 300_000, 1_100_000)
# Levels of nesting for `deep`, around the server's limit of 100; deeper bodies go as raw bytes
# (bodies.py): serializing them here would exceed this process's own recursion limit.
DEEP = (5, 60, 98, 99, 100, 101, 150)
OTHER_TYPES = schemas.pick([0, 1, -7, 1.5, True, False, "", "x", "1", [], [1, "a"], {}, {"a": 1}, [[]], [{}]])


def deep_value(depth: int, kind: str) -> Any:
    """A list or map nested `depth` levels."""
    node: Any = "leaf"
    for _ in range(depth):
        node = [node] if kind == "list" else {"a": node}
    return node


def doc_paths(doc: Any, *, limit: int = 400) -> list[Path]:
    """Paths of the nodes in `doc` (not the root), parents first."""
    out: list[Path] = []
    stack: list[tuple[Any, Path]] = [(doc, ())]
    while stack and len(out) < limit:
        node, path = stack.pop(0)
        if isinstance(node, dict):
            children = [((*path, k), v) for k, v in node.items()]
        elif isinstance(node, list):
            children = [((*path, i), v) for i, v in enumerate(node)]
        else:
            continue
        for child_path, child in children:
            out.append(child_path)
            stack.append((child, child_path))
    return out


def get_at(doc: Any, path: Path) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def put_at(doc: Any, path: Path, new: Any) -> None:
    get_at(doc, path[:-1])[path[-1]] = new


def drop_at(doc: Any, path: Path) -> None:
    parent = get_at(doc, path[:-1])
    del parent[path[-1]]


def _schema_typed(schema: Schema, wanted: str) -> list[Path]:
    return [p for p, sub in paths_of(schema) if sub.get("type") == wanted and schemas.STAR not in p]


_PATHS: dict[int, tuple[Schema, list[tuple[Path, Schema]]]] = {}  # the schema held, as in schemas._CACHE


def paths_of(schema: Schema) -> list[tuple[Path, Schema]]:
    """`schemas.schema_paths` of a long-lived schema, computed once."""
    found = _PATHS.get(id(schema))
    if found is None:
        found = _PATHS[id(schema)] = (schema, schemas.schema_paths(schema))
    return found[1]


def hostile_string(draw: st.DrawFn) -> str:
    if schemas.one_in(draw, 20):
        return "x" * draw(st.sampled_from(HUGE_LENGTHS))
    return draw(st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(max_size=40)))


def hostile_number(draw: st.DrawFn) -> int | float:
    return draw(st.one_of(st.sampled_from(HOSTILE_INTS), st.sampled_from(HOSTILE_FLOATS),
                          st.integers(-(2**64), 2**64), st.floats(allow_nan=False, allow_infinity=False)))


def mutate(draw: st.DrawFn, doc: dict[str, Any], schema: Schema, *, count: int | None = None) -> list[str]:
    """Apply one to three mutations to `doc` in place; returns their names (for failure reports)."""
    done: list[str] = []
    for _ in range(count if count is not None else draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(_KINDS))
        done.append(kind)
        _MUTATIONS[kind](draw, doc, schema)
    return done


def _pick(draw: st.DrawFn, doc: Any) -> Path | None:
    """A node of `doc`, apiVersion and kind aside (`typemeta` breaks those), deeper ones first: the
    simplest draws, which hypothesis favours, then land inside the object, not at its top."""
    paths = sorted((p for p in doc_paths(doc) if p[0] not in ("apiVersion", "kind")), key=len, reverse=True)
    return draw(st.sampled_from(paths)) if paths else None


def _retype(draw: st.DrawFn, doc: dict[str, Any], schema: Schema) -> None:
    path = _pick(draw, doc)
    if path is not None:
        put_at(doc, path, draw(OTHER_TYPES.filter(lambda v, old=get_at(doc, path): type(v) is not type(old))))


def _unknown_field(draw: st.DrawFn, doc: dict[str, Any], schema: Schema) -> None:
    holders = [()] + [p for p in doc_paths(doc) if isinstance(get_at(doc, p), dict)]
    where = get_at(doc, draw(st.sampled_from(holders)))
    key = draw(st.one_of(st.sampled_from(["unknown", "$patch", "", "metadata", "status", "x-y", "Spec", "名前",
                                          "a\nb", "quote\"d"]), st.text(min_size=1, max_size=10)))
    where[key] = draw(st.one_of(schemas.ANY_JSON, st.sampled_from(HOSTILE_STRINGS)))


def _null(draw: st.DrawFn, doc: dict[str, Any], schema: Schema) -> None:
    path = _pick(draw, doc)
    if path is not None:
        put_at(doc, path, None)


def _number(draw: st.DrawFn, doc: dict[str, Any], schema: Schema) -> None:
    declared = _schema_typed(schema, "integer") + _schema_typed(schema, "number")
    number = hostile_number(draw)
    if declared and draw(st.booleans()):
        schemas.set_at(draw, doc, schema, draw(st.sampled_from(declared)), number)
        return
    path = _pick(draw, doc)
    if path is not None:
        put_at(doc, path, number)


def _string(draw: st.DrawFn, doc: dict[str, Any], schema: Schema) -> None:
    declared = _schema_typed(schema, "string")
    text = hostile_string(draw)
    if declared and draw(st.booleans()):
        schemas.set_at(draw, doc, schema, draw(st.sampled_from(declared)), text)
        return
    strings = [p for p in doc_paths(doc) if isinstance(get_at(doc, p), str)]
    if strings:
        put_at(doc, draw(st.sampled_from(strings)), text)


def _deep(draw: st.DrawFn, doc: dict[str, Any], schema: Schema) -> None:
    path = _pick(draw, doc) or ("extra",)
    put_at(doc, path, deep_value(draw(st.sampled_from(DEEP)), draw(st.sampled_from(["list", "map"]))))


def _wide(draw: st.DrawFn, doc: dict[str, Any], schema: Schema) -> None:
    path = _pick(draw, doc) or ("extra",)
    size = draw(st.sampled_from([1000, 20_000, 60_000]))
    wide: Any = list(range(size)) if draw(st.booleans()) else {f"k{i}": str(i) for i in range(size // 2)}
    put_at(doc, path, wide)


def _drop(draw: st.DrawFn, doc: dict[str, Any], schema: Schema) -> None:
    path = _pick(draw, doc)
    if path is not None:
        drop_at(doc, path)


def _container_ids(value: Any) -> set[int]:
    """The ids of `value` and of every map and list inside it."""
    found: set[int] = set()
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict | list) and id(item) not in found:
            found.add(id(item))
            todo.extend(item.values() if isinstance(item, dict) else item)
    return found


def _alias(draw: st.DrawFn, doc: dict[str, Any], schema: Schema) -> None:
    """Put one map or list of the document at a second place too (the same object: YAML writes it as
    an anchor and an alias, JSON twice). The server must treat the two as separate."""
    shared = [p for p in doc_paths(doc) if isinstance(get_at(doc, p), dict | list)]
    source = ("metadata",) if "metadata" in doc and draw(st.booleans()) else (draw(st.sampled_from(shared)) if shared else None)
    if source is None:
        return
    shared_part = get_at(doc, source)
    # never inside the source itself, at any of its places: that would be a cycle. By identity, since
    # an earlier alias may have put the source, or a part of it, at a second place too.
    inside = _container_ids(shared_part)
    places = [p for p in doc_paths(doc) if p[0] not in ("apiVersion", "kind") and p != source
              and not any(id(get_at(doc, p[:depth])) in inside for depth in range(1, len(p)))]
    if places:
        put_at(doc, draw(st.sampled_from(places)), shared_part)


def _metadata(draw: st.DrawFn, doc: dict[str, Any], schema: Schema) -> None:
    if not isinstance(doc.get("metadata"), dict):
        doc["metadata"] = {}
    metadata.mutate(draw, doc["metadata"])


def _type_meta(draw: st.DrawFn, doc: dict[str, Any], schema: Schema) -> None:
    key = draw(st.sampled_from(["apiVersion", "kind"]))
    doc[key] = draw(schemas.pick(["v1", "apps/v1", "Pod", "ConfigMap", "", None, 5, ["v1"], "v2", "nope/v1",
                                     "fuzz.reconcile.dev/v1", "Gadget", "Deployment"]))


_MUTATIONS = {
    "retype": _retype, "unknown": _unknown_field, "null": _null, "number": _number, "string": _string,
    "deep": _deep, "wide": _wide, "drop": _drop, "metadata": _metadata, "typemeta": _type_meta, "alias": _alias,
}
# Drawn from with repeats as weights: metadata is where most of the server's own rules live.
_KINDS = (*_MUTATIONS, "metadata", "retype", "unknown")
