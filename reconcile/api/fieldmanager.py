"""`metadata.managedFields` on every write, as kube-apiserver's fieldmanager keeps it.

The pure ownership rules are `reconcile.core.applymerge`; this module is where the API's writes meet
them: which manager a request writes as (`fieldManager`, else the User-Agent's first part), the
options' validation, client-supplied managedFields (used when they differ from the stored ones,
`[]` resets them), and which fields a write may own at all (the status is not the main resource's).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reconcile.api import registry
from reconcile.core import applymerge, errors, meta
from reconcile.core.fieldsets import Path

MAX_LENGTH = applymerge.MAX_MANAGER_LENGTH
_ABSENT: Any = object()


def manager_name(field_manager: str | None, user_agent: str | None) -> str:
    """The `fieldManager` given, else upstream's prefixFromUserAgent: the User-Agent up to its first
    `/`, unprintable characters quoted, at most 128 characters (`kubectl/v1.32.0 (...)` -> `kubectl`)."""
    if field_manager:
        return field_manager
    prefix = (user_agent or "").split("/", 1)[0]
    prefix = "".join(c if c.isprintable() else repr(c)[1:-1] for c in prefix)
    return prefix[:MAX_LENGTH]


def validate_options(options_kind: str, field_manager: str | None, *, apply: bool = False,
                     force: bool | None = None, patch: bool = False) -> None:
    """upstream's Validate{Create,Update,Patch}Options: 422 naming the option."""
    causes = []
    if patch and not apply and force is not None:
        causes.append(errors.cause("force", "Forbidden: may not be specified for non-apply patch", "FieldValueForbidden"))
    if apply and not field_manager:
        causes.append(errors.cause("fieldManager", "Required value: is required for apply patch",
                                   "FieldValueRequired"))
    if field_manager:
        if len(field_manager) > MAX_LENGTH:
            causes.append(errors.cause("fieldManager", f"Too long: may not be more than {MAX_LENGTH} bytes",
                                       "FieldValueTooLong"))
        for char in field_manager:
            if not char.isprintable():
                causes.append(errors.cause("fieldManager", f"Invalid value: {field_manager!r}: "
                                                           f"invalid characters {char!r}"))
                break
    if causes:
        parts = [f"{c['field']}: {c['message']}" for c in causes]
        joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
        raise errors.Invalid(f'{options_kind}.meta.k8s.io "" is invalid: {joined}',
                             details={"kind": options_kind, "group": "meta.k8s.io", "causes": causes})


def ignored_paths(resource: registry.Resource, subresource: str | None, *objs: Any) -> list[Path]:
    """What a write may not own: the status on the main resource (upstream's reset fields), and
    everything but the status (and metadata) on /status."""
    if subresource in ("status", "approval"):
        tops = {name for obj in objs if isinstance(obj, Mapping) for name in obj}
        return [("f:" + name,) for name in sorted(tops - {"status", "metadata", "apiVersion", "kind"})]
    if resource.has_status:
        return [("f:status",)]
    return []


def _entries(resource: registry.Resource, obj: Mapping[str, Any], raw: Any) -> list[applymerge.Entry]:
    """Client-supplied entries decoded; 422 naming the bad field."""
    entries, problems = applymerge.decode_entries(raw)
    if problems:
        causes = [errors.cause(p.field, p.message, p.reason) for p in problems]
        name = (obj.get("metadata") or {}).get("name", "")
        raise errors.Invalid.for_object(resource.kind, name if isinstance(name, str) else "", causes, resource.group)
    return entries


def _stored_entries(raw: Any) -> list[applymerge.Entry]:
    """Entries as stored (written by us): whatever does not decode is dropped, never an error."""
    return applymerge.decode_entries(raw)[0]


def is_reset(raw: Any) -> bool:
    """upstream's isResetManagedFields: `[]`, or one empty entry."""
    return isinstance(raw, list) and (raw == [] or raw == [{}])


def _store(obj: dict[str, Any], entries: list[applymerge.Entry]) -> None:
    encoded = applymerge.encode_entries(entries)
    if encoded:
        obj["metadata"]["managedFields"] = encoded
    else:
        obj["metadata"].pop("managedFields", None)


