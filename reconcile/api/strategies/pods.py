"""Pods: initial status and QoS class, graceful deletion, and the binding subresource."""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from typing import Any

from reconcile.api import registry
from reconcile.api.strategies import base
from reconcile.core import errors, meta, podupdate

TERMINAL_PHASES = ("Succeeded", "Failed")


class PodStrategy(base.Strategy):
    returns_deleted_object = True  # upstream answers a finished pod delete with the pod

    def normalize(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        default_pod_spec(obj.get("spec"))

    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        spec = obj.get("spec") or {}
        return [*dns_config_causes(spec), *volume_mount_causes(spec)]

    def prepare_for_create(self, resource: registry.Resource, obj: dict[str, Any]) -> None:
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}
        if (obj.get("spec") or {}).get("nodeName"):
            obj["status"]["conditions"] = [condition("PodScheduled", "True")]

    def prepare_for_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> None:
        """As upstream: ephemeral containers change only through their own subresource, so an
        update of the pod keeps the stored ones."""
        old_spec, new_spec = old.get("spec"), new.get("spec")
        if isinstance(old_spec, dict) and isinstance(new_spec, dict):
            if "ephemeralContainers" in old_spec:
                new_spec["ephemeralContainers"] = copy.deepcopy(old_spec["ephemeralContainers"])
            else:
                new_spec.pop("ephemeralContainers", None)

    def validate_main_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]
                             ) -> list[base.Cause]:
        """A running pod's spec is fixed but for images, tolerations and a few others (`podupdate`)."""
        old_spec, new_spec = old.get("spec"), new.get("spec")
        if not isinstance(old_spec, dict) or not isinstance(new_spec, dict):
            return []
        return podupdate.causes(old_spec, new_spec)

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

    def validate(self, resource: registry.Resource, obj: dict[str, Any]) -> list[base.Cause]:
        template = (obj.get("spec") or {}).get("template")
        spec = template.get("spec") if isinstance(template, dict) else None
        return dns_config_causes(spec, "spec.template.spec") if isinstance(spec, dict) else []


class StatefulSetStrategy(WorkloadStrategy):
    """StatefulSets: a workload whose identity-shaping fields are fixed once created (upstream
    ValidateStatefulSetUpdate): only these may change."""

    MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
               "persistentVolumeClaimRetentionPolicy", "minReadySeconds")

    def validate_update(self, resource: registry.Resource, old: dict[str, Any], new: dict[str, Any]) -> list[base.Cause]:
        causes = super().validate_update(resource, old, new)

        def fixed(obj: dict[str, Any]) -> dict[str, Any]:
            spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
            return {k: v for k, v in spec.items() if k not in self.MUTABLE}

        if fixed(old) != fixed(new):
            causes.append(errors.cause("spec", "Forbidden: updates to statefulset spec for fields other than "
                                       "'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', "
                                       "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                                       "FieldValueForbidden"))
        return causes


MAX_DNS_NAMESERVERS, MAX_DNS_SEARCHES, MAX_DNS_SEARCH_CHARS = 3, 32, 2048
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def dns_config_causes(spec: dict[str, Any], path: str = "spec") -> list[base.Cause]:
    """Upstream's validateDNSConfig / validateDNSPolicy: what the kubelet could not turn into a resolv.conf."""
    config = spec.get("dnsConfig")
    field = f"{path}.dnsConfig"
    if spec.get("dnsPolicy") == "None":
        if not isinstance(config, dict):
            return [errors.cause(field, "Required value: must provide `dnsConfig` when dnsPolicy is None",
                                 "FieldValueRequired")]
        if not config.get("nameservers"):
            return [errors.cause(f"{field}.nameservers", "Required value: must provide at least one DNS nameserver "
                                 "when dnsPolicy is None", "FieldValueRequired")]
    if not isinstance(config, dict):
        return []
    causes: list[base.Cause] = []
    nameservers = config.get("nameservers") or []
    if len(nameservers) > MAX_DNS_NAMESERVERS:
        causes.append(errors.cause(f"{field}.nameservers", f"Invalid value: {json.dumps(nameservers)}: must not have "
                                   f"more than {MAX_DNS_NAMESERVERS} nameservers"))
    for i, server in enumerate(nameservers):
        try:
            ipaddress.ip_address(server)
        except ValueError:
            causes.append(errors.cause(f"{field}.nameservers[{i}]",
                                       f"Invalid value: {json.dumps(server)}: must be a valid IP address"))
    searches = config.get("searches") or []
    if len(searches) > MAX_DNS_SEARCHES:
        causes.append(errors.cause(f"{field}.searches", f"Invalid value: {json.dumps(searches)}: must not have more "
                                   f"than {MAX_DNS_SEARCHES} search paths"))
    if len(" ".join(searches)) > MAX_DNS_SEARCH_CHARS:
        causes.append(errors.cause(f"{field}.searches", f"Invalid value: {json.dumps(searches)}: must not have more "
                                   f"than {MAX_DNS_SEARCH_CHARS} characters (including spaces) in the search list"))
    for i, search in enumerate(searches):
        name = search[:-1] if search.endswith(".") else search
        if len(name) > 253 or not _SUBDOMAIN.match(name):
            causes.append(errors.cause(f"{field}.searches[{i}]", f"Invalid value: {json.dumps(search)}: a lowercase "
                                       "RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                                       "'.', and must start and end with an alphanumeric character"))
    for i, option in enumerate(config.get("options") or []):
        if not option.get("name"):
            causes.append(errors.cause(f"{field}.options[{i}]", "Required value: Option.Name must not be empty",
                                       "FieldValueRequired"))
    return causes


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
