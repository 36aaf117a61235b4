"""The Node object and its Lease: how the rest of the cluster learns this node exists and is alive.

Capacity comes from the Docker engine (NCPU, MemTotal); allocatable is capacity minus the
configured reserve. The Lease in `kube-node-lease` is the heartbeat the node lifecycle
controller watches; the Node's status is rewritten only at start and when it changes.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from reconcile.client import aio
from reconcile.core import errors, meta, quantities
from reconcile.engine import clock as clock_mod

log = logging.getLogger(__name__)

KUBELET_VERSION = "v1.32.0-reconcile"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40
MAX_PODS = 110


def micro_time(moment: datetime) -> str:
    """Lease times are MicroTime: `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _arch(value: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(value.lower(), value.lower())


def node_labels(name: str, info: dict[str, Any]) -> dict[str, str]:
    return {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": str(info.get("OSType") or "linux"),
        "kubernetes.io/arch": _arch(str(info.get("Architecture") or platform.machine())),
    }


def node_status(*, name: str, address: str, port: int, info: dict[str, Any], reserve_cpu: int,
                reserve_memory: int, now: str, ready_since: str) -> dict[str, Any]:
    cpu_millis = int(info.get("NCPU") or 1) * 1000
    memory = int(info.get("MemTotal") or 0)
    capacity = {"cpu": str(cpu_millis // 1000), "memory": f"{memory // 1024}Ki", "pods": str(MAX_PODS)}
    allocatable = {
        "cpu": quantities.format_cpu_millis(max(0, cpu_millis - reserve_cpu)),
        "memory": f"{max(0, memory - reserve_memory) // 1024}Ki",
        "pods": str(MAX_PODS),
    }
    return {
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
            "lastHeartbeatTime": now, "lastTransitionTime": ready_since,
        }],
        "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": str(info.get("ID") or ""),
            "systemUUID": str(info.get("ID") or ""),
            "bootID": "",
            "kernelVersion": str(info.get("KernelVersion") or platform.release()),
            "osImage": str(info.get("OperatingSystem") or ""),
            "containerRuntimeVersion": f"docker://{info.get('ServerVersion') or 'unknown'}",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": str(info.get("OSType") or "linux"),
            "architecture": _arch(str(info.get("Architecture") or platform.machine())),
        },
    }


async def register(client: aio.AsyncClient, *, name: str, pod_cidr: str, labels: dict[str, str],
                   status: dict[str, Any]) -> dict[str, Any]:
    """Create the Node (or keep the existing one, adding our labels), then write its status."""
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}}
    try:
        await client.create("v1", "nodes", node)
    except errors.AlreadyExists:
        await client.patch("v1", "nodes", name, {"metadata": {"labels": labels}})
    return await client.patch("v1", "nodes", name, {"status": status}, subresource="status")


class LeaseKeeper:
    """Renews `kube-node-lease/<node>` every `interval` seconds (creating it when missing)."""

    def __init__(self, client: aio.AsyncClient, *, node: str, interval: float = 10.0,
                 clock: clock_mod.Clock | None = None) -> None:
        self.client = client
        self.node = node
        self.interval = interval
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        self.renewals = 0

    async def renew(self) -> None:
        now = micro_time(self.clock.wall())
        spec = {"holderIdentity": self.node, "leaseDurationSeconds": LEASE_DURATION, "renewTime": now}
        try:
            await self.client.patch("coordination.k8s.io/v1", "leases", self.node, {"spec": spec},
                                    namespace=LEASE_NAMESPACE)
        except errors.NotFound:
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": self.node, "namespace": LEASE_NAMESPACE},
                     "spec": {**spec, "acquireTime": now}}
            try:
                await self.client.create("coordination.k8s.io/v1", "leases", lease, namespace=LEASE_NAMESPACE)
            except errors.AlreadyExists:
                return await self.renew()
        self.renewals += 1

    async def run(self) -> None:
        while True:
            try:
                await self.renew()
            except errors.ApiError as exc:
                log.warning("renewing the node lease failed: %s", exc)
            await self.clock.sleep(self.interval)


def needs_update(node: dict[str, Any], *, now: datetime, max_age: float) -> bool:
    """True when our Ready condition is gone, not True, or its heartbeat is older than `max_age` seconds."""
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") != "Ready":
            continue
        if condition.get("status") != "True" or not condition.get("lastHeartbeatTime"):
            return True
        try:
            age = (now - meta.parse_time(condition["lastHeartbeatTime"])).total_seconds()
        except ValueError:
            return True
        return age >= max_age
    return True


def ready_since(node: dict[str, Any] | None, now: str) -> str:
    for condition in ((node or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            return str(condition.get("lastTransitionTime") or now)
    return now


async def current_node(client: aio.AsyncClient, name: str) -> dict[str, Any] | None:
    try:
        return await client.get("v1", "nodes", name)
    except errors.NotFound:
        return None


def now_string(clock: clock_mod.Clock) -> str:
    return meta.format_time(clock.wall())


async def run_periodically(interval: float, fn: Callable[[], Awaitable[None]], *, clock: clock_mod.Clock) -> None:
    """Call `fn()` every `interval` seconds, logging (not raising) API errors."""
    while True:
        await clock.sleep(interval)
        try:
            await fn()
        except (TimeoutError, errors.ApiError) as exc:
            log.warning("periodic node update failed: %s", exc)
