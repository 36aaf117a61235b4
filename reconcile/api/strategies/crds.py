"""CustomResourceDefinitions: checked and established on write, served at once, and their
objects removed with them. Built-in definitions cannot be deleted."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

from reconcile.api import registry
from reconcile.api.strategies import base
from reconcile.core import errors, meta

GROUP = "apiextensions.k8s.io"
IMMUTABLE = ("group", "scope")

Hook = Callable[[dict[str, Any]], Awaitable[None]]


class CrdStrategy(base.BuiltinStrategy):
    def __init__(self, *, on_stored: Hook, on_removed: Hook, remove_objects: Hook) -> None:
        self._on_stored = on_stored  # register the CRD's resources (so they are served at once)
        self._on_removed = on_removed  # stop serving them
        self._remove_objects = remove_objects  # delete every object of the CRD's kind

    def prepare_for_create(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        obj["status"] = established_status(obj)

    def prepare_for_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> None:
        new["status"] = old.get("status") or established_status(new)

    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        registry.validate_crd(obj)  # raises Invalid with apiextensions' causes
        return []

    def validate_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> list[base.Cause]:
        registry.validate_crd(new)
        return [errors.cause(f"spec.{field}", "Invalid value: field is immutable")
                for field in IMMUTABLE if (new.get("spec") or {}).get(field) != (old.get("spec") or {}).get(field)]

    async def before_delete(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if name in registry.builtin_names():
            raise errors.Forbidden(f'customresourcedefinitions.{GROUP} "{name}" is forbidden: '
                                   "built-in resource definitions cannot be deleted")
        await self._remove_objects(obj)

    async def after_write(self, obj: dict[str, Any]) -> None:
        await self._on_stored(obj)

    async def after_removal(self, obj: dict[str, Any]) -> None:
        await self._on_removed(obj)


def established_status(crd: dict[str, Any]) -> dict[str, Any]:
    """Names accepted and established at once: resources are served as soon as the CRD is stored."""
    names = copy.deepcopy((crd.get("spec") or {}).get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    now = meta.now_rfc3339()
    return {
        "acceptedNames": names,
        "storedVersions": [v["name"] for v in (crd.get("spec") or {}).get("versions", []) if v.get("storage")],
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    }
