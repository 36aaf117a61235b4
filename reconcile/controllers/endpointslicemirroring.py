"""EndpointSlice mirroring controller (upstream's pkg/controller/endpointslicemirroring).

A Service without a selector gets its endpoints from a hand-written Endpoints object; consumers
that read only EndpointSlices (our proxy, our DNS, kube-proxy) would see nothing. This controller
mirrors such Endpoints into EndpointSlices, as upstream does:

- only for an Endpoints whose Service exists and has no selector (a Service with a selector is the
  EndpointSlice controller's; mirrored slices of it are deleted), that is not labelled
  `endpointslice.kubernetes.io/skip-mirror: "true"` and carries no leader-election annotation;
- `addresses` become endpoints with `ready: true`, `notReadyAddresses` with `ready: false`, with
  their hostname, nodeName and targetRef; addresses that are not IPs are skipped; at most 1000
  addresses per Endpoints are mirrored (upstream's maxEndpointsPerSubset), 100 per slice;
- subsets with the same ports (and address family) share slices;
- slices carry the Endpoints' labels plus `kubernetes.io/service-name` and
  `endpointslice.kubernetes.io/managed-by: endpointslicemirroring-controller.k8s.io`, its
  annotations (without `endpoints.kubernetes.io/last-change-trigger-time`), and a controller
  ownerReference to the Endpoints, so they go with it (garbage collector).

Slices written are tracked by resourceVersion until the informer shows them, as the EndpointSlice
controller does, so a lagging cache never makes it create twice.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from reconcile.controllers import context, ownership, servicepods, slicetracker
from reconcile.core import errors
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

API_VERSION = "discovery.k8s.io/v1"
PLURAL = "endpointslices"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
MAX_MIRRORED = 1000  # addresses of one Endpoints that are mirrored
MAX_ENDPOINTS_PER_SLICE = 100

Key = controller_mod.Key
GroupKey = tuple[tuple, str]  # (ports, address type)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _port_key(ports: list[dict[str, Any]]) -> tuple:
    return tuple(sorted((p.get("name") or "", p.get("port"), p.get("protocol") or "TCP", p.get("appProtocol") or "")
                        for p in ports))


def should_mirror(endpoints: dict[str, Any] | None) -> bool:
    """Upstream's shouldMirror: not opted out, not a leader-election lock."""
    if not endpoints:
        return False
    md = _dict(endpoints.get("metadata"))
    if _dict(md.get("labels")).get(SKIP_MIRROR_LABEL) == "true":
        return False
    return LEADER_ANNOTATION not in _dict(md.get("annotations"))


def _address_type(ip: str) -> str | None:
    try:
        return "IPv4" if ipaddress.ip_address(ip).version == 4 else "IPv6"
    except ValueError:
        return None


