"""NodeRestriction admission: a node writes only what is its own.

Upstream's plugin/pkg/admission/noderestriction, for a user `system:node:<name>` in
`system:nodes` (everyone else passes untouched), on create, update and delete:
- pods: create only mirror pods bound to itself, owned by its Node and referencing nothing (this
  server has no static pods, so in practice no node creates a pod); delete only pods bound to it;
  update only the `status` of pods bound to it (and not their labels); evict only pods bound to it;
  no other subresource;
- nodes: only its own Node (create, update, delete, status); never a change of its taints or
  `configSource`, nor of labels outside what a kubelet may set (`node-restriction.kubernetes.io/`
  and unknown `kubernetes.io` / `k8s.io` labels are refused);
- persistentvolumeclaims: only `status` (capacity, conditions, allocated resources);
- persistentvolumes (ours; the authorizer lets a node write only the Docker-volume PVs pinned to
  it): only adding or removing the `volume.reconcile.dev/docker-volume-cleanup` finalizer;
- serviceaccounts/token: only tokens bound to a pod (by name and uid) that runs on this node;
- leases: only its own, in `kube-node-lease`.
The messages are upstream's, word for word (`pods "x" is forbidden: node "n1" can only ...`).

The authorizer lets nodes make these requests at all (create/update any Node, status of any pod);
this plugin is what limits them to the node's own objects, so it always runs.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

from reconcile.api import admission
from reconcile.api.nodeauth import identity, references
from reconcile.api.nodeauth.authorizer import NODE_LEASE_NAMESPACE
from reconcile.core import errors, volumes

MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
NODE_RESTRICTION_LABEL_NAMESPACE = "node-restriction.kubernetes.io"
# k8s.io/kubelet/pkg/apis: the labels a kubelet may set on its own Node, and its label namespaces.
KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
    "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/arch",
})
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")

PodGetter = Callable[[str, str], Awaitable[dict[str, Any] | None]]  # (namespace, name) -> pod or None
NodeGetter = Callable[[str], Awaitable[dict[str, Any] | None]]  # name -> node or None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _meta(obj: dict[str, Any] | None) -> dict[str, Any]:
    return _dict((obj or {}).get("metadata"))


def _spec(obj: dict[str, Any] | None) -> dict[str, Any]:
    return _dict((obj or {}).get("spec"))


def label_namespace(key: str) -> str:
    prefix, slash, _ = key.partition("/")
    return prefix if slash else ""


def _in_namespace(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def is_kubelet_label(key: str) -> bool:
    if key in KUBELET_LABELS:
        return True
    namespace = label_namespace(key)
    return any(_in_namespace(namespace, allowed) for allowed in KUBELET_LABEL_NAMESPACES)


def modified_labels(a: dict[str, str], b: dict[str, str]) -> set[str]:
    """The keys added, removed or changed between two label maps."""
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k) or (k in a) != (k in b)}


def forbidden_labels(modified: set[str]) -> list[str]:
    """Upstream's getForbiddenLabels, sorted (a Go sets.String's List())."""
    found = set()
    for key in modified:
        namespace = label_namespace(key)
        if _in_namespace(namespace, NODE_RESTRICTION_LABEL_NAMESPACE):
            found.add(key)
        if (_in_namespace(namespace, "kubernetes.io") or _in_namespace(namespace, "k8s.io")) \
                and not is_kubelet_label(key):
            found.add(key)
    return sorted(found)


class NodeRestriction(admission.Plugin):
    name = "NodeRestriction"

    def __init__(self, pods: PodGetter, nodes: NodeGetter) -> None:
        self._pods = pods
        self._nodes = nodes

    async def validate(self, attributes: admission.Attributes) -> None:
        if attributes.operation not in (admission.CREATE, admission.UPDATE, admission.DELETE):
            return
        node, is_node = identity.node_identity(attributes.user)
        if not is_node:
            return
        a = attributes
        if not node:
            raise admission.forbidden(a, f'could not determine node from user "{a.user.name}"')
        group, plural = a.resource.group, a.resource.plural
        if group == "" and plural == "pods":
            if not a.subresource:
                await self._pod(node, a)
            elif a.subresource == "status":
                self._pod_status(node, a)
            elif a.subresource == "eviction":
                await self._pod_eviction(node, a)
            else:
                raise admission.forbidden(a, f'unexpected pod subresource "{a.subresource}", only '
                                             "'status' and 'eviction' are allowed")
        elif group == "" and plural == "nodes":
            self._node(node, a)
        elif group == "" and plural == "persistentvolumeclaims":
            if a.subresource != "status":
                raise admission.forbidden(a, "may only update PVC status")
            self._pvc_status(node, a)
        elif group == "" and plural == "persistentvolumes":
            self._pv_finalizer(node, a)
        elif group == "" and plural == "serviceaccounts":
            await self._service_account(node, a)
        elif group == "coordination.k8s.io" and plural == "leases":
            self._lease(node, a)

    # --- pods ---

    async def _pod(self, node: str, a: admission.Attributes) -> None:
        if a.operation == admission.CREATE:
            await self._pod_create(node, a)
        elif a.operation == admission.DELETE:
            if _spec(a.old).get("nodeName") != node:
                raise admission.forbidden(a, f'node "{node}" can only delete pods with spec.nodeName set to itself')
        else:
            raise admission.forbidden(a, f'unexpected operation "{a.operation}", node "{node}" can only create '
                                         "and delete mirror pods")

    async def _pod_create(self, node: str, a: admission.Attributes) -> None:
        pod = a.obj or {}
        if MIRROR_POD_ANNOTATION not in _dict(_meta(pod).get("annotations")):
            raise admission.forbidden(a, f'pod does not have "{MIRROR_POD_ANNOTATION}" annotation, node "{node}" '
                                         "can only create mirror pods")
        if _spec(pod).get("nodeName") != node:
            raise admission.forbidden(a, f'node "{node}" can only create pods with spec.nodeName set to itself')
        owners = [o for o in _meta(pod).get("ownerReferences") or [] if isinstance(o, dict)]
        if len(owners) > 1:
            raise admission.forbidden(a, f'node "{node}" can only create pods with a single owner reference set '
                                         "to itself")
        if not owners:
            raise admission.forbidden(a, f'node "{node}" can only create pods with an owner reference set to itself')
        owner = owners[0]
        if owner.get("apiVersion") != "v1" or owner.get("kind") != "Node" or owner.get("name") != node:
            raise admission.forbidden(a, f'node "{node}" can only create pods with an owner reference set to itself')
        if owner.get("controller") is not True:
            raise admission.forbidden(a, f'node "{node}" can only create pods with a controller owner reference '
                                         "set to itself")
        if owner.get("blockOwnerDeletion") is True:
            raise admission.forbidden(a, f'node "{node}" must not set blockOwnerDeletion on an owner reference')
        found = await self._nodes(node)
        if found is None:
            raise errors.NotFound.for_resource("nodes", node)
        uid = _meta(found).get("uid")
        if owner.get("uid") != uid:
            raise admission.forbidden(a, f"node {node} UID mismatch: expected {owner.get('uid') or ''} got {uid}")
        if _spec(pod).get("serviceAccountName"):
            raise admission.forbidden(a, f'node "{node}" can not create pods that reference a service account')
        if references.secret_names(pod):
            raise admission.forbidden(a, f'node "{node}" can not create pods that reference secrets')
        if references.configmap_names(pod):
            raise admission.forbidden(a, f'node "{node}" can not create pods that reference configmaps')
        for volume in _spec(pod).get("volumes") or []:
            for source in _dict(_dict(volume).get("projected")).get("sources") or []:
                if isinstance(source, dict) and source.get("clusterTrustBundle") is not None:
                    raise admission.forbidden(a, f'node "{node}" can not create pods that reference '
                                                 "clustertrustbundles")
        for volume in _spec(pod).get("volumes") or []:
            if isinstance(volume, dict) and volume.get("persistentVolumeClaim") is not None:
                raise admission.forbidden(a, f'node "{node}" can not create pods that reference '
                                             "persistentvolumeclaims")

    def _pod_status(self, node: str, a: admission.Attributes) -> None:
        if a.operation != admission.UPDATE:
            raise admission.forbidden(a, f'unexpected operation "{a.operation}"')
        if _spec(a.old).get("nodeName") != node:
            raise admission.forbidden(a, f'node "{node}" can only update pod status for pods with spec.nodeName '
                                         "set to itself")
        if (_meta(a.old).get("labels") or {}) != (_meta(a.obj).get("labels") or {}):
            raise admission.forbidden(a, f'node "{node}" cannot update labels through pod status')
        old_claims = _dict((a.old or {}).get("status")).get("resourceClaimStatuses") or []
        new_claims = _dict((a.obj or {}).get("status")).get("resourceClaimStatuses") or []
        if old_claims != new_claims:
            raise admission.forbidden(a, f'node "{node}" cannot update resource claim statues')

    async def _pod_eviction(self, node: str, a: admission.Attributes) -> None:
        if a.operation != admission.CREATE:
            raise admission.forbidden(a, f"unexpected operation {a.operation}")
        name = a.name or str(_meta(a.obj).get("name") or "")
        if not name:
            raise admission.forbidden(a, "could not determine pod from request data")
        pod = await self._pods(a.namespace or "", name)
        if pod is None:
            raise errors.NotFound.for_resource("pods", name)
        if _spec(pod).get("nodeName") != node:
            raise admission.forbidden(a, f"node {node} can only evict pods with spec.nodeName set to itself")

    # --- nodes ---

    def _node(self, node: str, a: admission.Attributes) -> None:
        if a.name != node:
            raise admission.forbidden(a, f'node "{node}" is not allowed to modify node "{a.name}"')
        if a.operation == admission.CREATE:
            if _spec(a.obj).get("configSource") is not None:
                raise admission.forbidden(a, f'node "{node}" is not allowed to create pods with a non-nil '
                                             "configSource")
            bad = forbidden_labels(modified_labels(_labels(a.obj), {}))
            if bad:
                raise admission.forbidden(a, f'node "{node}" is not allowed to set the following labels: '
                                             f'{", ".join(bad)}')
        elif a.operation == admission.UPDATE:
            source = _spec(a.obj).get("configSource")
            if source is not None and source != _spec(a.old).get("configSource"):
                raise admission.forbidden(a, f'node "{node}" is not allowed to update configSource to a new '
                                             "non-nil configSource")
            if (_spec(a.obj).get("taints") or []) != (_spec(a.old).get("taints") or []):
                raise admission.forbidden(a, f'node "{node}" is not allowed to modify taints')
            bad = forbidden_labels(modified_labels(_labels(a.obj), _labels(a.old)))
            if bad:  # upstream's message has no subject here
                raise admission.forbidden(a, f'is not allowed to modify labels: {", ".join(bad)}')

    # --- claims, tokens, leases ---

    def _pvc_status(self, node: str, a: admission.Attributes) -> None:
        if a.operation != admission.UPDATE:
            raise admission.forbidden(a, f'unexpected operation "{a.operation}"')
        old, new = _comparable_claim(a.old), _comparable_claim(a.obj)
        if old != new:
            changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            raise admission.forbidden(a, f'node "{node}" is not allowed to update fields other than '
                                         f'status.capacity and status.conditions: {", ".join(changed)}')

    def _pv_finalizer(self, node: str, a: admission.Attributes) -> None:
        if a.operation != admission.UPDATE or a.subresource:
            raise admission.forbidden(a, f'node "{node}" may only update the finalizers of a persistentvolume')
        if _without_volume_finalizer(a.old) != _without_volume_finalizer(a.obj):
            raise admission.forbidden(a, f'node "{node}" is not allowed to change a persistentvolume other than '
                                         f'adding or removing the {volumes.DOCKER_VOLUME_FINALIZER} finalizer')

    async def _service_account(self, node: str, a: admission.Attributes) -> None:
        if a.operation != admission.CREATE or a.subresource != "token":
            return
        ref = _spec(a.obj).get("boundObjectRef")
        if not isinstance(ref, dict) or ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" \
                or not ref.get("name"):
            raise admission.forbidden(a, "node requested token not bound to a pod")
        if not ref.get("uid"):
            raise admission.forbidden(a, "node requested token with a pod binding without a uid")
        pod = await self._pods(a.namespace or "", str(ref["name"]))
        if pod is None:
            raise errors.NotFound.for_resource("pods", str(ref["name"]))
        if ref.get("uid") != _meta(pod).get("uid"):
            raise admission.forbidden(a, f"the UID in the bound object reference ({ref.get('uid')}) does not match "
                                         "the UID in record. The object might have been deleted and then recreated")
        if _spec(pod).get("nodeName") != node:
            raise admission.forbidden(a, "node requested token bound to a pod scheduled on a different node")

    def _lease(self, node: str, a: admission.Attributes) -> None:
        if a.namespace != NODE_LEASE_NAMESPACE:
            raise admission.forbidden(a, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
        name = str(_meta(a.obj).get("name") or "") if a.operation == admission.CREATE else a.name
        if name != node:
            raise admission.forbidden(a, "can only access node lease with the same name as the requesting node")


def _labels(obj: dict[str, Any] | None) -> dict[str, str]:
    labels = _meta(obj).get("labels")
    return labels if isinstance(labels, dict) else {}


def _without_volume_finalizer(obj: dict[str, Any] | None) -> dict[str, Any]:
    """A PV but for the agent's finalizer and what changes on every write."""
    volume = copy.deepcopy(obj or {})
    metadata = _dict(volume.get("metadata"))
    for field in ("resourceVersion", "managedFields", "generation"):
        metadata.pop(field, None)
    finalizers = [f for f in metadata.pop("finalizers", None) or [] if f != volumes.DOCKER_VOLUME_FINALIZER]
    if finalizers:
        metadata["finalizers"] = finalizers
    return volume


def _comparable_claim(obj: dict[str, Any] | None) -> dict[str, Any]:
    """A claim as NodeRestriction compares it: without what a node may change in its status
    (capacity, conditions, allocated resources) or what changes anyway (resourceVersion,
    managedFields). Flattened to top-level paths for the message."""
    claim = copy.deepcopy(obj or {})
    metadata = _dict(claim.get("metadata"))
    metadata.pop("resourceVersion", None)
    metadata.pop("managedFields", None)
    status = _dict(claim.get("status"))
    for field in ("capacity", "conditions", "allocatedResourceStatuses", "allocatedResources"):
        status.pop(field, None)
    flat: dict[str, Any] = {}
    for top in ("metadata", "spec", "status"):
        for key, value in _dict(claim.get(top)).items():
            flat[f"{top}.{key}"] = value
    for key, value in claim.items():
        if key not in ("metadata", "spec", "status"):
            flat[key] = value
    return flat
