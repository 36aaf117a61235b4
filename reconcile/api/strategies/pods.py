"""Pods: initial status and QoS class, graceful deletion, and the binding subresource."""

from __future__ import annotations

import copy
from typing import Any

from reconcile.api import registry
from reconcile.api.strategies import base
from reconcile.core import errors, meta

TERMINAL_PHASES = ("Succeeded", "Failed")


class PodStrategy(base.Strategy):
    returns_deleted_object = True  # upstream answers a finished pod delete with the pod

    def normalize(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        default_pod_spec(obj.get("spec"))

    def prepare_for_create(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}
        if (obj.get("spec") or {}).get("nodeName"):
            obj["status"]["conditions"] = [condition("PodScheduled", "True")]

    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        return volume_mount_causes(obj.get("spec") or {})

    def deletion_grace_seconds(self, obj: dict[str, Any], requested: int | None) -> int:
        """As upstream: only pods bound to a node wait for their node agent; an unscheduled or
        finished pod goes at once."""
        spec = obj.get("spec") or {}
        if not spec.get("nodeName") or (obj.get("status") or {}).get("phase") in TERMINAL_PHASES:
            return 0
        if requested is not None:
            return max(0, requested)
        return int(spec.get("terminationGracePeriodSeconds", 30))

    def bind(self, pod: dict[str, Any], binding: Any) -> dict[str, Any]:
        """`pods/{name}/binding`: set spec.nodeName once; a pod is never bound twice."""
        if not isinstance(binding, dict):
            raise errors.BadRequest("binding must be an object")
        target = (binding.get("target") or {}).get("name") if isinstance(binding.get("target"), dict) else None
        if not target or not isinstance(target, str):
            raise errors.Invalid.for_object("Binding", pod["metadata"]["name"],
                                            [errors.cause("target.name", "Required value", "FieldValueRequired")])
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
        conditions.append(condition("PodScheduled", "True"))
        status["conditions"] = conditions
        return new


class WorkloadStrategy(base.BuiltinStrategy):
    """Deployments and ReplicaSets: their pod template is defaulted as a pod is, so a template read
    back and written again (kubectl rollout undo) is the same template, with the same hash."""

    def normalize(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        template = (obj.get("spec") or {}).get("template")
        if isinstance(template, dict):
            default_pod_spec(template.get("spec"))


def default_pod_spec(spec: Any) -> None:
    """The defaults a schema cannot state: each container's imagePullPolicy follows its image's tag."""
    if not isinstance(spec, dict):
        return
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict) and not container.get("imagePullPolicy"):
                container["imagePullPolicy"] = default_pull_policy(str(container.get("image") or ""))


def default_pull_policy(image: str) -> str:
    """Upstream's rule: `:latest` or no tag (and no digest) is Always, anything else IfNotPresent."""
    if "@" in image:
        return "IfNotPresent"
    name = image.rsplit("/", 1)[-1]
    tag = name.rpartition(":")[2] if ":" in name else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def condition(kind: str, status: str) -> dict[str, Any]:
    return {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": meta.now_rfc3339()}


def qos_class(spec: dict[str, Any]) -> str:
    """Upstream's QoS classes: no requests or limits anywhere is BestEffort; limits equal to requests
    for cpu and memory in every container is Guaranteed; anything else Burstable."""
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


def _descending_path_causes(value: Any, field: str) -> list[dict[str, str]]:
    """upstream's validateLocalDescendingPath: relative, and no `..` element."""
    if not isinstance(value, str) or not value:
        return []
    if value.startswith("/"):
        return [errors.cause(field, f'Invalid value: "{value}": must be a relative path')]
    if ".." in value.replace("\\", "/").split("/"):
        return [errors.cause(field, f'Invalid value: "{value}": must not contain \'..\'')]
    return []


def volume_mount_causes(spec: dict[str, Any]) -> list[dict[str, str]]:
    """subPath / subPathExpr of every container's volumeMounts (the node checks again, safely)."""
    causes: list[dict[str, str]] = []
    for key in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(key) or []):
            for j, mount in enumerate((container or {}).get("volumeMounts") or []):
                path = f"spec.{key}[{i}].volumeMounts[{j}]"
                causes += _descending_path_causes(mount.get("subPath"), f"{path}.subPath")
                causes += _descending_path_causes(mount.get("subPathExpr"), f"{path}.subPathExpr")
                if mount.get("subPath") and mount.get("subPathExpr"):
                    causes.append(errors.cause(f"{path}.subPathExpr", f'Invalid value: "{mount["subPathExpr"]}": '
                                                                      "subPathExpr and subPath are mutually exclusive"))
    return causes
