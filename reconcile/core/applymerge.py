"""Server-side apply and field ownership (`metadata.managedFields`), as upstream's fieldmanager does it.

Every write records who set which fields. An *Update* (create, PUT, any non-apply PATCH) never
conflicts: the fields it changed move to its manager. An *Apply* of a configuration makes the
applier own exactly the fields the configuration sets; fields it applied before and no longer sends
are removed from the object unless another manager owns them too; and changing a field another
manager owns is a conflict (409, naming the field and the manager) unless the applier forces it,
which takes the field over. Equal values are shared ownership, not a conflict.

Pure functions over JSON documents and `Entry` lists; the API layer decodes `managedFields` with
`decode_entries`, calls `apply` / `update`, and stores `encode_entries` of the result.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from reconcile.core import errors, fieldsets, patches
from reconcile.core.fieldsets import FieldSet, Path

APPLY = "Apply"
UPDATE = "Update"
FIELDS_V1 = "FieldsV1"
MAX_MANAGER_LENGTH = 128
# Upstream caps the Update entries of an object; older ones merge into this one.
MAX_UPDATE_ENTRIES = 10
ANCIENT_CHANGES = "ancient-changes"

# Never owned by anyone (upstream's stripmeta): the type and the metadata the server keeps.
_STRIPPED: frozenset[Path] = frozenset(
    {("f:apiVersion",), ("f:kind",), ("f:metadata",)}
    | {("f:metadata", "f:" + name) for name in ("name", "namespace", "creationTimestamp", "selfLink", "uid",
                                                 "clusterName", "generation", "managedFields", "resourceVersion",
                                                 "deletionTimestamp", "deletionGracePeriodSeconds")}
)

# ObjectMeta's markers, which a CRD schema does not spell out under its root `metadata`.
_OBJECT_META: dict[str, Any] = {
    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
    "ownerReferences": {"type": "array", "items": {"type": "object"}, "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["uid"]},
}


def with_object_meta(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """The root schema with ObjectMeta's list and map markers under `metadata`."""
    root = dict(schema or {})
    props = dict(root.get("properties") or {})
    meta = dict(props.get("metadata") or {})
    meta_props = dict(meta.get("properties") or {})
    for name, markers in _OBJECT_META.items():
        meta_props[name] = {**markers, **meta_props.get(name, {})}
    meta["properties"] = meta_props
    props["metadata"] = meta
    root["properties"] = props
    return root


# --- entries ---


