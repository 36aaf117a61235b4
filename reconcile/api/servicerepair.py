"""What the API server keeps true about Services on its own: the `kubernetes` Service in `default`
(upstream's controlplane "kubernetes service" controller) and the allocation claims (upstream's
repair controllers for cluster IPs and node ports).

`default/kubernetes` gets the first address of the service range, port 443 (`https`) to the API
server's own port, and an Endpoints object and an EndpointSlice (both named `kubernetes`) listing
this server's address. With several API servers each adds its own address and none removes
another's (upstream expires them with a lease per server; here a stopped server's address stays
until an operator removes it).

Repair: a claim in etcd that no Service holds is a leak (a server stopped between claiming and
storing, or between deleting and freeing). It is freed once it is older than `LEAK_GRACE_SECONDS`,
so a create still in flight on another server is never robbed. A Service whose address has no
claim (stored before claims existed) gets one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from reconcile.api import allocators, registry, rest
from reconcile.core import errors

log = logging.getLogger(__name__)

LEAK_GRACE_SECONDS = 60.0
REPAIR_INTERVAL_SECONDS = 180.0  # upstream's repair loop runs every 3 minutes
SERVICE_LABELS = {"component": "apiserver", "provider": "kubernetes"}


def kubernetes_service(cluster_ip: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": dict(SERVICE_LABELS)},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}}


async def ensure_kubernetes_service(api: rest.Rest, ips: allocators.ClusterIPRange, host: str, port: int) -> None:
    """default/kubernetes and its Endpoints/EndpointSlice, with this server's address among them."""
    services = api.registry.get("", "v1", "services")
    endpoints = api.registry.get("", "v1", "endpoints")
    slices = api.registry.get("discovery.k8s.io", "v1", "endpointslices")
    if services is None or endpoints is None:
        return
    try:
        await api.create(services, "default", kubernetes_service(ips.first, port))
    except errors.AlreadyExists:
        pass
    except errors.ApiError as exc:  # the first address is held by another Service: say so, keep serving
        log.warning("the kubernetes Service cannot be created: %s", exc.message)

    def add_address(obj: dict[str, Any]) -> dict[str, Any]:
        subsets = [s for s in obj.get("subsets") or [] if isinstance(s, dict)]
        for subset in subsets:
            if [p.get("port") for p in subset.get("ports") or []] == [port]:
                if not any(a.get("ip") == host for a in subset.get("addresses") or []):
                    subset.setdefault("addresses", []).append({"ip": host})
                break
        else:
            subsets.append({"addresses": [{"ip": host}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]})
        obj["subsets"] = subsets
        obj.setdefault("metadata", {}).setdefault("labels", {})["endpointslice.kubernetes.io/skip-mirror"] = "true"
        return obj

    await _upsert(api, endpoints, add_address, {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kubernetes", "namespace": "default"}})
    if slices is None:
        return

    def add_endpoint(obj: dict[str, Any]) -> dict[str, Any]:
        obj["addressType"] = "IPv4"
        obj.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/service-name"] = "kubernetes"
        points = [e for e in obj.get("endpoints") or [] if isinstance(e, dict)]
        if not any(host in (e.get("addresses") or []) for e in points):
            points.append({"addresses": [host], "conditions": {"ready": True}})
        obj["endpoints"] = points
        obj["ports"] = [{"name": "https", "port": port, "protocol": "TCP"}]
        return obj

    await _upsert(api, slices, add_endpoint, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4", "endpoints": [],
        "metadata": {"name": "kubernetes", "namespace": "default"}})


async def _upsert(api: rest.Rest, resource: registry.Resource, mutate: Callable[[dict], dict], blank: dict) -> None:
    """Create `mutate(blank)`, or apply `mutate` to the stored object (another server made it first)."""
    try:
        await api.create(resource, "default", mutate(blank))
    except errors.AlreadyExists:
        await api.guarded_update(resource, "default", blank["metadata"]["name"], mutate)


async def repair(api: rest.Rest, ips: allocators.ClusterIPRange, ports: allocators.NodePortRange) -> tuple[int, int]:
    """One pass: (leaked claims freed, missing claims made)."""
    services = api.registry.get("", "v1", "services")
    if services is None:
        return 0, 0
    listed = await api.store.list(api.prefix(services, None))
    live = []
    for kv in listed.items:
        try:
            live.append(rest.decode(kv))
        except errors.ApiError:
            continue
    held_ips, held_ports = allocators.service_values(live)
    by_uid = {str((s.get("metadata") or {}).get("uid")): s for s in live}
    freed = made = 0
    now = time.time()
    for allocator, held in ((ips, held_ips), (ports, held_ports)):
        claims = await allocator.owners()
        for name, (owner, when, revision) in claims.items():
            if owner is not None and held.get(name) == owner.uid:
                continue
            if now - when < LEAK_GRACE_SECONDS:
                continue
            log.info("freeing leaked service allocation %s%s (owner %s)", allocator.prefix, name, owner)
            await allocator.drop(name, revision)
            freed += 1
        for name, uid in held.items():
            if name in claims or allocator.index(name) is None or uid not in by_uid:
                continue
            meta = by_uid[uid].get("metadata") or {}
            index = allocator.index(name)
            if index is not None and await allocator.claim(index, allocators.Owner(
                    str(meta.get("namespace") or ""), str(meta.get("name") or ""), uid)):
                made += 1
    return freed, made


async def repair_forever(api: rest.Rest, ips: allocators.ClusterIPRange, ports: allocators.NodePortRange,
                         interval: float = REPAIR_INTERVAL_SECONDS) -> None:
    while True:
        try:
            await repair(api, ips, ports)
        except Exception as exc:  # a failed pass is retried on the next one
            log.warning("service allocation repair failed: %s", exc)
        await asyncio.sleep(interval)
