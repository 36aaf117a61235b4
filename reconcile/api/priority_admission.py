"""The Priority admission plugin, as upstream's (plugin/pkg/admission/priority):

- a new pod's `spec.priorityClassName` is resolved to `spec.priority` and `spec.preemptionPolicy`;
  without a class the global default class is used (its name written into the pod), or priority 0
  and PreemptLowerPriority when there is none;
- a class that does not exist is a 403 (`no PriorityClass with name x was found`), and so is a pod
  that states a priority or policy of its own its class does not give;
- an update that leaves `priority` or `preemptionPolicy` out keeps the stored ones (a PUT of a pod
  read before admission set them does not clear them);
- a PriorityClass may be `globalDefault` only while no other one is (403 naming the default).

The rules themselves are `core.priorities`'; this module reads the classes from the server's cache.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from reconcile.api import admission, lookups, rest
from reconcile.core import priorities

ClassLister = Callable[[], Awaitable[list[dict[str, Any]]]]
ClassGetter = Callable[[str], Awaitable[dict[str, Any] | None]]
GROUP, PLURAL = "scheduling.k8s.io", "priorityclasses"


def _is(attributes: admission.Attributes, group: str, plural: str) -> bool:
    return (attributes.resource.group == group and attributes.resource.plural == plural
            and not attributes.subresource and attributes.obj is not None)


class Priority(admission.Plugin):
    name = "Priority"

    def __init__(self, classes: ClassLister, get_class: ClassGetter) -> None:
        self._classes = classes
        self._get_class = get_class

    async def mutate(self, attributes: admission.Attributes) -> None:
        if not _is(attributes, "", "pods"):
            return
        spec = attributes.obj.setdefault("spec", {})  # type: ignore[union-attr]
        if attributes.operation == admission.UPDATE and attributes.old is not None:
            old_spec = attributes.old.get("spec") or {}
            for field in ("priority", "preemptionPolicy"):
                if spec.get(field) is None and old_spec.get(field) is not None:
                    spec[field] = old_spec[field]
            return
        if attributes.operation != admission.CREATE:
            return
        name = spec.get("priorityClassName") or ""
        if not name:
            found = priorities.default_class(await self._classes())
            resolved = priorities.resolved_from(found) if found is not None else priorities.NO_DEFAULT
        else:
            pc = await self._get_class(str(name))
            if pc is None:
                raise admission.forbidden(attributes, f"no PriorityClass with name {name} was found")
            resolved = priorities.resolved_from(pc)
        refusal = priorities.disagreement(spec, resolved)
        if refusal is not None:
            raise admission.forbidden(attributes, refusal)
        priorities.apply(spec, resolved)

    async def validate(self, attributes: admission.Attributes) -> None:
        if attributes.operation not in (admission.CREATE, admission.UPDATE) or not _is(attributes, GROUP, PLURAL):
            return
        if not attributes.obj.get("globalDefault"):  # type: ignore[union-attr]
            return
        found = priorities.default_class(await self._classes())
        if found is None:
            return
        other = found["metadata"]["name"]
        if attributes.operation == admission.CREATE or other != attributes.name:
            raise admission.forbidden(attributes, f"PriorityClass {other} is already marked as default. "
                                                  "Only one default can exist")


def plugin(api: rest.Rest) -> Priority:
    """The plugin over the API server's cache of PriorityClasses."""
    classes = lookups.NamespacedReader(api, GROUP, "v1", PLURAL, ttl=0)
    one_class = lookups.ObjectReader(api, GROUP, "v1", PLURAL)

    async def list_classes() -> list[dict[str, Any]]:
        return await classes.list("")

    async def get_class(name: str) -> dict[str, Any] | None:
        return await one_class.get(None, name)

    return Priority(list_classes, get_class)
