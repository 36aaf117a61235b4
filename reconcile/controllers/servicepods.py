"""What the Endpoints and EndpointSlice controllers share: which Services select a pod, and what a
pod contributes to a Service (its address, its resolved ports, its conditions), as upstream's
endpoint utilities compute them.

Every reader tolerates wrong types (a pod written straight into etcd): an odd field counts as absent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconcile.controllers import podutil
from reconcile.core import errors
from reconcile.engine import controller as controller_mod

Key = controller_mod.Key
HEADLESS_LABEL = "service.kubernetes.io/headless"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def managed(svc: dict[str, Any]) -> bool:
    """Services whose endpoints the controllers compute: a selector, and not ExternalName. A Service
    without a selector is left to hand-written Endpoints/EndpointSlices."""
    spec = _dict(svc.get("spec"))
    return isinstance(spec.get("selector"), dict) and spec.get("type") != "ExternalName"


def selects(svc: dict[str, Any], pod: dict[str, Any]) -> bool:
    """A Service's selector is a plain map: every pair present on the pod (an empty map selects all)."""
    selector = _dict(_dict(svc.get("spec")).get("selector"))
    labels = _dict(_dict(pod.get("metadata")).get("labels"))
    return all(labels.get(k) == v for k, v in selector.items())


def is_headless(svc: dict[str, Any]) -> bool:
    return _dict(svc.get("spec")).get("clusterIP") == "None"


def pod_ip(pod: dict[str, Any]) -> str | None:
    status = _dict(pod.get("status"))
    ip = status.get("podIP")
    if not ip:
        ips = _list(status.get("podIPs"))
        ip = ips[0].get("ip") if ips else None
    return ip if isinstance(ip, str) and ip else None


def is_terminal(pod: dict[str, Any]) -> bool:
    return _dict(pod.get("status")).get("phase") in ("Succeeded", "Failed")


def is_terminating(pod: dict[str, Any]) -> bool:
    return bool(_dict(pod.get("metadata")).get("deletionTimestamp"))


def candidates(svc: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The selected pods that can be endpoints: an IP, not finished (terminating ones included)."""
    namespace = _dict(svc.get("metadata")).get("namespace")
    return sorted((p for p in pods if _dict(p.get("metadata")).get("namespace") == namespace and selects(svc, p)
                   and pod_ip(p) and not is_terminal(p)),
                  key=lambda p: (pod_ip(p) or "", _dict(p.get("metadata")).get("name") or ""))


def resolve_port(pod: dict[str, Any], port: dict[str, Any]) -> int | None:
    """podutil.FindPort: a number as is; a name must match a container port of that name and protocol
    (restartable init containers, the sidecars, are searched too)."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int) and not isinstance(target, bool):
        return target if 0 < target < 65536 else None
    if not isinstance(target, str):
        return None
    if target.isdigit():
        return int(target)
    protocol = port.get("protocol") or "TCP"
    spec = _dict(pod.get("spec"))
    containers = _list(spec.get("containers")) + [c for c in _list(spec.get("initContainers"))
                                                   if c.get("restartPolicy") == "Always"]
    for container in containers:
        for cport in _list(container.get("ports")):
            if cport.get("name") == target and (cport.get("protocol") or "TCP") == protocol:
                number = cport.get("containerPort")
                return number if isinstance(number, int) else None
    return None


def endpoint_ports(svc: dict[str, Any], pod: dict[str, Any]) -> list[dict[str, Any]]:
    """The Service's ports resolved on this pod (a port that does not resolve is left out)."""
    result = []
    for port in _list(_dict(svc.get("spec")).get("ports")):
        number = resolve_port(pod, port)
        if number is None:
            continue
        entry: dict[str, Any] = {"name": port.get("name") or "", "port": number,
                                 "protocol": port.get("protocol") or "TCP"}
        if port.get("appProtocol"):
            entry["appProtocol"] = port["appProtocol"]
        result.append(entry)
    return result


def hostname(svc: dict[str, Any], pod: dict[str, Any]) -> str | None:
    """A pod's hostname is published only when its subdomain is this Service's name."""
    spec = _dict(pod.get("spec"))
    name = _dict(svc.get("metadata")).get("name")
    if spec.get("hostname") and spec.get("subdomain") == name:
        return str(spec["hostname"])
    return None


def target_ref(pod: dict[str, Any]) -> dict[str, Any]:
    md = _dict(pod.get("metadata"))
    return {"kind": "Pod", "namespace": md.get("namespace") or "", "name": md.get("name") or "",
            "uid": md.get("uid") or ""}


def serving(pod: dict[str, Any]) -> bool:
    return podutil.is_ready(pod)


def publish_not_ready(svc: dict[str, Any]) -> bool:
    return _dict(svc.get("spec")).get("publishNotReadyAddresses") is True


def service_labels(svc: dict[str, Any]) -> dict[str, str]:
    """The Service's labels on its endpoints, plus the headless marker."""
    labels = {k: v for k, v in _dict(_dict(svc.get("metadata")).get("labels")).items() if isinstance(v, str)}
    if is_headless(svc):
        labels[HEADLESS_LABEL] = ""
    return labels


def namespace_terminating(error: BaseException) -> bool:
    """A write refused because the namespace is going away: upstream's controllers drop the key."""
    causes = ((getattr(error, "details", None) or {}).get("causes")) or []
    return isinstance(error, errors.Forbidden) and any(c.get("reason") == "NamespaceTerminating" for c in causes)


class PodToServices:
    """Pod events -> the keys of the Services that select the pod (before and after the change)."""

    def __init__(self, services: Any, enqueue: Callable[[Key], None]) -> None:
        self.services, self.enqueue = services, enqueue

    def keys(self, pod: dict[str, Any]) -> set[Key]:
        namespace = _dict(pod.get("metadata")).get("namespace") or ""
        return {(namespace, s["metadata"]["name"]) for s in self.services.store.by_index("namespace", namespace)
                if managed(s) and selects(s, pod)}

    def added(self, pod: dict[str, Any]) -> None:
        for key in self.keys(pod):
            self.enqueue(key)

    def updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        for key in self.keys(old) | self.keys(new):
            self.enqueue(key)

    def register(self, pods: Any) -> None:
        pods.add_handler(on_add=self.added, on_update=self.updated, on_delete=self.added)