def _without_managed(obj: Mapping[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping) and "managedFields" in metadata:
        return {**obj, "metadata": {k: v for k, v in metadata.items() if k != "managedFields"}}
    return dict(obj)


def on_create(resource: registry.Resource, obj: dict[str, Any], supplied: Any, manager: str | None,
              *, applied: Mapping[str, Any] | None = None) -> None:
    """Set the managedFields of an object about to be created (in place): an Update entry for every
    field it has (defaults included), or, created by an apply, an Apply entry for the applied fields."""
    obj["metadata"].pop("managedFields", None)
    if manager is None or is_reset(supplied):
        return
    base = _entries(resource, obj, supplied) if supplied is not None else []
    now = meta.now_rfc3339()
    if applied is not None:
        fields = applymerge.fields_of(applied, resource.schema, ignored_paths(resource, None))
        entries = [*base, applymerge.Entry(manager, applymerge.APPLY, resource.api_version, fields, now)]
    else:
        entries = applymerge.update(None, obj, base, manager=manager, api_version=resource.api_version,
                                    schema=resource.schema, now=now, ignored=ignored_paths(resource, None, obj))
    _store(obj, entries)


def on_update(resource: registry.Resource, old: dict[str, Any], new: dict[str, Any], supplied: Any,
              manager: str | None, subresource: str | None) -> None:
    """Set the managedFields of an updated object (in place). `supplied` is what the write's result
    carried (`_ABSENT` when nothing): different from the stored entries, it replaces them (after
    validation); `[]` resets them; a write without a manager keeps the stored ones."""
    stored = old["metadata"].get("managedFields")
    new["metadata"].pop("managedFields", None)
    if manager is None:
        if stored is not None:
            new["metadata"]["managedFields"] = stored
        return
    if is_reset(supplied):
        return
    if supplied is not _ABSENT and supplied is not None and supplied != stored:
        base = _entries(resource, new, supplied)
        from_stored = False
    else:
        base = _stored_entries(stored)
        from_stored = True
    entries = applymerge.update(_without_managed(old), new, base, manager=manager,
                                api_version=resource.api_version, schema=resource.schema, now=meta.now_rfc3339(),
                                subresource=subresource or "", ignored=ignored_paths(resource, subresource, old, new))
    if from_stored and entries == base and stored is not None:
        new["metadata"]["managedFields"] = stored  # nothing changed: keep the stored text as it is
        return
    _store(new, entries)


def check_applied(resource: registry.Resource, config: Mapping[str, Any]) -> None:
    """What upstream refuses in an applied configuration, before merging it (400)."""
    version = config.get("apiVersion")
    if version != resource.api_version:
        raise errors.BadRequest(f"Incorrect version specified in apply patch. Specified patch version: "
                                f"{version if isinstance(version, str) else ''}, expected: {resource.api_version}")
    kind = config.get("kind")
    if kind != resource.kind:
        raise errors.BadRequest(f"Incorrect kind specified in apply patch. Specified patch kind: "
                                f"{kind if isinstance(kind, str) else ''}, expected: {resource.kind}")
    metadata = config.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise errors.BadRequest(f"{resource.kind} in version \"{resource.version}\" cannot be handled as a "
                                f"{resource.kind}: metadata must be an object")
    if isinstance(metadata, Mapping) and metadata.get("managedFields") is not None:
        raise errors.BadRequest("metadata.managedFields must be nil")


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
KUBECTL = "kubectl"


def _last_applied(resource: registry.Resource, live: Mapping[str, Any]) -> dict[str, Any] | None:
    """kubectl's client-side last-applied configuration on `live`, when it is one of this version."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(LAST_APPLIED) if isinstance(annotations, Mapping) else None
    if not isinstance(text, str):
        return None
    try:
        previous = json.loads(text)
    except ValueError:
        return None
    if not isinstance(previous, dict) or previous.get("apiVersion") != resource.api_version:
        return None
    return previous


def apply(resource: registry.Resource, live: dict[str, Any], config: Mapping[str, Any], manager: str, *,
          force: bool, subresource: str | None) -> dict[str, Any]:
    """The object after `manager` applies `config` to `live`, its managedFields set; 409 on conflicts.

    As upstream, an apply by `kubectl` onto an object kubectl applied client-side before takes over
    the fields its last-applied annotation still holds, and keeps that annotation current."""
    stored = live["metadata"].get("managedFields")
    entries = _stored_entries(stored)
    ignored = ignored_paths(resource, subresource, live, config)
    previous = _last_applied(resource, live) if manager == KUBECTL and subresource is None else None
    forgiven = applymerge.unchanged_fields(previous, live, resource.schema, ignored) if previous else frozenset()
    result = applymerge.apply(_without_managed(live), config, entries, manager=manager,
                              api_version=resource.api_version, schema=resource.schema, now=meta.now_rfc3339(),
                              force=force, subresource=subresource or "", ignored=ignored, forgiven=forgiven)
    obj = result.obj
    obj.setdefault("metadata", {})
    if previous is not None:
        annotations = obj["metadata"].setdefault("annotations", {})
        if isinstance(annotations, dict):
            annotations[LAST_APPLIED] = _last_applied_text(config)
    if result.entries == entries and stored is not None:
        obj["metadata"]["managedFields"] = stored
    else:
        _store(obj, result.entries)
    return obj


def _last_applied_text(config: Mapping[str, Any]) -> str:
    """The configuration as kubectl's annotation holds it: without the annotation itself, compact JSON."""
    copy = json.loads(json.dumps(config))
    annotations = (copy.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED, None)
        if not annotations:
            copy["metadata"].pop("annotations")
    return json.dumps(copy, separators=(",", ":"), sort_keys=True) + "\n"


ABSENT = _ABSENT
