"""What a pod or a PersistentVolume points at, as the node authorizer's graph needs it.

Upstream's VisitPodSecretNames / VisitPodConfigmapNames (pkg/api/v1/pod) over every container
(init, regular and ephemeral), the pod's volumes (PVCs, ephemeral volumes' claims), its service
account; and VisitPVSecretNames (the secrets a kubelet reads for a volume's plugin). Objects are
JSON as stored; anything malformed is skipped, never an exception: the graph is built from
whatever etcd holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from reconcile.core import volumes

SECRET, CONFIGMAP, PVC, PV, SERVICEACCOUNT, POD = "secret", "configmap", "pvc", "pv", "serviceaccount", "pod"

# (namespace, name) of the objects a pod references, by kind.
Ref = tuple[str, str, str]  # (kind, namespace, name)

# Volume sources whose secret is `secretRef.name` (in the pod's namespace).
_SECRET_REF_VOLUMES = ("cephfs", "cinder", "flexVolume", "rbd", "scaleIO", "iscsi", "storageos")


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                yield item


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _name(value: Any, field: str = "name") -> str:
    found = _dict(value).get(field)
    return found if isinstance(found, str) else ""


def containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every container of a pod spec: init, regular, ephemeral (upstream's AllContainers)."""
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from _dicts(spec.get(field))


def secret_names(pod: dict[str, Any]) -> set[str]:
    spec = _dict(pod.get("spec"))
    found = {_name(ref) for ref in _dicts(spec.get("imagePullSecrets"))}
    for container in containers(spec):
        for source in _dicts(container.get("envFrom")):
            found.add(_name(source.get("secretRef")))
        for env in _dicts(container.get("env")):
            found.add(_name(_dict(env.get("valueFrom")).get("secretKeyRef")))
    for volume in _dicts(spec.get("volumes")):
        found.add(_name(volume.get("secret"), "secretName"))
        found.add(_name(volume.get("azureFile"), "secretName"))
        found.add(_name(_dict(volume.get("csi")).get("nodePublishSecretRef")))
        for kind in _SECRET_REF_VOLUMES:
            found.add(_name(_dict(volume.get(kind)).get("secretRef")))
        for source in _dicts(_dict(volume.get("projected")).get("sources")):
            found.add(_name(source.get("secret")))
    found.discard("")
    return found


def configmap_names(pod: dict[str, Any]) -> set[str]:
    spec = _dict(pod.get("spec"))
    found: set[str] = set()
    for container in containers(spec):
        for source in _dicts(container.get("envFrom")):
            found.add(_name(source.get("configMapRef")))
        for env in _dicts(container.get("env")):
            found.add(_name(_dict(env.get("valueFrom")).get("configMapKeyRef")))
    for volume in _dicts(spec.get("volumes")):
        found.add(_name(volume.get("configMap")))
        for source in _dicts(_dict(volume.get("projected")).get("sources")):
            found.add(_name(source.get("configMap")))
    found.discard("")
    return found


def claim_names(pod: dict[str, Any]) -> set[str]:
    """PVCs: named ones, and each generic ephemeral volume's `<pod>-<volume>` claim."""
    spec = _dict(pod.get("spec"))
    pod_name = _name(pod.get("metadata"))
    found: set[str] = set()
    for volume in _dicts(spec.get("volumes")):
        if isinstance(volume.get("persistentVolumeClaim"), dict):
            found.add(_name(volume["persistentVolumeClaim"], "claimName"))
        elif isinstance(volume.get("ephemeral"), dict) and pod_name and _name(volume):
            found.add(f"{pod_name}-{_name(volume)}")
    found.discard("")
    return found


def pod_references(pod: dict[str, Any]) -> frozenset[Ref]:
    """Everything in the pod's namespace a node running it may read (or mint a token for)."""
    namespace = _name(pod.get("metadata"), "namespace")
    refs: set[Ref] = {(SECRET, namespace, n) for n in secret_names(pod)}
    refs |= {(CONFIGMAP, namespace, n) for n in configmap_names(pod)}
    refs |= {(PVC, namespace, n) for n in claim_names(pod)}
    account = _name(pod.get("spec"), "serviceAccountName")
    if account:
        refs.add((SERVICEACCOUNT, namespace, account))
    return frozenset(refs)


def pv_references(pv: dict[str, Any]) -> tuple[tuple[str, str] | None, frozenset[Ref]]:
    """A PersistentVolume's claim (namespace, name) and the secrets a kubelet reads to mount it
    (upstream's VisitPVSecretNames, kubelet-visible ones only; a secret without a namespace of its
    own is in the claim's). No claim: no edges at all, as upstream."""
    spec = _dict(pv.get("spec"))
    ref = _dict(spec.get("claimRef"))
    claim_namespace, claim_name = _name(ref, "namespace"), _name(ref)
    if not claim_name:
        return None, frozenset()
    found: set[Ref] = set()

    def add(source: Any, name_field: str = "name", namespace_field: str = "namespace") -> None:
        name = _name(source, name_field)
        if name:
            found.add((SECRET, _name(source, namespace_field) or claim_namespace, name))

    azure = _dict(spec.get("azureFile"))
    if azure.get("secretName"):
        add({"name": azure["secretName"], "namespace": azure.get("secretNamespace")})
    for kind in _SECRET_REF_VOLUMES:
        add(_dict(spec.get(kind)).get("secretRef"))
    csi = _dict(spec.get("csi"))
    for field in ("nodePublishSecretRef", "nodeStageSecretRef", "nodeExpandSecretRef"):
        add(csi.get(field))
    return (claim_namespace, claim_name), frozenset(found)


def pv_home(pv: dict[str, Any]) -> str:
    """The one node a `reconcile.dev/docker-volume` PV is pinned to by `kubernetes.io/hostname In
    [node]` (what the provisioner writes), or "" for any other PV: its agent may read it and
    release it (reconcile/node/reclaim.py) after its claim is gone."""
    spec = _dict(pv.get("spec"))
    if _dict(spec.get("csi")).get("driver") != volumes.DOCKER_VOLUME_DRIVER:
        return ""
    required = _dict(_dict(spec.get("nodeAffinity")).get("required"))
    terms = list(_dicts(required.get("nodeSelectorTerms")))
    if len(terms) != 1:
        return ""
    expressions = list(_dicts(terms[0].get("matchExpressions")))
    if len(expressions) != 1:
        return ""
    only = expressions[0]
    values = only.get("values")
    if only.get("key") != volumes.HOSTNAME_LABEL or only.get("operator") != "In" or not isinstance(values, list) \
            or len(values) != 1 or not isinstance(values[0], str):
        return ""
    return values[0]
