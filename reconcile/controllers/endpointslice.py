"""EndpointSlice controller (discovery.k8s.io/v1, upstream's pkg/controller/endpointslice).

For each Service with a selector: the selected pods with an IP that are not finished (terminating
ones included) become endpoints with upstream's conditions (`serving` = pod Ready, `terminating` =
deletionTimestamp set, `ready` = publishNotReadyAddresses or serving and not terminating), their
node name, targetRef and hostname (when the pod's subdomain is the Service's name). Ports are
resolved per pod, and endpoints are grouped by their resolved port list, so two pods that map a
named port differently land in different slices. At most `max_endpoints` (100) per slice.

Packing follows upstream's reconciler in its effect: an endpoint stays in the slice that already
holds it, changed endpoints are updated in place, new ones fill the fullest slices with room before
a new slice is made, emptied slices go, and a Service with no endpoints keeps one placeholder slice
(no endpoints, no ports). Slices carry `kubernetes.io/service-name`,
`endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`, the Service's labels,
and a controller ownerReference to the Service (the garbage collector removes them with it).

The informer lags the controller's own writes, so the slices it wrote are tracked by name and
resourceVersion; a reconcile that would read a cache older than its own last write waits for the
cache instead (upstream's endpointSliceTracker), which is what keeps it from creating twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from reconcile.controllers import context, ownership, servicepods, slicetracker
from reconcile.core import errors
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

API_VERSION = "discovery.k8s.io/v1"
PLURAL = "endpointslices"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100

Key = controller_mod.Key


def _port_key(ports: list[dict[str, Any]]) -> tuple:
    return tuple((p.get("name") or "", p.get("port"), p.get("protocol") or "TCP", p.get("appProtocol") or "")
                 for p in ports)


def _endpoint_id(endpoint: dict[str, Any]) -> str:
    ref = endpoint.get("targetRef") or {}
    return str(ref.get("uid") or ",".join(endpoint.get("addresses") or []))


Group = tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]  # (resolved ports, endpoint id -> endpoint)


ZONE_LABEL = "topology.kubernetes.io/zone"


def desired_endpoints(svc: dict[str, Any], pods: list[dict[str, Any]],
                      zone_of: Callable[[str], str | None] = lambda _node: None) -> dict[tuple, Group]:
    """Port list key -> (ports, endpoints by id), for the Service over the pods of its namespace;
    `zone_of(node)` is the node's `topology.kubernetes.io/zone` label, when it has one."""
    publish = servicepods.publish_not_ready(svc)
    groups: dict[tuple, Group] = {}
    for pod in servicepods.candidates(svc, pods):
        is_serving = servicepods.serving(pod)
        terminating = servicepods.is_terminating(pod)
        endpoint: dict[str, Any] = {
            "addresses": [servicepods.pod_ip(pod)],
            "conditions": {"ready": publish or (is_serving and not terminating), "serving": is_serving,
                           "terminating": terminating},
            "targetRef": servicepods.target_ref(pod)}
        host = servicepods.hostname(svc, pod)
        if host:
            endpoint["hostname"] = host
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            endpoint["nodeName"] = node
            zone = zone_of(str(node))
            if zone:
                endpoint["zone"] = zone
        ports = servicepods.endpoint_ports(svc, pod)
        groups.setdefault(_port_key(ports), (ports, {}))[1][_endpoint_id(endpoint)] = endpoint
    return groups


