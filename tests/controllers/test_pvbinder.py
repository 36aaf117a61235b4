"""The persistentvolume binder in a real controller-manager against a real API server: binding both
sides, pre-bound volumes and claims, Pending with an Event, Released on claim delete."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from reconcile.client import api
from reconcile.core import errors
from tests import support
from tests.controllers import helpers


def volume(name: str, *, size: str = "1Gi", modes: tuple[str, ...] = ("ReadWriteOnce",), cls: str = "",
           policy: str = "Retain", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": list(modes), "storageClassName": cls,
                     "persistentVolumeReclaimPolicy": policy, "hostPath": {"path": f"/tmp/{name}"}, **spec}}


def claim(name: str, *, size: str = "1Gi", modes: tuple[str, ...] = ("ReadWriteOnce",), cls: str = "",
          **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": size}},
                     "storageClassName": cls, **spec}}


@pytest.fixture(scope="module", autouse=True)
def running(controller_manager: helpers.ControllerManagerProcess) -> None:
    """The controllers are up (a loaded machine takes seconds to sync the informers)."""
    support.wait_for(lambda: controller_manager.starts() >= 1, timeout=90, what="controllers started")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def phase(obj: dict[str, Any]) -> str:
    return (obj.get("status") or {}).get("phase") or ""


def wait_bound(client: api.Client, ns: str, name: str, timeout: float = 20) -> dict[str, Any]:
    last: list[dict[str, Any]] = []

    def bound() -> dict[str, Any] | None:
        found = client.get("v1", "persistentvolumeclaims", name, namespace=ns)
        last[:] = [found]
        return found if phase(found) == "Bound" else None
    return support.wait_for(bound, timeout=timeout, what=f"claim {name} Bound (last seen: {last})")


def events_for(client: api.Client, ns: str, name: str) -> list[dict[str, Any]]:
    return [e for e in client.list("v1", "events", namespace=ns).get("items") or []
            if (e.get("involvedObject") or {}).get("name") == name]


def cleanup_volume(client: api.Client, name: str) -> None:
    try:
        client.patch("v1", "persistentvolumes", name, {"metadata": {"finalizers": None}})
        client.delete("v1", "persistentvolumes", name)
    except errors.NotFound:
        pass


def test_binds_smallest_fitting_and_writes_both_sides(controller_manager: helpers.ControllerManagerProcess,
                                                      client: api.Client, ns: str) -> None:
    big, small, tiny = unique("big"), unique("small"), unique("tiny")
    for name, size in ((big, "10Gi"), (small, "2Gi"), (tiny, "100Mi")):
        client.create("v1", "persistentvolumes", volume(name, size=size, cls=ns))
    for name in (big, small, tiny):  # new volumes are Pending until the binder finds them
        support.wait_for(lambda n=name: phase(client.get("v1", "persistentvolumes", n)) == "Available",
                         timeout=10, what="volumes Available")
    client.create("v1", "persistentvolumeclaims", claim("data", size="1Gi", cls=ns), namespace=ns)
    bound = wait_bound(client, ns, "data")
    assert bound["spec"]["volumeName"] == small
    annotations = bound["metadata"]["annotations"]
    assert annotations["pv.kubernetes.io/bind-completed"] == "yes"
    assert annotations["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert bound["status"]["capacity"] == {"storage": "2Gi"}
    assert bound["status"]["accessModes"] == ["ReadWriteOnce"]
    pv = support.wait_for(lambda: (v := client.get("v1", "persistentvolumes", small)) and phase(v) == "Bound" and v,
                          timeout=10, what="volume Bound")
    assert pv["spec"]["claimRef"]["uid"] == bound["metadata"]["uid"]
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
    for name in (big, tiny):
        support.wait_for(lambda n=name: phase(client.get("v1", "persistentvolumes", n)) == "Available",
                         timeout=10, what="unchosen volumes Available")
    # Retain: deleting the claim leaves the volume Released, its claimRef kept (never rebinds by itself)
    client.delete("v1", "persistentvolumeclaims", "data", namespace=ns)
    support.wait_for(lambda: phase(client.get("v1", "persistentvolumes", small)) == "Released", timeout=20,
                     what=f"volume Released; log:\n{controller_manager.log_tail()}")
    client.create("v1", "persistentvolumeclaims", claim("again", size="2Gi", modes=("ReadWriteOnce",), cls=ns,
                                                        volumeName=small), namespace=ns)
    support.wait_for(lambda: any(e["reason"] == "FailedBinding" for e in events_for(client, ns, "again")),
                     timeout=20, what="FailedBinding on a Released volume")
    assert phase(client.get("v1", "persistentvolumeclaims", "again", namespace=ns)) == "Pending"
    for name in (big, small, tiny):
        cleanup_volume(client, name)


def test_unmatched_claim_stays_pending_with_reason(controller_manager: helpers.ControllerManagerProcess,
                                                   client: api.Client, ns: str) -> None:
    client.create("v1", "persistentvolumeclaims", claim("huge", size="1Pi"), namespace=ns)
    support.wait_for(lambda: any(
        e["reason"] == "FailedBinding"
        and e["message"] == "no persistent volumes available for this claim and no storage class is set"
        for e in events_for(client, ns, "huge")), timeout=20, what="FailedBinding event")
    assert phase(client.get("v1", "persistentvolumeclaims", "huge", namespace=ns)) == "Pending"


def test_prebound_volume_and_claim(controller_manager: helpers.ControllerManagerProcess,
                                   client: api.Client, ns: str) -> None:
    # a volume pre-bound to a claim by name binds it although its class differs
    reserved = unique("reserved")
    client.create("v1", "persistentvolumes", volume(reserved, cls="gold", claimRef={"namespace": ns, "name": "mine"}))
    client.create("v1", "persistentvolumeclaims", claim("mine", cls=""), namespace=ns)
    assert wait_bound(client, ns, "mine")["spec"]["volumeName"] == reserved
    pv = client.get("v1", "persistentvolumes", reserved)
    assert "pv.kubernetes.io/bound-by-controller" not in (pv["metadata"].get("annotations") or {})
    # a claim naming a volume too small for it: VolumeMismatch, stays Pending
    small = unique("small")
    client.create("v1", "persistentvolumes", volume(small, size="1Mi", cls=ns))
    client.create("v1", "persistentvolumeclaims", claim("named", cls=ns, volumeName=small), namespace=ns)
    support.wait_for(lambda: any(
        e["reason"] == "VolumeMismatch" and e["message"] == f'Cannot bind to requested volume "{small}": '
                                                            "requested PV is too small"
        for e in events_for(client, ns, "named")), timeout=20, what="VolumeMismatch event")
    for name in (reserved, small):
        cleanup_volume(client, name)


def test_crash_between_the_writes_recovers(controller_manager: helpers.ControllerManagerProcess,
                                           client: api.Client, ns: str) -> None:
    """Step 1 done by a controller that then died (the volume's claimRef holds the claim's uid, the
    claim knows nothing): the binder completes the same binding, never a second one."""
    other, chosen = unique("other"), unique("chosen")
    created = client.create("v1", "persistentvolumeclaims", claim("half", size="1Gi", cls=f"{ns}-half"), namespace=ns)
    body = volume(chosen, size="5Gi", cls=f"{ns}-half", claimRef={
        "kind": "PersistentVolumeClaim", "namespace": ns, "name": "half", "uid": created["metadata"]["uid"]})
    body["metadata"]["annotations"] = {"pv.kubernetes.io/bound-by-controller": "yes"}
    client.create("v1", "persistentvolumes", body)
    # the free volume comes after the half-bound one (before it, the live binder may rightly take it)
    client.create("v1", "persistentvolumes", volume(other, size="1Gi", cls=f"{ns}-half"))
    assert wait_bound(client, ns, "half")["spec"]["volumeName"] == chosen
    support.wait_for(lambda: phase(client.get("v1", "persistentvolumes", other)) == "Available", timeout=10,
                     what="the other volume stays free")
    assert not client.get("v1", "persistentvolumes", other)["spec"].get("claimRef")
    for name in (other, chosen):
        cleanup_volume(client, name)


def pod(name: str, claim_name: str, *, node: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "busybox"}],
                            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def gone(client: api.Client, plural: str, name: str, ns: str | None = None) -> bool:
    try:
        client.get("v1", plural, name, namespace=ns)
    except errors.NotFound:
        return True
    return False


def test_claim_in_use_waits_for_its_pod(controller_manager: helpers.ControllerManagerProcess,
                                        client: api.Client, ns: str) -> None:
    client.create("v1", "persistentvolumeclaims", claim("used"), namespace=ns)
    client.create("v1", "persistentvolumeclaims", claim("unscheduled"), namespace=ns)
    client.create("v1", "pods", pod("runs", "used", node="node-a"), namespace=ns)
    client.create("v1", "pods", pod("waits", "unscheduled", node=None), namespace=ns)
    # only a scheduled pod keeps its claim: deleted first, it stays; the other goes at once
    client.delete("v1", "persistentvolumeclaims", "used", namespace=ns)
    client.delete("v1", "persistentvolumeclaims", "unscheduled", namespace=ns)
    support.wait_for(lambda: gone(client, "persistentvolumeclaims", "unscheduled", ns), timeout=20,
                     what="claim of an unscheduled pod deleted")
    lingering = client.get("v1", "persistentvolumeclaims", "used", namespace=ns)
    assert lingering["metadata"]["deletionTimestamp"]
    assert lingering["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert not gone(client, "persistentvolumeclaims", "used", ns)
    client.delete("v1", "pods", "runs", namespace=ns, grace_period_seconds=0)
    support.wait_for(lambda: gone(client, "persistentvolumeclaims", "used", ns), timeout=30,
                     what=f"claim freed after its pod; log:\n{controller_manager.log_tail()}")


def test_bound_volume_is_protected(controller_manager: helpers.ControllerManagerProcess,
                                   client: api.Client, ns: str) -> None:
    name = unique("protected")
    client.create("v1", "persistentvolumes", volume(name, cls=f"{ns}-p"))
    client.create("v1", "persistentvolumeclaims", claim("holder", cls=f"{ns}-p"), namespace=ns)
    wait_bound(client, ns, "holder")
    client.delete("v1", "persistentvolumes", name)
    assert client.get("v1", "persistentvolumes", name)["metadata"]["deletionTimestamp"]
    client.delete("v1", "persistentvolumeclaims", "holder", namespace=ns)  # Released, then the volume goes
    support.wait_for(lambda: gone(client, "persistentvolumes", name), timeout=30,
                     what=f"released volume deleted; log:\n{controller_manager.log_tail()}")


def ready_node(client: api.Client, name: str) -> None:
    client.create("v1", "nodes", {"apiVersion": "v1", "kind": "Node",
                                  "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}})
    now = "2026-01-01T00:00:00Z"
    client.patch("v1", "nodes", name, {"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": now,
         "lastTransitionTime": now}]}}, subresource="status")


def test_dynamic_provisioning(controller_manager: helpers.ControllerManagerProcess,
                              client: api.Client, ns: str) -> None:
    node = unique("node")
    ready_node(client, node)
    immediate = unique("now")
    client.create("storage.k8s.io/v1", "storageclasses", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": immediate},
        "provisioner": "reconcile.dev/docker-volume", "reclaimPolicy": "Retain", "mountOptions": ["nosuid"]})
    created = client.create("v1", "persistentvolumeclaims", claim("dyn", size="3Gi", cls=immediate), namespace=ns)
    bound = wait_bound(client, ns, "dyn")
    name = f"pvc-{created['metadata']['uid']}"
    assert bound["spec"]["volumeName"] == name
    assert bound["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == node
    pv = client.get("v1", "persistentvolumes", name)
    assert pv["spec"]["csi"] == {"driver": "reconcile.dev/docker-volume", "volumeHandle": name}
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["mountOptions"] == ["nosuid"]
    assert pv["spec"]["capacity"] == {"storage": "3Gi"}
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "reconcile.dev/docker-volume"
    # WaitForFirstConsumer (the default class `local`): nothing until the scheduler picks a node
    client.create("v1", "persistentvolumeclaims", {**claim("later"), "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}, namespace=ns)
    support.wait_for(lambda: any(e["reason"] == "WaitForFirstConsumer" for e in events_for(client, ns, "later")),
                     timeout=20, what="WaitForFirstConsumer event")
    later = client.get("v1", "persistentvolumeclaims", "later", namespace=ns)
    assert later["spec"]["storageClassName"] == "local" and later["status"]["phase"] == "Pending"
    client.patch("v1", "persistentvolumeclaims", "later",
                 {"metadata": {"annotations": {"volume.kubernetes.io/selected-node": node}}}, namespace=ns)
    provisioned = wait_bound(client, ns, "later")
    pv = client.get("v1", "persistentvolumes", provisioned["spec"]["volumeName"])
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == [node]


def test_expansion_grows_the_recorded_capacity(controller_manager: helpers.ControllerManagerProcess,
                                               client: api.Client, ns: str) -> None:
    node = unique("grow-node")
    ready_node(client, node)
    growable = unique("grow")
    client.create("storage.k8s.io/v1", "storageclasses", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": growable},
        "provisioner": "reconcile.dev/docker-volume", "allowVolumeExpansion": True})
    client.create("v1", "persistentvolumeclaims", claim("grows", size="1Gi", cls=growable), namespace=ns)
    bound = wait_bound(client, ns, "grows")
    client.patch("v1", "persistentvolumeclaims", "grows", {"spec": {"resources": {"requests": {"storage": "5Gi"}}}},
                 namespace=ns)
    support.wait_for(lambda: client.get("v1", "persistentvolumeclaims", "grows", namespace=ns)["status"]["capacity"]
                     == {"storage": "5Gi"}, timeout=20, what="claim capacity grown")
    assert client.get("v1", "persistentvolumes", bound["spec"]["volumeName"])["spec"]["capacity"] == {"storage": "5Gi"}


def test_reclaim_delete_of_a_docker_volume_waits_for_its_node(controller_manager: helpers.ControllerManagerProcess,
                                                              client: api.Client, ns: str) -> None:
    """Released under reclaim Delete, a Docker-volume PV is deleted; the finalizer of the node agent
    that made the Docker volume keeps it Terminating until that agent has removed the data."""
    node = unique("node")
    ready_node(client, node)
    cls = unique("dv")
    client.create("storage.k8s.io/v1", "storageclasses", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": cls},
        "provisioner": "reconcile.dev/docker-volume", "reclaimPolicy": "Delete"})
    names = {}
    for claim_name in ("unused", "used"):
        created = client.create("v1", "persistentvolumeclaims", claim(claim_name, cls=cls), namespace=ns)
        names[claim_name] = wait_bound(client, ns, claim_name)["spec"]["volumeName"]
        assert names[claim_name] == f"pvc-{created['metadata']['uid']}"
    client.patch("v1", "persistentvolumes", names["used"], {"metadata": {"finalizers": [
        *client.get("v1", "persistentvolumes", names["used"])["metadata"].get("finalizers", []),
        "volume.reconcile.dev/docker-volume-cleanup"]}})  # as the agent does when it makes the volume
    for claim_name in names:
        client.delete("v1", "persistentvolumeclaims", claim_name, namespace=ns)
    support.wait_for(lambda: gone(client, "persistentvolumes", names["unused"]), timeout=30,
                     what=f"the never-mounted volume deleted; log:\n{controller_manager.log_tail()}")
    held = support.wait_for(lambda: (lambda pv: pv if pv["metadata"].get("deletionTimestamp") else None)(
        client.get("v1", "persistentvolumes", names["used"])), timeout=30, what="the held volume deleted")
    assert "volume.reconcile.dev/docker-volume-cleanup" in held["metadata"]["finalizers"]  # pv-protection may linger
    assert phase(held) == "Released"

    def release() -> None:  # the agent's part: its finalizer off, whatever else the controllers do meanwhile
        current = client.get("v1", "persistentvolumes", names["used"])
        current["metadata"]["finalizers"] = [f for f in current["metadata"].get("finalizers", [])
                                             if f != "volume.reconcile.dev/docker-volume-cleanup"]
        client.replace("v1", "persistentvolumes", current)

    api.retry_on_conflict(release)
    support.wait_for(lambda: gone(client, "persistentvolumes", names["used"]), timeout=30, what="held volume gone")