def _endpoint(address: dict[str, Any], ready: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": [address["ip"]], "conditions": {"ready": ready}}
    for field in ("hostname", "nodeName", "targetRef"):
        if address.get(field):
            out[field] = address[field]
    return out


def desired_groups(endpoints: dict[str, Any]) -> dict[GroupKey, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """(port key, address type) -> (slice ports, endpoints), at most MAX_MIRRORED addresses in all."""
    groups: dict[GroupKey, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    seen: set[tuple[GroupKey, str]] = set()
    total = 0
    for subset in _list(endpoints.get("subsets")):
        ports = [{k: p[k] for k in ("name", "port", "protocol", "appProtocol") if p.get(k) not in (None, "")}
                 for p in _list(subset.get("ports"))]
        for p in ports:
            p.setdefault("name", "")
            p.setdefault("protocol", "TCP")
        ports.sort(key=lambda p: (p["name"], p.get("port") or 0))
        for field, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in _list(subset.get(field)):
                ip = address.get("ip")
                family = _address_type(ip) if isinstance(ip, str) else None
                if family is None:
                    continue
                key = (_port_key(ports), family)
                if (key, ip) in seen:
                    continue
                if total >= MAX_MIRRORED:
                    return groups
                seen.add((key, ip))
                total += 1
                groups.setdefault(key, (ports, []))[1].append(_endpoint(address, ready))
    return groups


class EndpointSliceMirroringController:
    """Owns the `endpointslice-mirroring` engine controller (key: the Endpoints' and Service's name)."""

    def __init__(self, ctx: context.ControllerContext, *, max_endpoints: int = MAX_ENDPOINTS_PER_SLICE) -> None:
        self.ctx = ctx
        self.max_endpoints = max_endpoints
        self.services = ctx.informers.get("v1", "services")
        self.endpoints = ctx.informers.get("v1", "endpoints")
        self.slices = ctx.informers.get(API_VERSION, PLURAL)
        self.controller = ctx.controller("endpointslice-mirroring", self.reconcile,
                                         lookup=lambda key: self.endpoints.store.get(*key))
        self.controller.watch(self.services)
        self.controller.watch(self.endpoints)
        self.controller.watch(self.slices, to_keys=self._slice_key)
        self._tracker = slicetracker.SliceTracker(self.slices.store)

    @staticmethod
    def _slice_key(obj: dict[str, Any]) -> list[Key]:
        labels = _dict(_dict(obj.get("metadata")).get("labels"))
        if labels.get(MANAGED_BY_LABEL) != CONTROLLER_NAME or not labels.get(servicepods.SERVICE_NAME_LABEL):
            return []
        return [(_dict(obj.get("metadata")).get("namespace") or "", labels[servicepods.SERVICE_NAME_LABEL])]

    def _mirrored(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return [s for s in self.slices.store.by_index("namespace", namespace)
                if _dict(_dict(s.get("metadata")).get("labels")).get(servicepods.SERVICE_NAME_LABEL) == name
                and _dict(_dict(s.get("metadata")).get("labels")).get(MANAGED_BY_LABEL) == CONTROLLER_NAME]

    async def reconcile(self, key: Key) -> controller_mod.Result | None:
        namespace, name = key
        if not self._tracker.current(key, namespace):
            return controller_mod.Result(requeue_after=0.02)
        svc = self.services.store.get(namespace, name)
        endpoints = self.endpoints.store.get(namespace, name)
        existing = self._mirrored(namespace, name)
        mirror = svc is not None and not isinstance(_dict(svc.get("spec")).get("selector"), dict) \
            and should_mirror(endpoints)
        try:
            if not mirror or endpoints is None:
                for old in existing:
                    await self._delete(key, old)
                if svc is None or endpoints is None:
                    self._tracker.forget(key)
                return None
            uid = _dict(endpoints.get("metadata")).get("uid")
            for stale in [s for s in existing if not ownership.owned_by(s, uid)]:  # of an earlier Endpoints
                await self._delete(key, stale)
            await self._sync(key, endpoints, [s for s in existing if ownership.owned_by(s, uid)])
        except errors.Conflict:
            return controller_mod.Result(requeue_after=0.05)
        except errors.Forbidden as exc:
            if servicepods.namespace_terminating(exc):
                return None
            raise
        return None

    async def _sync(self, key: Key, endpoints: dict[str, Any], existing: list[dict[str, Any]]) -> None:
        md = _dict(endpoints.get("metadata"))
        labels = {**{k: v for k, v in _dict(md.get("labels")).items() if isinstance(v, str)},
                  servicepods.SERVICE_NAME_LABEL: key[1], MANAGED_BY_LABEL: CONTROLLER_NAME}
        annotations = {k: v for k, v in _dict(md.get("annotations")).items()
                       if k != TRIGGER_TIME_ANNOTATION and isinstance(v, str)}
        leftovers = list(existing)
        for (port_key, family), (ports, wanted) in desired_groups(endpoints).items():
            mine = [s for s in leftovers if _port_key(s.get("ports") or []) == port_key
                    and s.get("addressType") == family]
            leftovers = [s for s in leftovers if all(s is not m for m in mine)]
            wanted = sorted(wanted, key=lambda e: e["addresses"][0])
            chunks = [wanted[i:i + self.max_endpoints] for i in range(0, len(wanted), self.max_endpoints)]
            for i, chunk in enumerate(chunks):
                current = mine[i] if i < len(mine) else (leftovers.pop() if leftovers else None)
                await self._write(key, endpoints, current, family, chunk, ports, labels, annotations)
            leftovers.extend(mine[len(chunks):])
        for old in leftovers:
            await self._delete(key, old)

    async def _write(self, key: Key, endpoints: dict[str, Any], current: dict[str, Any] | None, family: str,
                     chunk: list[dict[str, Any]], ports: list[dict[str, Any]], labels: dict[str, str],
                     annotations: dict[str, str]) -> None:
        if current is not None:
            md = _dict(current.get("metadata"))
            if (current.get("endpoints") or []) == chunk and (current.get("ports") or []) == ports \
                    and current.get("addressType") == family and _dict(md.get("labels")) == labels \
                    and _dict(md.get("annotations")) == annotations:
                return
        owner = {"apiVersion": "v1", "kind": "Endpoints", "metadata": endpoints["metadata"]}
        body: dict[str, Any] = {
            "apiVersion": API_VERSION, "kind": "EndpointSlice", "addressType": family,
            "metadata": {"namespace": key[0], "labels": labels, "ownerReferences": [ownership.controller_ref(owner)]},
            "endpoints": chunk, "ports": ports}
        if annotations:
            body["metadata"]["annotations"] = annotations
        if current is None:
            body["metadata"]["generateName"] = f"{key[1]}-"
            written = await self.ctx.client.create(API_VERSION, PLURAL, body, namespace=key[0])
        elif current.get("addressType") != family:  # addressType is immutable: replace the slice
            await self._delete(key, current)
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
