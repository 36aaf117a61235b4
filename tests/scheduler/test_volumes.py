"""VolumeBinding against a real API server: a pod whose volume lives on node B never lands on A;
a WaitForFirstConsumer claim gets `selected-node` = the node chosen, or the static volume that fits
it on that node; unbound Immediate claims and missing claims keep a pod Pending with upstream's
message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reconcile.client import api as client_api
from reconcile.core import errors, volumes
from reconcile.scheduler import nodeinfo, volumebinding
from reconcile.scheduler import scheduler as scheduler_mod
from tests import support
from tests.scheduler import harness, objects


@pytest.fixture(scope="module")
def client(api_server: str) -> Iterator[client_api.Client]:
    c = client_api.Client(support.connection(api_server).client_config())
    yield c
    c.close()


@pytest.fixture
def cluster(client: client_api.Client) -> Iterator[harness.Cluster]:
    c = harness.Cluster(client)
    yield c
    c.cleanup()


@pytest.fixture(scope="module")
def scheduler(api_server: str) -> Iterator[scheduler_mod.Scheduler]:
    thread = harness.SchedulerThread(api_server).start()
    assert thread.scheduler is not None
    yield thread.scheduler
    thread.stop()


def claim_pod(cluster: harness.Cluster, name: str, *claims: str) -> dict[str, Any]:
    body = objects.pod(name, namespace=cluster.namespace)
    body["spec"]["volumes"] = [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}}
                               for i, c in enumerate(claims)]
    return cluster.client.create("v1", "pods", body, namespace=cluster.namespace)


def bound_claim(cluster: harness.Cluster, name: str, node: str) -> None:
    """A claim bound (as the binder leaves it) to a local volume on `node`."""
    pv = f"{cluster.tag}-{name}"
    cluster.client.create("v1", "persistentvolumes", {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "local": {"path": "/mnt/disk"}, "nodeAffinity": volumes.node_affinity(node)}})
    cluster.client.create("v1", "persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": "", "volumeName": pv}}, namespace=cluster.namespace)


def test_volume_node_affinity_is_honoured(cluster: harness.Cluster, scheduler: scheduler_mod.Scheduler) -> None:
    a = cluster.node("a", cpu="64", memory="256Gi")  # the roomier node: resources alone would pick it
    b = cluster.node("b", cpu="1", memory="1Gi")
    bound_claim(cluster, "on-b", b)
    for i in range(5):
        claim_pod(cluster, f"p{i}", "on-b")
    placed = cluster.wait_bound(*(f"p{i}" for i in range(5)))
    assert set(placed.values()) == {b}, placed
    assert a not in placed.values()
    # a second claim pinned to the other node: no node holds both volumes
    bound_claim(cluster, "on-a", a)
    claim_pod(cluster, "both", "on-b", "on-a")
    # upstream's histogram, then (ours) the volumes behind it
    cluster.wait_unschedulable("both", "0/2 nodes are available: 2 node(s) had volume node affinity conflict. "
                                       f'Blocked by persistentvolume "{cluster.tag}-on-a" (claim "on-a"), '
                                       f'persistentvolume "{cluster.tag}-on-b" (claim "on-b").')


def test_wait_for_first_consumer_gets_the_chosen_node(cluster: harness.Cluster,
                                                      scheduler: scheduler_mod.Scheduler) -> None:
    cluster.node("only", labels={"disk": "yes"})
    cluster.client.create("v1", "persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "wffc"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
        namespace=cluster.namespace)  # default class `local`: WaitForFirstConsumer
    claim_pod(cluster, "consumer", "wffc")
    node = cluster.wait_bound("consumer")["consumer"]
    claim = cluster.client.get("v1", "persistentvolumeclaims", "wffc", namespace=cluster.namespace)
    assert claim["metadata"]["annotations"][volumes.SELECTED_NODE] == node


def test_unbound_immediate_and_missing_claims_wait(cluster: harness.Cluster,
                                                   scheduler: scheduler_mod.Scheduler) -> None:
    cluster.node("n")
    cluster.client.create("v1", "persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "static"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": ""}}, namespace=cluster.namespace)
    claim_pod(cluster, "immediate", "static")
    cluster.wait_unschedulable("immediate", "0/1 nodes are available: pod has unbound immediate "
                                            "PersistentVolumeClaims.")
    claim_pod(cluster, "nothing", "no-such-claim")
    cluster.wait_unschedulable("nothing", '0/1 nodes are available: persistentvolumeclaim "no-such-claim" not found.')
    # the claim arriving (bound) wakes the pod
    bound_claim(cluster, "no-such-claim", cluster.nodes[0])
    cluster.wait_bound("nothing")


@pytest.fixture(autouse=True)
def _cleanup_volumes(client: client_api.Client) -> Iterator[None]:
    yield
    for pv in client.list("v1", "persistentvolumes")["items"]:
        try:
            client.patch("v1", "persistentvolumes", pv["metadata"]["name"], {"metadata": {"finalizers": None}})
            client.delete("v1", "persistentvolumes", pv["metadata"]["name"])
        except errors.NotFound:
            pass


def test_read_write_once_pod_serves_one_pod(cluster: harness.Cluster, scheduler: scheduler_mod.Scheduler) -> None:
    node = cluster.node("rwop")
    pv = f"{cluster.tag}-solo"
    cluster.client.create("v1", "persistentvolumes", {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOncePod"], "storageClassName": "",
                 "hostPath": {"path": "/tmp/solo"}}})
    cluster.client.create("v1", "persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "solo"},
        "spec": {"accessModes": ["ReadWriteOncePod"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": "", "volumeName": pv}}, namespace=cluster.namespace)
    claim_pod(cluster, "one", "solo")
    claim_pod(cluster, "two", "solo")
    placed = support.wait_for(lambda: [n for n in ("one", "two") if cluster.node_of(n)], timeout=15,
                              what="one of the two bound")
    waiting = "two" if placed == ["one"] else "one"
    cluster.wait_unschedulable(waiting, f"0/{len(cluster.nodes)} nodes are available: node has pod using "
                                        "PersistentVolumeClaim with the same name and ReadWriteOncePod access mode.")
    assert len(placed) == 1 and cluster.node_of(placed[0]) == node
    assert cluster.node_of(waiting) is None


def local_volume(cluster: harness.Cluster, name: str, node: str, size: str, cls: str) -> str:
    pv = f"{cluster.tag}-{name}"
    cluster.client.create("v1", "persistentvolumes", {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
        "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                 "local": {"path": "/mnt/disk"}, "nodeAffinity": volumes.node_affinity(node)}})
    # as the binder leaves a new volume (no controller-manager runs in this module)
    cluster.client.patch("v1", "persistentvolumes", pv, {"status": {"phase": "Available"}}, subresource="status")
    return pv


def delayed_claim(cluster: harness.Cluster, name: str, size: str, cls: str) -> dict[str, Any]:
    return cluster.client.create("v1", "persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                 "storageClassName": cls}}, namespace=cluster.namespace)


def test_wait_for_first_consumer_binds_a_static_volume_on_the_node_it_picks(
        cluster: harness.Cluster, scheduler: scheduler_mod.Scheduler) -> None:
    """Local static volumes under a WaitForFirstConsumer class that cannot provision (upstream's
    `kubernetes.io/no-provisioner`): the pod goes where a volume fits the claim, and that volume
    gets the claim's claimRef at PreBind (the binder completes the binding)."""
    cls = f"{cluster.tag}-local"
    cluster.client.create("storage.k8s.io/v1", "storageclasses", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": cls},
        "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"})
    try:
        small_node = cluster.node("small", cpu="64", memory="256Gi")  # roomier: resources alone would pick it
        big_node = cluster.node("big", cpu="1", memory="1Gi")
        local_volume(cluster, "small", small_node, "1Gi", cls)
        big = local_volume(cluster, "big", big_node, "5Gi", cls)
        claim = delayed_claim(cluster, "data", "2Gi", cls)
        claim_pod(cluster, "needs-2gi", "data")
        assert cluster.wait_bound("needs-2gi") == {"needs-2gi": big_node}
        ref = cluster.client.get("v1", "persistentvolumes", big)["spec"]["claimRef"]
        assert (ref["namespace"], ref["name"], ref["uid"]) == (cluster.namespace, "data", claim["metadata"]["uid"])
        # the big volume is promised now: a second 2Gi claim fits nowhere, and says so
        delayed_claim(cluster, "more", "2Gi", cls)
        claim_pod(cluster, "needs-more", "more")
        cluster.wait_unschedulable("needs-more", "0/2 nodes are available: 2 node(s) didn't find available "
                                                 "persistent volumes to bind.")
    finally:
        cluster.client.delete("storage.k8s.io/v1", "storageclasses", cls)


def _node(name: str) -> nodeinfo.NodeInfo:
    return nodeinfo.NodeInfo(name, labels={"kubernetes.io/hostname": name})


def test_plan_for_never_promises_one_volume_twice_and_falls_back_to_provisioning() -> None:
    def claim(name: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "ns", "uid": name},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                         "storageClassName": "c"}}

    volume = {"metadata": {"name": "only"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                                     "storageClassName": "c", "nodeAffinity": volumes.node_affinity("a")}}
    static_only = volumebinding.State(delayed=[(claim("x"), False), (claim("y"), False)], candidates=[volume])
    assert volumebinding.plan_for(static_only, _node("a")) is None  # two claims, one volume
    mixed = volumebinding.State(delayed=[(claim("x"), False), (claim("y"), True)], candidates=[volume])
    assert volumebinding.plan_for(mixed, _node("a")) == volumebinding.Plan((("x", "only"),), ("y",))
    assert volumebinding.plan_for(mixed, _node("b")) is None  # the volume lives on a; x cannot provision