@dataclass(frozen=True, slots=True)
class Entry:
    """One managedFields entry, its FieldsV1 decoded."""

    manager: str
    operation: str
    api_version: str
    fields: FieldSet
    time: str | None = None
    subresource: str = ""

    @property
    def identity(self) -> tuple[str, ...]:
        """Apply entries are one per manager and subresource; Update entries one per apiVersion too."""
        if self.operation == APPLY:
            return (self.manager, APPLY, self.subresource)
        return (self.manager, UPDATE, self.api_version, self.subresource)

    def describe(self) -> str:
        """How upstream names a manager in conflict messages (conflict.go printManager)."""
        text = _go_quote(self.manager)
        if self.subresource:
            text += f" with subresource {_go_quote(self.subresource)}"
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
            if self.time:
                text += f" at {self.time}"
        return text


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class EntryError:
    """A managedFields entry that is not one: which field, and what is wrong."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"


def decode_entries(raw: Any) -> tuple[list[Entry], list[EntryError]]:
    """The entries of a `metadata.managedFields` list, and what is wrong with it (upstream's
    ValidateManagedFields plus FieldsV1 decoding)."""
    if raw is None:
        return [], []
    if not isinstance(raw, list):
        return [], [EntryError("metadata.managedFields", "Invalid value: must be a list")]
    entries: list[Entry] = []
    problems: list[EntryError] = []
    for position, item in enumerate(raw):
        where = f"metadata.managedFields[{position}]"
        if not isinstance(item, Mapping):
            problems.append(EntryError(where, "Invalid value: must be an object"))
            continue
        operation = item.get("operation")
        if operation not in (APPLY, UPDATE):
            problems.append(EntryError(f"{where}.operation", f'Unsupported value: {_shown(operation)}: supported '
                                                             f'values: "Apply", "Update"', "FieldValueNotSupported"))
        fields_type = item.get("fieldsType")
        if fields_type != FIELDS_V1:
            problems.append(EntryError(f"{where}.fieldsType", f'Unsupported value: {_shown(fields_type)}: supported '
                                                              f'values: "FieldsV1"', "FieldValueNotSupported"))
        manager = item.get("manager", "")
        if not isinstance(manager, str):
            problems.append(EntryError(f"{where}.manager", "Invalid value: must be a string"))
            manager = ""
        elif len(manager) > MAX_MANAGER_LENGTH:
            problems.append(EntryError(f"{where}.manager", f"Too long: may not be more than {MAX_MANAGER_LENGTH} "
                                                           "bytes", "FieldValueTooLong"))
        for name in ("apiVersion", "subresource", "time"):
            if item.get(name) is not None and not isinstance(item.get(name), str):
                problems.append(EntryError(f"{where}.{name}", "Invalid value: must be a string"))
        try:
            fields = fieldsets.from_fields_v1(item.get("fieldsV1", {}))
        except fieldsets.FieldsV1Error as exc:
            problems.append(EntryError(f"{where}.fieldsV1", f"Invalid value: {exc}"))
            continue
        if operation in (APPLY, UPDATE) and fields_type == FIELDS_V1 and isinstance(manager, str):
            entries.append(Entry(manager or "unknown", str(operation), str(item.get("apiVersion") or ""), fields,
                                 item.get("time") if isinstance(item.get("time"), str) else None,
                                 str(item.get("subresource") or "")))
    return entries, problems


def _shown(value: Any) -> str:
    return _go_quote(value) if isinstance(value, str) else ("null" if value is None else repr(value))


def encode_entries(entries: Iterable[Entry]) -> list[dict[str, Any]]:
    """managedFields as upstream stores it: Apply entries first, then by time, manager, apiVersion,
    subresource; each with its fields in ManagedFieldsEntry's order; empty entries dropped."""
    kept = [e for e in entries if e.fields]
    kept.sort(key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    out = []
    for entry in kept:
        item: dict[str, Any] = {"manager": entry.manager, "operation": entry.operation,
                                "apiVersion": entry.api_version}
        if entry.time:
            item["time"] = entry.time
        item["fieldsType"] = FIELDS_V1
        item["fieldsV1"] = fieldsets.to_fields_v1(entry.fields)
        if entry.subresource:
            item["subresource"] = entry.subresource
        out.append(item)
    return out


# --- ownership of an object's paths ---


def _owned(paths: Iterable[Path], ignored: Sequence[Path]) -> FieldSet:
    """`paths` without what nobody owns (type, server metadata) and without `ignored` subtrees
    (the status of a main-resource write, the rest of a status write)."""
    out = set()
    for path in paths:
        if path in _STRIPPED or path[:2] == ("f:metadata", "f:managedFields"):
            continue
        if any(path[: len(top)] == top for top in ignored):
            continue
        out.add(path)
    return frozenset(out)


def fields_of(obj: Any, schema: Mapping[str, Any] | None, ignored: Sequence[Path] = ()) -> FieldSet:
    """The fields an applied configuration sets (what its applier will own)."""
    return _owned(fieldsets.object_fields(fieldsets.flatten(obj, with_object_meta(schema))), ignored)


def _capped(entries: list[Entry], now: str) -> list[Entry]:
    """At most MAX_UPDATE_ENTRIES Update entries (`ancient-changes` counted): the oldest merge into
    `ancient-changes`, as upstream's capManagers does."""
    updates = [e for e in entries if e.operation == UPDATE]
    if len(updates) <= MAX_UPDATE_ENTRIES:
        return entries
    bucket = next((e for e in updates if e.manager == ANCIENT_CHANGES), None)
    regular = sorted((e for e in updates if e.manager != ANCIENT_CHANGES), key=lambda e: e.time or "")
    old = regular[: len(updates) - MAX_UPDATE_ENTRIES + (0 if bucket is not None else 1)]
    gone = {e.identity for e in old}
    merged: FieldSet = frozenset().union(*(e.fields for e in old))
    rest = [e for e in entries if e.identity not in gone and e is not bucket]
    fields = merged | (bucket.fields if bucket is not None else frozenset())
    return rest + [Entry(ANCIENT_CHANGES, UPDATE, "", fields, bucket.time if bucket is not None else now)]


def update(old: Any, new: Any, entries: Sequence[Entry], *, manager: str, api_version: str,
           schema: Mapping[str, Any] | None, now: str, subresource: str = "",
           ignored: Sequence[Path] = ()) -> list[Entry]:
    """The entries after a non-apply write from `old` (None on create) to `new` by `manager`.

    The fields the write added or changed move to the writer; removed fields leave everyone; an
    unchanged object changes nothing (not even a timestamp)."""
    root = with_object_meta(schema)
    if not old:  # a create: every path of `new` is added, none modified or removed (no comparison needed)
        changed, removed = _owned(fieldsets.flatten(new, root), ignored), frozenset()
    else:
        diff = fieldsets.compare(fieldsets.flatten(old, root), fieldsets.flatten(new, root))
        changed = _owned(diff.changed, ignored)
        removed = _owned(diff.removed, ignored)
    if not changed and not removed:
        return list(entries)
    writer = Entry(manager or "unknown", UPDATE, api_version, frozenset(), now, subresource)
    out: list[Entry] = []
    previous: FieldSet = frozenset()
    for entry in entries:
        if entry.identity == writer.identity:
            previous = entry.fields
            continue
        out.append(replace(entry, fields=entry.fields - changed - removed))
    out.append(replace(writer, fields=(previous | changed) - removed))
    return _capped([e for e in out if e.fields], now)


# --- apply ---


@dataclass(frozen=True, slots=True)
class Applied:
    obj: dict[str, Any]
    entries: list[Entry]


def apply(live: Any, config: Mapping[str, Any], entries: Sequence[Entry], *, manager: str, api_version: str,
          schema: Mapping[str, Any] | None, now: str, force: bool = False, subresource: str = "",
          ignored: Sequence[Path] = (), forgiven: FieldSet = frozenset()) -> Applied:
    """Apply `config` as `manager` onto `live` (None: the object does not exist yet).

    `errors.Conflict` (upstream's message and FieldManagerConflict causes) when another manager owns
    a field the configuration changes and `force` is not set. When every conflict is on a `forgiven`
    path (what kubectl's last client-side apply set), the apply is forced; otherwise only the other
    conflicts are reported (upstream's lastAppliedManager)."""
    root = with_object_meta(schema)
    live = live if isinstance(live, dict) else {}
    config_fields = fields_of(config, schema, ignored)
    merged = merge(patches.deep_copy(live), config, root)  # pruning below edits it in place
    live_flat = fieldsets.flatten(live, root)
    diff = fieldsets.compare(live_flat, fieldsets.flatten(merged, root))
    changed = _owned(diff.changed, ignored)

    applier = Entry(manager, APPLY, api_version, config_fields, now, subresource)
    previous: Entry | None = None
    others: list[Entry] = []
    for entry in entries:
        if entry.identity == applier.identity:
            previous = entry
        else:
            others.append(entry)
    conflicts = [(entry, entry.fields & changed) for entry in others if entry.fields & changed]
    if conflicts and not force:
        unforgiven = [(entry, paths - forgiven) for entry, paths in conflicts if paths - forgiven]
        if unforgiven:
            raise conflict_error(unforgiven)
    if conflicts:
        taken = frozenset().union(*(paths for _, paths in conflicts))
        others = [replace(e, fields=e.fields - taken) for e in others]

    # Prune what this manager applied before and no longer does, unless someone else owns it
    # (or something below it), or the configuration still sets something below it.
    before = previous.fields if previous is not None else frozenset()
    keep = fieldsets.prefixes(frozenset().union(config_fields, *(e.fields for e in others)))
    for path in sorted(before - config_fields, key=len):
        if path not in keep:
            remove_path(merged, path, root, keep)

    final_diff = fieldsets.compare(live_flat, fieldsets.flatten(merged, root))
    removed = _owned(final_diff.removed, ignored)
    object_changed = not final_diff.empty
    if previous is not None and not object_changed and previous.fields == config_fields and not conflicts:
        return Applied(live, list(entries))  # a no-op apply touches nothing, not even a timestamp
    out = [replace(e, fields=e.fields - removed) for e in others]
    return Applied(merged, [e for e in out if e.fields] + [applier])


def unchanged_fields(previous: Any, live: Any, schema: Mapping[str, Any] | None,
                     ignored: Sequence[Path] = ()) -> FieldSet:
    """The fields `previous` (a configuration applied before) sets that `live` still has, with the
    same value: what upstream's lastAppliedManager lets a `kubectl` apply take over."""
    root = with_object_meta(schema)
    before, now = fieldsets.flatten(previous, root), fieldsets.flatten(live, root)
    return frozenset(p for p in fields_of(previous, schema, ignored) if p in now and fieldsets.compare(
        {p: before[p]}, {p: now[p]}).empty)


def conflict_error(conflicts: Sequence[tuple[Entry, FieldSet]]) -> errors.Conflict:
    """upstream's NewConflictError: one cause per path; the message lists them by manager."""
    ordered = sorted(conflicts, key=lambda pair: pair[0].identity)
    causes = []
    listed: list[tuple[Entry, list[str]]] = []
    for entry, paths in ordered:
        shown = sorted(fieldsets.path_string(p) for p in paths)
        listed.append((entry, shown))
        causes += [{"reason": "FieldManagerConflict", "message": f"conflict with {entry.describe()}", "field": p}
                   for p in shown]
    if len(causes) == 1:
        message = f"Apply failed with 1 conflict: conflict with {listed[0][0].describe()}: {listed[0][1][0]}"
    else:
        lines = []
        for entry, shown in listed:
            lines.append(f"conflicts with {entry.describe()}:")
            lines += [f"- {p}" for p in shown]
        message = f"Apply failed with {len(causes)} conflicts: " + "\n".join(lines)
    return errors.Conflict(message, details={"causes": causes})


# --- merging and removing ---


def merge(live: Any, config: Any, schema: Mapping[str, Any]) -> Any:
    """live ⊕ config: maps merge key by key (nulls in the configuration set nothing), associative
    lists by their keys and sets by value (live order, new items after); atomic lists and maps and
    scalars are replaced."""
    if isinstance(config, Mapping):
        if fieldsets.atomic_map(schema) or not isinstance(live, dict):
            return {k: merge(None, v, fieldsets.child_schema(schema, k)) for k, v in config.items() if v is not None}
        out = dict(live)
        for name, value in config.items():
            if value is not None:
                out[name] = merge(live.get(name), value, fieldsets.child_schema(schema, name))
        return out
    if isinstance(config, list):
        return _merge_list(live if isinstance(live, list) else [], config, schema)
    return config


def _merge_list(live: list[Any], config: list[Any], schema: Mapping[str, Any]) -> list[Any]:
    kind = fieldsets.list_kind(schema)
    sub = fieldsets.items_schema(schema)
    if kind.kind == "set" and not any(isinstance(v, Mapping | list) for v in config):
        seen = {fieldsets.value(v) for v in live}
        out = list(live)
        for item in config:
            if fieldsets.value(item) not in seen:
                seen.add(fieldsets.value(item))
                out.append(item)
        return out
    if kind.kind == "map" and all(isinstance(v, Mapping) and fieldsets.item_key(v, kind.keys, sub) for v in config):
        out = list(live)
        where: dict[str, int] = {}
        for at, item in enumerate(out):
            if isinstance(item, Mapping):
                found = fieldsets.item_key(item, kind.keys, sub)
                if found is not None:
                    where.setdefault(fieldsets.key(found), at)
        for item in config:
            ident = fieldsets.key(fieldsets.item_key(item, kind.keys, sub) or {})
            if ident in where:
                out[where[ident]] = merge(out[where[ident]], item, sub)
            else:
                where[ident] = len(out)
                out.append(merge(None, item, sub))
        return out
    return [merge(None, v, sub) for v in config]


def remove_path(obj: Any, path: Path, schema: Mapping[str, Any], keep: frozenset[Path] = frozenset()) -> None:
    """Remove the field or item at `path` from `obj` in place (nothing when it is not there); maps and
    lists left empty by it go too, unless a path in `keep` names them."""
    trail: list[tuple[Any, Any]] = []  # (container, how its child was reached)
    node = obj
    for element in path:
        step = _find(node, element, schema)
        if step is None:
            return
        trail.append((node, step))
        schema = _schema_below(schema, element)
        node = node[step]
    for depth in range(len(trail) - 1, -1, -1):
        container, step = trail[depth]
        del container[step]
        if container or depth == 0 or path[:depth] in keep:
            return


def _schema_below(schema: Mapping[str, Any], element: str) -> Mapping[str, Any]:
    if element.startswith("f:"):
        return fieldsets.child_schema(schema, element[2:])
    return fieldsets.items_schema(schema)


def _find(node: Any, element: str, schema: Mapping[str, Any]) -> Any:
    kind, rest = element[:2], element[2:]
    if kind == "f:":
        return rest if isinstance(node, dict) and rest in node else None
    if not isinstance(node, list):
        return None
    if kind == "i:":
        at = int(rest)
        return at if at < len(node) else None
    if kind == "v:":
        for at, item in enumerate(node):
            if fieldsets.value(item) == element:
                return at
        return None
    keys = fieldsets.list_kind(schema).keys
    sub = fieldsets.items_schema(schema)
    for at, item in enumerate(node):
        if isinstance(item, Mapping):
            found = fieldsets.item_key(item, keys, sub)
            if found is not None and fieldsets.key(found) == element:
                return at
    return None
