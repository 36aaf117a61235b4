"""What differs between kinds: status on create, graceful deletion, CRD status, scale, binding.

Everything generic lives in `rest`; this module holds the few upstream rules that are
specific to one kind, each as a small function that `rest` calls at a fixed point.
"""

from __future__ import annotations

import copy
from typing import Any

from reconcile.api import registry
from reconcile.core import errors, meta, selectors

CORE, APIEXT = "", "apiextensions.k8s.io"


def is_kind(resource: registry.Resource, group: str, plural: str) -> bool:
    return resource.group == group and resource.plural == plural


def prepare_create(resource: registry.Resource, obj: dict[str, Any]) -> None:
    """Server-set status of a new object (clients' status is ignored on create)."""
    if resource.has_status and not is_kind(resource, APIEXT, "customresourcedefinitions"):
        obj.pop("status", None)
    if is_kind(resource, CORE, "pods"):
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(obj.get("spec") or {})}
        if (obj.get("spec") or {}).get("nodeName"):
            obj["status"]["conditions"] = [_condition("PodScheduled", "True")]
    elif is_kind(resource, CORE, "namespaces"):
        obj["status"] = {"phase": "Active"}
    elif is_kind(resource, APIEXT, "customresourcedefinitions"):
        registry.validate_crd(obj)
        obj["status"] = crd_status(obj)


def crd_status(crd: dict[str, Any]) -> dict[str, Any]:
    """Names accepted and established at once: resources are served as soon as the CRD is stored."""
    names = copy.deepcopy(crd.get("spec", {}).get("names", {}))
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    now = meta.now_rfc3339()
    return {
        "acceptedNames": names,
        "storedVersions": [v["name"] for v in crd.get("spec", {}).get("versions", []) if v.get("storage")],
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    }


def prepare_update(resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> None:
    if is_kind(resource, APIEXT, "customresourcedefinitions"):
        registry.validate_crd(new)
        for immutable in ("group", "scope"):
            if new.get("spec", {}).get(immutable) != old.get("spec", {}).get(immutable):
                raise errors.Invalid.for_object(
                    "CustomResourceDefinition", old["metadata"]["name"],
                    [errors.cause(f"spec.{immutable}", "Invalid value: field is immutable")], APIEXT,
                )
        new["status"] = old.get("status") or crd_status(new)


def graceful_deletion_seconds(resource: registry.Resource, obj: dict[str, Any], requested: int | None) -> int:
    """Seconds a pod on a node is given to stop; 0 means delete at once.

    As upstream: only pods bound to a node wait for their node agent; an unscheduled pod goes at once.
    """
    if not is_kind(resource, CORE, "pods"):
        return 0
    spec = obj.get("spec") or {}
    if not spec.get("nodeName") or (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    if requested is not None:
        return max(0, requested)
    return int(spec.get("terminationGracePeriodSeconds", 30))


def returns_deleted_object(resource: registry.Resource) -> bool:
    """Upstream answers a finished delete of pods and custom resources with the object, others with a Status."""
    return not resource.builtin or is_kind(resource, CORE, "pods")


# --- scale subresource (autoscaling/v1 Scale) ---


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


def apply_scale(resource: registry.Resource, obj: dict[str, Any], scale: dict[str, Any]) -> dict[str, Any]:
    assert resource.scale is not None
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise errors.Invalid.for_object(
            "Scale", obj["metadata"]["name"],
            [errors.cause("spec.replicas", f"Invalid value: {replicas!r}: must be greater than or equal to 0")],
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


# --- pods/binding ---


def bind_pod(pod: dict[str, Any], binding: dict[str, Any]) -> dict[str, Any]:
    """Set spec.nodeName once; a pod is never bound twice."""
    target = (binding.get("target") or {}).get("name")
    if not target:
        raise errors.Invalid.for_object("Binding", pod["metadata"]["name"], [errors.cause("target.name", "Required value", "FieldValueRequired")])
    spec = pod.setdefault("spec", {})
    if spec.get("nodeName"):
        raise errors.Conflict(
            f'Operation cannot be fulfilled on pods/binding "{pod["metadata"]["name"]}": '
            f'pod {pod["metadata"]["name"]} is already assigned to node "{spec["nodeName"]}"'
        )
    new = copy.deepcopy(pod)
    new["spec"]["nodeName"] = target
    status = new.setdefault("status", {})
    conditions = [c for c in status.get("conditions", []) if c.get("type") != "PodScheduled"]
    conditions.append(_condition("PodScheduled", "True"))
    status["conditions"] = conditions
    return new


def _condition(kind: str, status: str) -> dict[str, Any]:
    return {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": meta.now_rfc3339()}


def _qos_class(spec: dict[str, Any]) -> str:
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests_or_limits = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in requests_or_limits):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(res) is not None
        and (r.get("requests") or {}).get(res, (r.get("limits") or {}).get(res)) == (r.get("limits") or {}).get(res)
        for r in requests_or_limits
        for res in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"
