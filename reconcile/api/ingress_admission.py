"""The DefaultIngressClass admission plugin, as upstream's (plugin/pkg/admission/network/
defaultingressclass): an Ingress created with neither `spec.ingressClassName` nor the legacy
`kubernetes.io/ingress.class` annotation gets the default IngressClass (the newest one annotated
`ingressclass.kubernetes.io/is-default-class: "true"`), if there is one. Creates only: an update
never gains a class."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from reconcile.api import admission, ingressrules, lookups, rest

ClassLister = Callable[[], Awaitable[list[dict[str, Any]]]]
GROUP = "networking.k8s.io"


class DefaultIngressClass(admission.Plugin):
    name = "DefaultIngressClass"

    def __init__(self, classes: ClassLister) -> None:
        self._classes = classes

    async def mutate(self, attributes: admission.Attributes) -> None:
        if (attributes.operation != admission.CREATE or attributes.resource.group != GROUP
                or attributes.resource.plural != "ingresses" or attributes.subresource or attributes.obj is None):
            return
        spec = attributes.obj.setdefault("spec", {})
        annotations = (attributes.obj.get("metadata") or {}).get("annotations") or {}
        if spec.get("ingressClassName") is not None or ingressrules.CLASS_ANNOTATION in annotations:
            return
        found = ingressrules.default_class(await self._classes())
        if found is not None:
            spec["ingressClassName"] = found["metadata"]["name"]


def plugin(api: rest.Rest) -> DefaultIngressClass:
    """The plugin over the API server's cache of IngressClasses."""
    classes = lookups.NamespacedReader(api, GROUP, "v1", "ingressclasses", ttl=0)

    async def list_classes() -> list[dict[str, Any]]:
        return await classes.list("")

    return DefaultIngressClass(list_classes)
