"""Endpoints controller (core/v1 Endpoints, upstream's pkg/controller/endpoint): one Endpoints object
per selecting Service, named after it, listing the selected pods' addresses.

Ready pods go to `addresses`, others to `notReadyAddresses` (all to `addresses` with
publishNotReadyAddresses); terminating pods are left out unless publishNotReadyAddresses; a pod
joins a subset only for the ports that resolve on it, and subsets are repacked by identical port
sets. Above 1000 addresses the list is truncated (ready ones kept first) and annotated
`endpoints.kubernetes.io/over-capacity: truncated`. Nothing is written when nothing changed.
A deleted Service's Endpoints are deleted; Services without a selector are never touched.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from reconcile.controllers import context, servicepods
from reconcile.core import errors
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

MAX_CAPACITY = 1000
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"

Key = controller_mod.Key


def _port_key(ports: list[dict[str, Any]]) -> tuple:
    return tuple(sorted((p.get("name") or "", p["port"], p.get("protocol") or "TCP", p.get("appProtocol") or "")
                        for p in ports))


def desired_subsets(svc: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """(subsets, truncated) for a Service over the pods of its namespace."""
    tolerate = servicepods.publish_not_ready(svc)
    groups: dict[tuple, dict[str, Any]] = {}
    has_ports = bool((svc.get("spec") or {}).get("ports"))
    for pod in servicepods.candidates(svc, pods):
        if servicepods.is_terminating(pod) and not tolerate:
            continue
        address: dict[str, Any] = {"ip": servicepods.pod_ip(pod), "targetRef": servicepods.target_ref(pod)}
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            address["nodeName"] = node
        host = servicepods.hostname(svc, pod)
        if host:
            address["hostname"] = host
        ports = servicepods.endpoint_ports(svc, pod)
        if has_ports and not ports:
            continue
        group = groups.setdefault(_port_key(ports), {"addresses": [], "notReadyAddresses": [], "ports": ports})
        ready = tolerate or servicepods.serving(pod)
        group["addresses" if ready else "notReadyAddresses"].append(address)
    total = sum(len(g["addresses"]) + len(g["notReadyAddresses"]) for g in groups.values())
    truncated = total > MAX_CAPACITY
    if truncated:
        _truncate(list(groups.values()), total)
    subsets = []
    for _, group in sorted(groups.items()):
        subset: dict[str, Any] = {}
        for field in ("addresses", "notReadyAddresses"):
            if group[field]:
                subset[field] = sorted(group[field], key=lambda a: a["ip"])
        if group["ports"]:
            subset["ports"] = sorted(group["ports"], key=lambda p: (p["name"], p["port"]))
        if subset.get("addresses") or subset.get("notReadyAddresses"):
            subsets.append(subset)
    return subsets, truncated


def _truncate(groups: list[dict[str, Any]], total: int) -> None:
    """Upstream's truncateEndpoints: each subset keeps its share of MAX_CAPACITY, ready ones first."""
    kept = 0
    for i, group in enumerate(groups):
        size = len(group["addresses"]) + len(group["notReadyAddresses"])
        share = MAX_CAPACITY - kept if i == len(groups) - 1 else int(size * MAX_CAPACITY / total)
        ready = group["addresses"][:share]
        group["notReadyAddresses"] = group["notReadyAddresses"][:max(0, share - len(ready))]
        group["addresses"] = ready
        kept += len(ready) + len(group["notReadyAddresses"])


class EndpointsController:
    """Owns the `endpoint` engine controller (upstream's name) and its informer handlers."""

    def __init__(self, ctx: context.ControllerContext) -> None:
        self.ctx = ctx
        self.services = ctx.informers.get("v1", "services")
        self.pods = ctx.informers.get("v1", "pods")
        self.endpoints = ctx.informers.get("v1", "endpoints")
        self.controller = ctx.controller("endpoint", self.reconcile,
                                         lookup=lambda key: self.services.store.get(*key))
        self.controller.watch(self.services)
        self.controller.watch(self.endpoints)  # a changed or deleted Endpoints is put right again
        servicepods.PodToServices(self.services, self.controller.enqueue).register(self.pods)
        self._written: dict[Key, tuple[int, float]] = {}  # our last write the cache may not show yet

    def _cache_behind(self, key: Key, current: dict[str, Any] | None) -> bool:
        """Whether the cached Endpoints is older than this controller's own last write of it (then a
        write from it would only conflict): wait for the cache, for a few seconds at most."""
        written = self._written.get(key)
        if written is None:
            return False
        seen = int(((current or {}).get("metadata") or {}).get("resourceVersion") or 0)
        if seen >= written[0] or time.monotonic() - written[1] > 5.0:
            del self._written[key]
            return False
        return True

    async def reconcile(self, key: Key) -> controller_mod.Result | None:
        namespace, name = key
        svc = self.services.store.get(namespace, name)
        current = self.endpoints.store.get(namespace, name)
        if self._cache_behind(key, current):
            return controller_mod.Result(requeue_after=0.02)
        if svc is None:
            if current is not None and LEADER_ANNOTATION not in ((current.get("metadata") or {}).get("annotations")
                                                                 or {}):
                try:
                    await self.ctx.client.delete("v1", "endpoints", name, namespace=namespace)
                except errors.NotFound:
                    pass
            return None
        if not servicepods.managed(svc):
            return None
        subsets, truncated = desired_subsets(svc, self.pods.store.by_index("namespace", namespace))
        labels = servicepods.service_labels(svc)
        annotations = dict((current or {}).get("metadata", {}).get("annotations") or {})
        annotations.pop(OVER_CAPACITY, None)
        if truncated:
            annotations[OVER_CAPACITY] = "truncated"
        if current is not None:
            md = current.get("metadata") or {}
            if (current.get("subsets") or []) == subsets and (md.get("labels") or {}) == labels \
                    and (md.get("annotations") or {}) == annotations:
                return None
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "Endpoints",
                                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                                "subsets": subsets}
        if annotations:
            body["metadata"]["annotations"] = annotations
        try:
            if current is None:
                written = await self.ctx.client.create("v1", "endpoints", body, namespace=namespace)
            else:
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                written = await self.ctx.client.replace("v1", "endpoints", body, namespace=namespace)
        except (errors.Conflict, errors.AlreadyExists):
            return controller_mod.Result(requeue_after=0.05)  # someone wrote it meanwhile: read again
        except errors.ApiError as exc:
            if servicepods.namespace_terminating(exc):
                return None
            reason = "FailedToCreateEndpoint" if current is None else "FailedToUpdateEndpoint"
            if not isinstance(exc, errors.NotFound):
                verb = "create" if current is None else "update"
                await self.ctx.event(svc, reason=reason, type="Warning",
                                     message=f"Failed to {verb} endpoint {namespace}/{name}: {exc}")
            raise
        self._written[key] = (int(written["metadata"]["resourceVersion"]), time.monotonic())
        return None
