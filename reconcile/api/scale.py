"""The scale subresource (autoscaling/v1 `Scale`) of any resource that declares one (CRD `subresources.scale`).

Generic on purpose: Deployments, ReplicaSets and custom resources all say in their definition
where replicas and the selector live, so no kind is named here.
"""

from __future__ import annotations

import copy
from typing import Any

from reconcile.api import registry
from reconcile.core import errors, meta, selectors

INT32_MAX = 2**31 - 1


def to_scale(resource: registry.Resource, obj: dict[str, Any]) -> dict[str, Any]:
    assert resource.scale is not None
    metadata = obj["metadata"]
    spec_replicas = meta.get_path(obj, resource.scale.spec_replicas_path.lstrip(".")) or 0
    status_replicas = meta.get_path(obj, resource.scale.status_replicas_path.lstrip(".")) or 0
    scale: dict[str, Any] = {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: metadata[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in metadata},
        "spec": {"replicas": spec_replicas},
        "status": {"replicas": status_replicas},
    }
    selector = _scale_selector(resource, obj)
    if selector:
        scale["status"]["selector"] = selector
    return scale


def _scale_selector(resource: registry.Resource, obj: dict[str, Any]) -> str:
    assert resource.scale is not None
    if resource.scale.label_selector_path:
        found = meta.get_path(obj, resource.scale.label_selector_path.lstrip("."))
        if isinstance(found, str):
            return found
    spec_selector = (obj.get("spec") or {}).get("selector")
    if isinstance(spec_selector, dict):
        return str(selectors.LabelSelector.from_match(spec_selector))
    return ""


def resource_version(scale: Any) -> str | None:
    """The precondition a Scale body carries (400 for metadata or a resourceVersion of a wrong type)."""
    if not isinstance(scale, dict):
        return None  # apply_scale refuses it
    metadata = scale.get("metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("resourceVersion") or "", str):
        raise errors.BadRequest('Scale in version "v1" cannot be handled as a Scale: metadata must be an object '
                                "whose resourceVersion is a string")
    return metadata.get("resourceVersion") or None


def apply_scale(resource: registry.Resource, obj: dict[str, Any], scale: dict[str, Any]) -> dict[str, Any]:
    assert resource.scale is not None
    if not isinstance(scale, dict) or not isinstance(scale.get("spec") or {}, dict):
        raise errors.BadRequest('Scale in version "v1" cannot be handled as a Scale: the body must be an object')
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0 or replicas > INT32_MAX:
        raise errors.Invalid.for_object(
            "Scale", obj["metadata"]["name"],
            [errors.cause("spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0"
                          if not isinstance(replicas, int) or replicas < 0 else
                          f"Invalid value: {replicas}: must be less than or equal to {INT32_MAX}")],
            "autoscaling",
        )
    new = copy.deepcopy(obj)
    _set_path(new, resource.scale.spec_replicas_path.lstrip("."), replicas)
    return new


def _set_path(obj: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        obj = obj.setdefault(part, {})
    obj[parts[-1]] = value
