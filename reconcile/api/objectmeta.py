"""The metadata rules the server owns: what a client may set, what the server sets, and when.

Pure functions over object dicts, so the rules can be read (and tested) in one place.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from reconcile.core import errors, meta

# What a client may not change after creation; the server keeps the stored values.
SERVER_OWNED = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds")
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's: no vowels, no look-alikes


def generated_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def assign_create_fields(obj: dict[str, Any]) -> None:
    """Set uid, creationTimestamp and generation on a new object; drop what clients may not set."""
    metadata = obj["metadata"]
    for server_field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
        metadata.pop(server_field, None)
    metadata["uid"] = str(uuid.uuid4())
    metadata["creationTimestamp"] = meta.now_rfc3339()
    metadata["generation"] = 1


def carry_server_fields(old: dict[str, Any], new: dict[str, Any]) -> None:
    """On update: keep what the server owns from `old`; the name and namespace may not change."""
    old_meta, new_meta = old["metadata"], new.setdefault("metadata", {})
    for name_field in ("name", "namespace"):
        if new_meta.get(name_field, old_meta.get(name_field)) != old_meta.get(name_field):
            raise errors.BadRequest(
                f"the {name_field} of the object ({new_meta.get(name_field)}) does not match the stored one "
                f"({old_meta.get(name_field)})"
            )
        if name_field in old_meta:
            new_meta[name_field] = old_meta[name_field]
    for owned in SERVER_OWNED:
        if owned in old_meta:
            new_meta[owned] = old_meta[owned]
        else:
            new_meta.pop(owned, None)
    new_meta.pop("selfLink", None)  # managedFields: the field manager's (reconcile.api.fieldmanager)


def content_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether anything but metadata and status differs: what bumps `metadata.generation`."""
    skip = ("metadata", "status", "apiVersion", "kind")
    keys = (set(old) | set(new)) - set(skip)
    return any(old.get(k) != new.get(k) for k in keys)


def bump_generation_if_needed(old: dict[str, Any], new: dict[str, Any]) -> None:
    if content_changed(old, new):
        new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1


def check_finalizers_while_deleting(old: dict[str, Any], new: dict[str, Any], kind: str, group: str) -> None:
    """Upstream refuses new finalizers on an object that is already being deleted."""
    if not old["metadata"].get("deletionTimestamp"):
        return
    finalizers = new["metadata"].get("finalizers")
    if not isinstance(finalizers, list):
        return  # absent, or of a wrong type that validation reports
    before = set(old["metadata"].get("finalizers") or [])
    added = [f for f in finalizers if isinstance(f, str) and f not in before]  # others: validation's
    if added:
        listed = ", ".join(f'"{f}"' for f in added)
        raise errors.Invalid.for_object(
            kind,
            old["metadata"].get("name", ""),
            [
                errors.cause(
                    "metadata.finalizers",
                    f"Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{listed}}}",
                    "FieldValueForbidden",
                )
            ],
            group,
        )


def same_object(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Equal but for resourceVersion: such an update is not written (no new revision, no event)."""
    if old.keys() != new.keys():
        return False
    for key in old:
        if key == "metadata":
            a = {k: v for k, v in old["metadata"].items() if k != "resourceVersion"}
            b = {k: v for k, v in new["metadata"].items() if k != "resourceVersion"}
            if a != b:
                return False
        elif old[key] != new[key]:
            return False
    return True