class EndpointSliceController:
    """Owns the `endpointslice` engine controller and its informer handlers."""

    def __init__(self, ctx: context.ControllerContext, *, max_endpoints: int = MAX_ENDPOINTS_PER_SLICE) -> None:
        self.ctx = ctx
        self.max_endpoints = max_endpoints
        self.services = ctx.informers.get("v1", "services")
        self.pods = ctx.informers.get("v1", "pods")
        self.slices = ctx.informers.get(API_VERSION, PLURAL)
        self.nodes = ctx.informers.get("v1", "nodes")  # shared with node lifecycle: zones only
        self.controller = ctx.controller("endpointslice", self.reconcile,
                                         lookup=lambda key: self.services.store.get(*key))
        self.controller.watch(self.services)
        self.controller.watch(self.slices, to_keys=self._slice_service)
        servicepods.PodToServices(self.services, self.controller.enqueue).register(self.pods)
        # service key -> slice name -> (resourceVersion written, or None: deleted; when)
        self._tracker = slicetracker.SliceTracker(self.slices.store)

    @staticmethod
    def _slice_service(obj: dict[str, Any]) -> list[Key]:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) != CONTROLLER_NAME or not labels.get(servicepods.SERVICE_NAME_LABEL):
            return []
        return [((obj.get("metadata") or {}).get("namespace") or "", labels[servicepods.SERVICE_NAME_LABEL])]

    def _zone(self, node: str) -> str | None:
        labels = ((self.nodes.store.get(None, node) or {}).get("metadata") or {}).get("labels") or {}
        zone = labels.get(ZONE_LABEL) if isinstance(labels, dict) else None
        return zone if isinstance(zone, str) and zone else None

    # --- reconcile --------------------------------------------------------------------------------

    def _managed_slices(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return [s for s in self.slices.store.by_index("namespace", namespace)
                if ((s.get("metadata") or {}).get("labels") or {}).get(servicepods.SERVICE_NAME_LABEL) == name
                and ((s.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_LABEL) == CONTROLLER_NAME]

    async def reconcile(self, key: Key) -> controller_mod.Result | None:
        namespace, name = key
        if not self._tracker.current(key, namespace):
            return controller_mod.Result(requeue_after=0.02)
        svc = self.services.store.get(namespace, name)
        if svc is None:
            self._tracker.forget(key)
            return None  # its slices go with it (ownerReference, garbage collector)
        existing = self._managed_slices(namespace, name)
        uid = svc["metadata"].get("uid")
        foreign = [s for s in existing if not ownership.owned_by(s, uid)]
        existing = [s for s in existing if ownership.owned_by(s, uid)]
        for stale in foreign:  # a slice of an earlier Service of this name
            await self._delete(key, stale)
        if not servicepods.managed(svc):
            for old in existing:
                await self._delete(key, old)
            return None
        desired = desired_endpoints(svc, self.pods.store.by_index("namespace", namespace), self._zone)
        try:
            await self._sync(key, svc, desired, existing)
        except errors.Conflict:
            return controller_mod.Result(requeue_after=0.05)  # a slice changed meanwhile: read again
        except errors.Forbidden as exc:
            if servicepods.namespace_terminating(exc):
                return None
            raise
        return None

    async def _sync(self, key: Key, svc: dict[str, Any], desired: dict[tuple, Group],
                    existing: list[dict[str, Any]]) -> None:
        labels = {**servicepods.service_labels(svc), servicepods.SERVICE_NAME_LABEL: svc["metadata"]["name"],
                  MANAGED_BY_LABEL: CONTROLLER_NAME}
        plans: list[tuple[dict[str, Any] | None, list[dict[str, Any]], list[dict[str, Any]]]] = []
        leftovers = list(existing)
        for port_key, (ports, wanted) in desired.items():
            wanted = dict(wanted)
            mine = [s for s in leftovers if _port_key(s.get("ports") or []) == port_key]
            leftovers = [s for s in leftovers if s not in mine]
            placed: list[tuple[dict[str, Any] | None, list[dict[str, Any]]]] = []
            for slice_ in mine:  # keep endpoints where they are, with their new state
                kept = [wanted.pop(_endpoint_id(e)) for e in slice_.get("endpoints") or []
                        if _endpoint_id(e) in wanted]
                placed.append((slice_, kept))
            fresh = list(wanted.values())
            for _slice, kept in sorted(placed, key=lambda p: -len(p[1])):  # fullest first
                room = self.max_endpoints - len(kept)
                if room > 0 and fresh:
                    kept.extend(fresh[:room])
                    fresh = fresh[room:]
            while fresh:
                placed.append((None, fresh[:self.max_endpoints]))
                fresh = fresh[self.max_endpoints:]
            plans += [(s, kept, ports) for s, kept in placed]
        # Reuse a leftover slice (a port map no longer wanted) for a new one, as upstream turns a
        # create plus a delete into an update.
        for i, (slice_, kept, ports) in enumerate(plans):
            if slice_ is None and leftovers:
                plans[i] = (leftovers.pop(), kept, ports)
        nonempty = [p for p in plans if p[1]]
        if not nonempty:  # a placeholder: one slice, no endpoints, no ports
            keep = next((p[0] for p in plans if p[0] is not None), None) or (leftovers.pop() if leftovers else None)
            nonempty = [(keep, [], [])]
        for slice_, _kept, _ports in plans:
            if slice_ is not None and not _kept and all(slice_ is not p[0] for p in nonempty):
                leftovers.append(slice_)
        for slice_, kept, ports in nonempty:
            await self._write(key, svc, slice_, kept, ports, labels)
        for old in leftovers:
            await self._delete(key, old)

    async def _write(self, key: Key, svc: dict[str, Any], current: dict[str, Any] | None,
                     endpoints: list[dict[str, Any]], ports: list[dict[str, Any]], labels: dict[str, str]) -> None:
        endpoints = sorted(endpoints, key=lambda e: (e["addresses"][0], _endpoint_id(e)))
        if current is not None:
            md = current.get("metadata") or {}
            if (current.get("endpoints") or []) == endpoints and (current.get("ports") or []) == ports \
                    and (md.get("labels") or {}) == labels and current.get("addressType") == "IPv4":
                return
        body: dict[str, Any] = {
            "apiVersion": API_VERSION, "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"namespace": key[0], "labels": labels, "ownerReferences": [ownership.controller_ref(svc)]},
            "endpoints": endpoints, "ports": ports}
        if current is None:
            body["metadata"]["generateName"] = f"{key[1]}-"
            written = await self.ctx.client.create(API_VERSION, PLURAL, body, namespace=key[0])
        else:
            body["metadata"]["name"] = current["metadata"]["name"]
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            written = await self.ctx.client.replace(API_VERSION, PLURAL, body, namespace=key[0])
        self._tracker.written(key, written["metadata"]["name"], written["metadata"]["resourceVersion"])

    async def _delete(self, key: Key, slice_: dict[str, Any]) -> None:
        name = slice_["metadata"]["name"]
        try:
            await self.ctx.client.delete(API_VERSION, PLURAL, name, namespace=key[0])
        except errors.NotFound:
            pass
        self._tracker.written(key, name, None)
