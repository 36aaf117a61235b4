"""The generic strategy: what a write means for a resource with no rules of its own (custom resources).

A strategy is kube-apiserver's RESTCreateStrategy, RESTUpdateStrategy and RESTDeleteStrategy in one
object: `rest` runs the generic read-mutate-compare-and-swap and calls the strategy at fixed points,
so the generic store code never names a kind. Kinds with rules of their own subclass `Strategy`
(see the sibling modules) and are registered in `StrategySet`.
"""

from __future__ import annotations

from typing import Any

from reconcile.api import registry
from reconcile.core import errors

Cause = dict[str, str]


class Reservation:
    """What a write claimed outside its own key (a Service's cluster IP and node ports): `revert` when
    the write is not stored, `commit` (free what the old object held and the new one does not) when it is."""

    async def revert(self) -> None:
        """Give back what this write claimed."""

    async def commit(self) -> None:
        """Free what the write let go."""


NO_RESERVATION = Reservation()


class Strategy:
    """Defaults for every resource; each hook is a no-op unless a kind needs more."""

    #: answer a finished delete with the object (pods and custom resources upstream) instead of a Status
    returns_deleted_object = True

    def prepare_for_create(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        """Server-set fields of a new object. Clients do not set status on create: it is reset,
        and built-in kinds answer with the status upstream's typed objects serialize when empty:
        `{}`, with the zero value of each required field (a ReplicaSet's `replicas: 0`)."""
        if resource.has_status:
            obj.pop("status", None)
            if resource.builtin:
                obj["status"] = zero_value((resource.schema.get("properties") or {}).get("status") or {})

    def fill_from_identity(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        """Server-set fields of a new object that derive from its uid (a Job's generated selector):
        runs once uid and creationTimestamp are assigned, before admission and validation."""

    def prepare_for_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Server-side changes to an update of the main resource (not /status)."""

    def normalize(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        """Rewrite a client's convenience fields into stored ones, before validation (create and
        update alike): Secrets' `stringData`, for instance."""

    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[Cause]:
        """Checks a schema cannot express, for a new object (after the schema checks passed)."""
        return []

    def validate_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
        """Checks of an update (immutable fields, ...); by default those of a new object."""
        return self.validate(resource, new)

    def validate_main_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]
                             ) -> list[Cause]:
        """Checks only an update of the object itself faces, not one through /status or /binding
        (subresources that exist to change what the main resource may not, such as a pod's node)."""
        return []

    def deletion_grace_seconds(self, obj: dict[str, Any], requested: int | None) -> int:
        """Seconds the object lingers (with deletionTimestamp) before it goes; 0: at once."""
        return 0

    async def deletion_pending(self, obj: dict[str, Any]) -> bool:
        """Whether the delete must wait for something else to finish (a namespace's content)."""
        return False

    def mark_deleting(self, obj: dict[str, Any]) -> None:
        """Changes besides deletionTimestamp when a delete must wait (a namespace goes Terminating)."""

    async def before_delete(self, obj: dict[str, Any]) -> None:
        """Runs just before the object is removed from storage (may refuse with an ApiError)."""

    async def reserve(self, resource: registry.Resource, old: dict[str, Any] | None,
                      new: dict[str, Any]) -> Reservation:
        """Claims a write needs besides its own key, made after validation and before the store write
        (on a dry run too, then reverted, as upstream's dry-run allocators fill in without keeping);
        `old` is None on a create. May fill `new` (an allocated address)."""
        return NO_RESERVATION

    async def after_write(self, obj: dict[str, Any]) -> None:
        """Runs after the object was created or changed in storage (not on dry runs)."""

    async def after_removal(self, obj: dict[str, Any]) -> None:
        """Runs after the object left storage."""


class BuiltinStrategy(Strategy):
    """Built-in kinds without rules of their own: upstream answers their finished deletes with a Status."""

    returns_deleted_object = False


_ZEROS: dict[str, Any] = {"integer": 0, "number": 0, "string": "", "boolean": False}


def zero_value(schema: dict[str, Any]) -> Any:
    """What a Go struct of this schema serializes as when empty: required fields at their zero value
    (the fields without `omitempty`), nothing else."""
    kind = schema.get("type")
    if kind == "array":
        return []
    if kind in _ZEROS:
        return _ZEROS[kind]
    properties = schema.get("properties") or {}
    return {name: zero_value(properties.get(name) or {}) for name in schema.get("required") or ()}


def invalid(resource: registry.Resource, obj: dict[str, Any], causes: list[Cause]) -> errors.Invalid:
    return errors.Invalid.for_object(resource.kind, (obj.get("metadata") or {}).get("name") or "", causes,
                                     group=resource.group)
