"""PriorityClasses (scheduling.k8s.io/v1): upstream's validation (`core.priorities`: the reserved
`system-` names, the ceiling of user values, immutable value and preemptionPolicy) and its REST
storage's refusal to delete either system class. One global default at a time is the Priority
admission's rule (`priority_admission`), as upstream, since it needs the other classes."""

from __future__ import annotations

from typing import Any

from reconcile.api import registry
from reconcile.api.strategies import base
from reconcile.core import errors, priorities

GROUP, PLURAL = "scheduling.k8s.io", "priorityclasses"


class PriorityClassStrategy(base.BuiltinStrategy):
    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        return priorities.class_causes(obj)

    def validate_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> list[base.Cause]:
        return priorities.class_update_causes(old, new)

    async def before_delete(self, obj: dict[str, Any]) -> None:
        name = str((obj.get("metadata") or {}).get("name") or "")
        if name in priorities.SYSTEM_CLASSES:
            raise errors.Forbidden(f'{PLURAL}.{GROUP} "{name}" is forbidden: this is a system priority class and '
                                   "cannot be deleted", details={"name": name, "group": GROUP, "kind": PLURAL})
