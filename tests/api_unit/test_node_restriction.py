"""NodeRestriction admission (pure, over in-memory lookups): upstream's rules and messages."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from reconcile.api import admission, authn, registry
from reconcile.api.nodeauth import restriction
from reconcile.core import errors, volumes

REGISTRY = registry.with_builtins()
NODE1 = authn.UserInfo("system:node:n1", groups=("system:nodes", "system:authenticated"))
ALICE = authn.UserInfo("alice")


def resource(plural: str, group: str = "") -> registry.Resource:
    found = REGISTRY.get(group, "v1", plural)
    if found is None:  # a kind other work serves (serviceaccounts): the plugin reads group and plural only
        found = dataclasses.replace(REGISTRY.get("", "v1", "pods"), plural=plural, kind="ServiceAccount")
    return found


def pod(name: str, node: str = "n1", **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
                           "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]}}
    obj["metadata"].update(extra.pop("metadata", {}))
    obj["spec"].update(extra)
    return obj


NODE_OBJ = {"metadata": {"name": "n1", "uid": "node-uid", "labels": {"kubernetes.io/hostname": "n1"}}, "spec": {}}
PODS = {("ns", "web"): pod("web"), ("ns", "db"): pod("db", "n2")}


async def get_pod(namespace: str, name: str) -> dict[str, Any] | None:
    return PODS.get((namespace, name))


async def get_node(name: str) -> dict[str, Any] | None:
    return NODE_OBJ if name == "n1" else None


PLUGIN = restriction.NodeRestriction(get_pod, get_node)


def attributes(operation: str, plural: str, name: str, obj: dict | None = None, old: dict | None = None, *,
               sub: str | None = None, namespace: str | None = "ns", group: str = "",
               user: authn.UserInfo = NODE1) -> admission.Attributes:
    return admission.Attributes(operation, resource(plural, group), sub, namespace, name, obj, old, user, False)


async def refused(a: admission.Attributes) -> str:
    with pytest.raises(errors.ApiError) as caught:
        await PLUGIN.validate(a)
    assert caught.value.code in (403, 404)
    return caught.value.message


async def test_only_nodes_are_restricted() -> None:
    await PLUGIN.validate(attributes(admission.CREATE, "pods", "x", pod("x", "n2"), user=ALICE))
    await PLUGIN.validate(attributes(admission.DELETE, "nodes", "n2", None, NODE_OBJ,
                                     user=authn.UserInfo("system:node:n1")))  # not in system:nodes: not a node
    nameless = authn.UserInfo("system:node:", groups=("system:nodes",))
    assert await refused(attributes(admission.UPDATE, "nodes", "n1", NODE_OBJ, NODE_OBJ, user=nameless)) == \
        'nodes "n1" is forbidden: could not determine node from user "system:node:"'


async def test_a_node_creates_no_ordinary_pod() -> None:
    assert await refused(attributes(admission.CREATE, "pods", "x", pod("x"))) == (
        'pods "x" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "n1" can only '
        "create mirror pods")


async def test_a_mirror_pod_must_be_bound_to_and_owned_by_its_node_and_reference_nothing() -> None:
    owner = {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "node-uid", "controller": True}
    mirror = {"annotations": {restriction.MIRROR_POD_ANNOTATION: "x"}, "ownerReferences": [owner]}
    ok = pod("m", metadata=mirror)
    await PLUGIN.validate(attributes(admission.CREATE, "pods", "m", ok))
    cases = [
        (pod("m", "n2", metadata=mirror), 'node "n1" can only create pods with spec.nodeName set to itself'),
        (pod("m", metadata={**mirror, "ownerReferences": []}),
         'node "n1" can only create pods with an owner reference set to itself'),
        (pod("m", metadata={**mirror, "ownerReferences": [{**owner, "name": "n2"}]}),
         'node "n1" can only create pods with an owner reference set to itself'),
        (pod("m", metadata={**mirror, "ownerReferences": [{**owner, "controller": False}]}),
         'node "n1" can only create pods with a controller owner reference set to itself'),
        (pod("m", metadata={**mirror, "ownerReferences": [{**owner, "uid": "forged"}]}),
         "node n1 UID mismatch: expected forged got node-uid"),
        (pod("m", metadata=mirror, serviceAccountName="sa"),
         'node "n1" can not create pods that reference a service account'),
        (pod("m", metadata=mirror, volumes=[{"name": "s", "secret": {"secretName": "s"}}]),
         'node "n1" can not create pods that reference secrets'),
        (pod("m", metadata=mirror, volumes=[{"name": "c", "configMap": {"name": "c"}}]),
         'node "n1" can not create pods that reference configmaps'),
        (pod("m", metadata=mirror, volumes=[{"name": "c", "persistentVolumeClaim": {"claimName": "c"}}]),
         'node "n1" can not create pods that reference persistentvolumeclaims'),
    ]
    for obj, message in cases:
        assert await refused(attributes(admission.CREATE, "pods", "m", obj)) == f'pods "m" is forbidden: {message}'


async def test_pod_status_and_deletion_only_for_pods_bound_to_the_node() -> None:
    await PLUGIN.validate(attributes(admission.UPDATE, "pods", "web", pod("web"), pod("web"), sub="status"))
    assert await refused(attributes(admission.UPDATE, "pods", "db", pod("db", "n2"), pod("db", "n2"),
                                    sub="status")) == (
        'pods "db" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself')
    relabeled = pod("web", metadata={"labels": {"role": "admin"}})
    assert await refused(attributes(admission.UPDATE, "pods", "web", relabeled, pod("web"), sub="status")) == \
        'pods "web" is forbidden: node "n1" cannot update labels through pod status'
    await PLUGIN.validate(attributes(admission.DELETE, "pods", "web", None, pod("web")))
    assert await refused(attributes(admission.DELETE, "pods", "db", None, pod("db", "n2"))) == \
        'pods "db" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself'
    assert await refused(attributes(admission.UPDATE, "pods", "web", pod("web"), pod("web"))) == \
        'pods "web" is forbidden: unexpected operation "UPDATE", node "n1" can only create and delete mirror pods'
    assert await refused(attributes(admission.CREATE, "pods", "web", {}, sub="binding")) == \
        "pods \"web\" is forbidden: unexpected pod subresource \"binding\", only 'status' and 'eviction' are allowed"
    await PLUGIN.validate(attributes(admission.CREATE, "pods", "web", {"metadata": {"name": "web"}}, sub="eviction"))
    assert await refused(attributes(admission.CREATE, "pods", "db", {"metadata": {}}, sub="eviction")) == \
        'pods "db" is forbidden: node n1 can only evict pods with spec.nodeName set to itself'


def node(name: str = "n1", labels: dict | None = None, taints: list | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"podCIDR": "10.0.0.0/24"}
    if taints is not None:
        spec["taints"] = taints
    return {"metadata": {"name": name, "labels": labels if labels is not None else {"kubernetes.io/hostname": name}},
            "spec": spec}


async def test_a_node_writes_only_its_own_node_and_not_its_taints_or_restricted_labels() -> None:
    await PLUGIN.validate(attributes(admission.CREATE, "nodes", "n1", node(), namespace=None))
    await PLUGIN.validate(attributes(admission.UPDATE, "nodes", "n1", node(), node(), sub="status", namespace=None))
    for op, sub in ((admission.UPDATE, "status"), (admission.UPDATE, None), (admission.DELETE, None)):
        assert await refused(attributes(op, "nodes", "n2", node("n2"), node("n2"), sub=sub, namespace=None)) == \
            'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"'
    assert await refused(attributes(admission.UPDATE, "nodes", "n1", node(taints=[]),
                                    node(taints=[{"key": "k", "effect": "NoSchedule"}]), namespace=None)) == \
        'nodes "n1" is forbidden: node "n1" is not allowed to modify taints'
    # Registering with taints is allowed (kubelet --register-with-taints); changing them is not.
    await PLUGIN.validate(attributes(admission.CREATE, "nodes", "n1", node(taints=[{"key": "k", "effect": "NoSchedule"}]),
                                     namespace=None))
    steering = {"kubernetes.io/hostname": "n1", "node-restriction.kubernetes.io/pci": "yes",
                "node-role.kubernetes.io/control-plane": "", "example.com/mine": "ok",
                "kubelet.kubernetes.io/x": "ok", "topology.kubernetes.io/zone": "z"}
    assert await refused(attributes(admission.CREATE, "nodes", "n1", node(labels=steering), namespace=None)) == (
        'nodes "n1" is forbidden: node "n1" is not allowed to set the following labels: '
        "node-restriction.kubernetes.io/pci, node-role.kubernetes.io/control-plane")
    assert await refused(attributes(admission.UPDATE, "nodes", "n1", node(labels={}), node(labels=steering),
                                    namespace=None)) == (
        'nodes "n1" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/pci, '
        "node-role.kubernetes.io/control-plane")
    await PLUGIN.validate(attributes(admission.UPDATE, "nodes", "n1", node(labels={"kubernetes.io/os": "linux",
                                                                                   "example.com/x": "y"}),
                                     node(labels={}), namespace=None))
    assert await refused(attributes(admission.CREATE, "nodes", "n1", {**node(), "spec": {"configSource": {}}},
                                    namespace=None)) == \
        'nodes "n1" is forbidden: node "n1" is not allowed to create pods with a non-nil configSource'


async def test_leases_only_its_own_in_kube_node_lease() -> None:
    lease = {"metadata": {"name": "n1", "namespace": "kube-node-lease"}}
    await PLUGIN.validate(attributes(admission.CREATE, "leases", "n1", lease, namespace="kube-node-lease",
                                     group="coordination.k8s.io"))
    other = {"metadata": {"name": "n2", "namespace": "kube-node-lease"}}
    assert await refused(attributes(admission.CREATE, "leases", "n2", other, namespace="kube-node-lease",
                                    group="coordination.k8s.io")) == \
        'leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the ' \
        "requesting node"
    assert await refused(attributes(admission.UPDATE, "leases", "n1", lease, lease, namespace="default",
                                    group="coordination.k8s.io")) == \
        'leases.coordination.k8s.io "n1" is forbidden: can only access leases in the "kube-node-lease" system namespace'


async def test_claims_only_status_capacity_and_conditions() -> None:
    old = {"metadata": {"name": "c", "namespace": "ns", "resourceVersion": "1"}, "spec": {"volumeName": "v"},
           "status": {"phase": "Bound"}}
    new = {**old, "metadata": {**old["metadata"], "resourceVersion": "2"},
           "status": {"phase": "Bound", "capacity": {"storage": "2Gi"}, "conditions": [{"type": "Resizing"}]}}
    await PLUGIN.validate(attributes(admission.UPDATE, "persistentvolumeclaims", "c", new, old, sub="status"))
    bad = {**new, "metadata": {**new["metadata"], "labels": {"x": "y"}}}
    message = await refused(attributes(admission.UPDATE, "persistentvolumeclaims", "c", bad, old, sub="status"))
    assert message.startswith('persistentvolumeclaims "c" is forbidden: node "n1" is not allowed to update fields '
                              "other than status.capacity and status.conditions: metadata.labels")
    assert await refused(attributes(admission.UPDATE, "persistentvolumeclaims", "c", new, old)) == \
        'persistentvolumeclaims "c" is forbidden: may only update PVC status'


async def test_tokens_only_for_pods_on_the_node() -> None:
    def request(ref: dict | None) -> admission.Attributes:
        return attributes(admission.CREATE, "serviceaccounts", "sa", {"spec": {"boundObjectRef": ref}}, sub="token")

    await PLUGIN.validate(request({"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "uid-web"}))
    cases = [
        (None, "node requested token not bound to a pod"),
        ({"apiVersion": "v1", "kind": "Secret", "name": "web", "uid": "u"}, "node requested token not bound to a pod"),
        ({"apiVersion": "v1", "kind": "Pod", "name": "web"}, "node requested token with a pod binding without a uid"),
        ({"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "old"},
         "the UID in the bound object reference (old) does not match the UID in record. The object might have been "
         "deleted and then recreated"),
        ({"apiVersion": "v1", "kind": "Pod", "name": "db", "uid": "uid-db"},
         "node requested token bound to a pod scheduled on a different node"),
    ]
    for ref, message in cases:
        assert await refused(request(ref)) == f'serviceaccounts "sa" is forbidden: {message}'
    assert await refused(request({"apiVersion": "v1", "kind": "Pod", "name": "gone", "uid": "u"})) == \
        'pods "gone" not found'


async def test_connect_and_everything_else_pass() -> None:
    await PLUGIN.validate(attributes(admission.CONNECT, "pods", "db", None, pod("db", "n2"), sub="exec"))
    await PLUGIN.validate(attributes(admission.CREATE, "events", "e", {"metadata": {"name": "e"}}))
    await PLUGIN.validate(attributes(admission.CREATE, "secrets", "s", {"metadata": {"name": "s"}}))


async def test_a_node_changes_nothing_of_a_volume_but_its_cleanup_finalizer() -> None:
    old = {"metadata": {"name": "pv", "resourceVersion": "4", "finalizers": ["kubernetes.io/pv-protection"]},
           "spec": {"persistentVolumeReclaimPolicy": "Delete"}}
    held = copy.deepcopy(old)
    held["metadata"]["finalizers"].append(volumes.DOCKER_VOLUME_FINALIZER)
    held["metadata"]["resourceVersion"] = "5"
    await PLUGIN.validate(attributes(admission.UPDATE, "persistentvolumes", "pv", held, old, namespace=None))
    await PLUGIN.validate(attributes(admission.UPDATE, "persistentvolumes", "pv", old, held, namespace=None))
    retained = copy.deepcopy(held)
    retained["spec"]["persistentVolumeReclaimPolicy"] = "Retain"
    assert "other than adding or removing the volume.reconcile.dev/docker-volume-cleanup finalizer" in \
        await refused(attributes(admission.UPDATE, "persistentvolumes", "pv", retained, held, namespace=None))
    stripped = copy.deepcopy(held)
    stripped["metadata"]["finalizers"] = [volumes.DOCKER_VOLUME_FINALIZER]  # pv-protection taken off too
    assert "other than adding or removing" in \
        await refused(attributes(admission.UPDATE, "persistentvolumes", "pv", stripped, held, namespace=None))
    assert "may only update the finalizers" in \
        await refused(attributes(admission.DELETE, "persistentvolumes", "pv", None, held, namespace=None))
    assert "may only update the finalizers" in \
        await refused(attributes(admission.UPDATE, "persistentvolumes", "pv", held, old, namespace=None, sub="status"))
