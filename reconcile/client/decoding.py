"""What every consumer may assume of a cached object: its standard metadata has the declared types.

Indexes, owner lookups, selectors, the garbage collector and every controller read
`metadata.labels`, `ownerReferences`, `finalizers`... without checking types, as client-go's
typed decoders let them. An object stored by an older or buggy API server, or written straight
into etcd, can hold `"ownerReferences": ["str"]` or `"labels": "x"`; one such object used to end
the pod informer of every component. Informers check each object here before caching it and
treat one that fails as *that object's* problem (skipped and reported), never the stream's.

The rules are ObjectMeta's schema (upstream apimachinery types), nothing kind-specific: a
kind's own fields are checked by whoever reads them (`Informer(check=...)`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconcile.core import meta

# metadata fields that are strings when present (null allowed, as JSON decoding of Go's omitempty)
_STRINGS = ("namespace", "uid", "resourceVersion", "generateName", "selfLink")
_TIMESTAMPS = ("creationTimestamp", "deletionTimestamp")
_INTEGERS = ("generation", "deletionGracePeriodSeconds")
_REF_STRINGS = ("apiVersion", "kind", "name", "uid")
_REF_BOOLS = ("controller", "blockOwnerDeletion")
_TOP_OBJECTS = ("spec", "status")  # by API convention an object (or absent) in every kind


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string_map(field: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, dict):
        return [f"metadata.{field}: must be an object of strings, got {type(value).__name__}"]
    bad = [k for k, v in value.items() if not isinstance(k, str) or not isinstance(v, str)]
    return [f"metadata.{field}[{bad[0]!r}]: must be a string, got {type(value[bad[0]]).__name__}"] if bad else []


def _owner_references(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        return [f"metadata.ownerReferences: must be a list, got {type(value).__name__}"]
    found: list[str] = []
    for index, ref in enumerate(value):
        where = f"metadata.ownerReferences[{index}]"
        if not isinstance(ref, dict):
            found.append(f"{where}: must be an object, got {type(ref).__name__}")
            continue
        for name in _REF_STRINGS:
            if not isinstance(ref.get(name), str) or not ref.get(name):
                found.append(f"{where}.{name}: required string")
        for name in _REF_BOOLS:
            if ref.get(name) is not None and not isinstance(ref.get(name), bool):
                found.append(f"{where}.{name}: must be a boolean")
    return found


def _timestamp(field: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str):
        return [f"metadata.{field}: must be an RFC 3339 string, got {type(value).__name__}"]
    try:
        meta.parse_time(value)
    except (ValueError, TypeError):
        return [f"metadata.{field}: {value[:40]!r} is not an RFC 3339 time"]
    return []


def _list_of(field: str, value: Any, kind: type, kind_name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, kind) for item in value):
        return [f"metadata.{field}: must be a list of {kind_name}"]
    return []


def metadata_problems(metadata: Any) -> list[str]:
    """What is wrong with an ObjectMeta, as `field: message` lines; [] when everything reads as declared."""
    if not isinstance(metadata, dict):
        return [f"metadata: must be an object, got {type(metadata).__name__}"]
    found: list[str] = []
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        found.append("metadata.name: required string")
    for field in _STRINGS:
        if metadata.get(field) is not None and not isinstance(metadata.get(field), str):
            found.append(f"metadata.{field}: must be a string, got {type(metadata.get(field)).__name__}")
    for field in _INTEGERS:
        if metadata.get(field) is not None and not _is_int(metadata.get(field)):
            found.append(f"metadata.{field}: must be an integer")
    for field in _TIMESTAMPS:
        found.extend(_timestamp(field, metadata.get(field)))
    found.extend(_string_map("labels", metadata.get("labels")))
    found.extend(_string_map("annotations", metadata.get("annotations")))
    found.extend(_owner_references(metadata.get("ownerReferences")))
    found.extend(_list_of("finalizers", metadata.get("finalizers"), str, "strings"))
    found.extend(_list_of("managedFields", metadata.get("managedFields"), dict, "objects"))
    return found


def problems(obj: Any) -> list[str]:
    """What keeps `obj` from being cached and handed to consumers; [] when it decodes.

    Never raises, whatever `obj` is: this runs on every event of every informer.
    """
    if not isinstance(obj, dict):
        return [f"object: must be an object, got {type(obj).__name__}"]
    found: list[str] = []
    for field in ("apiVersion", "kind"):
        if obj.get(field) is not None and not isinstance(obj.get(field), str):
            found.append(f"{field}: must be a string")
    found.extend(metadata_problems(obj.get("metadata")))
    for field in _TOP_OBJECTS:
        if obj.get(field) is not None and not isinstance(obj.get(field), dict):
            found.append(f"{field}: must be an object, got {type(obj.get(field)).__name__}")
    return found


Check = Callable[[dict[str, Any]], list[str]]


def checked(check: Callable[[dict[str, Any]], Any]) -> Check:
    """A kind-specific check from a parser: whatever it raises is the object's problem, as one line."""

    def run(obj: dict[str, Any]) -> list[str]:
        try:
            check(obj)
        except Exception as exc:  # noqa: BLE001 - any failure to parse is the object's, not ours
            return [f"{type(exc).__name__}: {exc}"]
        return []

    return run


def describe(obj: Any) -> str:
    """`namespace/name@resourceVersion` of an object whatever its shape, for log lines."""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(metadata, dict):
        return "<object without metadata>"
    namespace, name, rv = (metadata.get(k) for k in ("namespace", "name", "resourceVersion"))
    key = f"{namespace}/{name}" if isinstance(namespace, str) and namespace else str(name)
    return f"{key}@{rv}" if isinstance(rv, str) else key
