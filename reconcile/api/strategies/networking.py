"""Ingresses and IngressClasses (networking.k8s.io/v1): upstream's validation (`ingressrules`) and
an Ingress's empty status as a typed IngressStatus serializes it (`loadBalancer` has no
omitempty). No controller routes traffic for them here: they are stored and validated."""

from __future__ import annotations

from typing import Any

from reconcile.api import ingressrules, registry
from reconcile.api.strategies import base

GROUP = "networking.k8s.io"


class IngressStrategy(base.BuiltinStrategy):
    def prepare_for_create(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        obj["status"] = {"loadBalancer": {}}

    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        return ingressrules.ingress_causes(obj, creating=True)

    def validate_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> list[base.Cause]:
        return ingressrules.ingress_causes(new, creating=False)


class IngressClassStrategy(base.BuiltinStrategy):
    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        return ingressrules.class_causes(obj)

    def validate_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> list[base.Cause]:
        return ingressrules.class_update_causes(old, new)
