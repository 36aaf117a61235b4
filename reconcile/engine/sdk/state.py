"""What the SDK persists on each object: the last-handled essence and per-handler progress.

Both live in annotations (small JSON strings) so they survive operator restarts and travel
with the object: a killed operator resumes a half-done change and never re-runs a handler
whose success was recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

PREFIX = "reconcile.dev/"
LAST_HANDLED = PREFIX + "last-handled-configuration"
PROGRESS_PREFIX = PREFIX + "progress-"
FINALIZER = PREFIX + "finalizer"
# Annotations that are bookkeeping, not the user's intent: never part of the essence.
_IGNORED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
_IGNORED_TOP = ("apiVersion", "kind", "metadata", "status")


def essence(body: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an object whose change is an update: everything but status and system metadata."""
    result = {k: v for k, v in body.items() if k not in _IGNORED_TOP}
    meta = body.get("metadata") or {}
    labels = meta.get("labels")
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if not k.startswith(PREFIX) and k not in _IGNORED_ANNOTATIONS
    }
    metadata: dict[str, Any] = {}
    if labels:
        metadata["labels"] = labels
    if annotations:
        metadata["annotations"] = annotations
    if metadata:
        result["metadata"] = metadata
    return result


def dump_essence(value: Mapping[str, Any]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def last_handled(body: Mapping[str, Any]) -> dict[str, Any] | None:
    text = ((body.get("metadata") or {}).get("annotations") or {}).get(LAST_HANDLED)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


_INVALID = re.compile(r"[^A-Za-z0-9_.-]")


def progress_key(handler_id: str) -> str:
    """An annotation key for a handler id; ids too long or odd for a key name are hashed."""
    name = _INVALID.sub("-", handler_id).strip("-_.")
    limit = 63 - len("progress-")
    if len(name) > limit or name != handler_id.replace("/", "-"):
        digest = hashlib.sha1(handler_id.encode()).hexdigest()[:8]
        name = f"{name[: limit - 9].rstrip('-_.')}-{digest}"
    return PROGRESS_PREFIX + name


@dataclass
class Progress:
    """One handler's state within one cause (create/update/resume/delete)."""

    cause: str
    started: str | None = None  # RFC 3339, first attempt
    retries: int = 0
    delayed: float | None = None  # wall-clock epoch seconds before which the handler must not run
    success: bool = False
    failure: bool = False
    message: str | None = None

    @property
    def finished(self) -> bool:
        return self.success or self.failure

    def dump(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v not in (None, False, 0) or k == "cause"}
        return json.dumps(data, separators=(",", ":"))


def read_progress(body: Mapping[str, Any], handler_id: str, cause: str) -> Progress | None:
    """The handler's record for `cause`; a record left by another cause does not count."""
    text = ((body.get("metadata") or {}).get("annotations") or {}).get(progress_key(handler_id))
    if not text:
        return None
    try:
        data = json.loads(text)
        record = Progress(**data)
    except (ValueError, TypeError):
        return None
    return record if record.cause == cause else None


def progress_keys(body: Mapping[str, Any]) -> list[str]:
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return [k for k in annotations if k.startswith(PROGRESS_PREFIX)]


class DiffItem(NamedTuple):
    """One change, as kopf: ("add" | "change" | "remove", field path, old, new)."""

    operation: str
    field: tuple[str, ...]
    old: Any
    new: Any


def diff(old: Any, new: Any, *, path: tuple[str, ...] = ()) -> tuple[DiffItem, ...]:
    """Field-level differences; dicts are walked, lists and scalars compared whole."""
    if old == new:
        return ()
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        items: list[DiffItem] = []
        for key in list(old) + [k for k in new if k not in old]:
            if key not in new:
                items.append(DiffItem("remove", (*path, key), old[key], None))
            elif key not in old:
                items.append(DiffItem("add", (*path, key), None, new[key]))
            else:
                items.extend(diff(old[key], new[key], path=(*path, key)))
        return tuple(items)
    if old is None:
        return (DiffItem("add", path, None, new),)
    if new is None:
        return (DiffItem("remove", path, old, None),)
    return (DiffItem("change", path, old, new),)


def resolve(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


def combine(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """Two merge patches as one: dicts merge, and `None` (delete) is kept, not applied."""
    result = dict(first)
    for key, value in second.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = combine(result[key], value)
        else:
            result[key] = value
    return result
