"""PersistentVolumes and claims as plain data: the keys upstream uses, and the pure decisions of
volume binding (which volume a claim gets), shared by the API server's strategies and admission,
the binder controller and the scheduler's volume filter.

`find_matching_volume` is upstream's FindMatchingVolume (pkg/controller/volume/persistentvolume/
index.go + component-helpers' pv_helpers.go), in the same order of checks, so the same claim picks
the same volume: pre-bound first, then the access-mode buckets fewest modes first, smallest
capacity within a bucket. It reads nothing but its arguments, which makes it what property tests
exercise.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping
from typing import Any

from reconcile.core import quantities

# annotations and finalizers (verbatim upstream keys)
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
BETA_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"

# the driver of Docker named volumes (csi.volumeHandle = the volume's name on the node's engine)
DOCKER_VOLUME_DRIVER = "reconcile.dev/docker-volume"
# What a node agent puts on a Docker-volume PV once it made the Docker volume, and takes off once
# the volume is gone (reconcile/node/reclaim.py): a PV deleted under reclaim Delete is not gone
# before its data is.
DOCKER_VOLUME_FINALIZER = "volume.reconcile.dev/docker-volume-cleanup"
HOSTNAME_LABEL = "kubernetes.io/hostname"

# phases
PENDING, AVAILABLE, BOUND, RELEASED, FAILED, LOST = "Pending", "Available", "Bound", "Released", "Failed", "Lost"
IMMEDIATE, WAIT_FOR_FIRST_CONSUMER = "Immediate", "WaitForFirstConsumer"
RWO, ROX, RWX, RWOP = "ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"

SOURCES = ("hostPath", "local", "csi")  # the PersistentVolume sources this project implements


def _md(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def quantity_value(value: Any) -> decimal.Decimal | None:
    """A storage quantity's exact value, None when absent or not a quantity."""
    if value is None:
        return None
    try:
        return quantities.parse_quantity(value)
    except (ValueError, quantities.InvalidQuantity):
        return None


def requested(claim: Mapping[str, Any]) -> decimal.Decimal:
    """spec.resources.requests.storage of a claim (0 when missing: validation requires it)."""
    requests = (_spec(claim).get("resources") or {}).get("requests") or {}
    return quantity_value(requests.get("storage")) or decimal.Decimal(0)


def capacity(volume: Mapping[str, Any]) -> decimal.Decimal:
    """spec.capacity.storage of a volume (0 when missing)."""
    return quantity_value((_spec(volume).get("capacity") or {}).get("storage")) or decimal.Decimal(0)


def claim_class(claim: Mapping[str, Any]) -> str:
    """upstream's GetPersistentVolumeClaimClass: spec.storageClassName, "" when unset."""
    return str(_spec(claim).get("storageClassName") or "")


def volume_class(volume: Mapping[str, Any]) -> str:
    return str(_spec(volume).get("storageClassName") or "")


def volume_mode(obj: Mapping[str, Any]) -> str:
    return str(_spec(obj).get("volumeMode") or "Filesystem")


def claim_key(claim: Mapping[str, Any]) -> str:
    return f"{_md(claim).get('namespace', '')}/{_md(claim).get('name', '')}"


def claim_ref_key(volume: Mapping[str, Any]) -> str | None:
    ref = _spec(volume).get("claimRef")
    if not ref:
        return None
    return f"{ref.get('namespace', '')}/{ref.get('name', '')}"


def is_default_class(storage_class: Mapping[str, Any]) -> bool:
    annotations = _md(storage_class).get("annotations") or {}
    return annotations.get(DEFAULT_CLASS) == "true" or annotations.get(BETA_DEFAULT_CLASS) == "true"


def default_class(classes: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The default StorageClass: with several, the newest wins (then the name, as upstream's sort)."""
    defaults = [c for c in classes if is_default_class(c) and not _md(c).get("deletionTimestamp")]
    if not defaults:
        return None
    return max(defaults, key=lambda c: (str(_md(c).get("creationTimestamp") or ""), str(_md(c).get("name") or "")))


def claim_ref_matches(volume: Mapping[str, Any], claim: Mapping[str, Any]) -> bool:
    """upstream's IsVolumeBoundToClaim: the claimRef names this claim, with no UID or the claim's."""
    ref = _spec(volume).get("claimRef") or {}
    md = _md(claim)
    if ref.get("name") != md.get("name") or ref.get("namespace") != md.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == md.get("uid")


def access_modes(obj: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(_spec(obj).get("accessModes") or ())


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A claim's label selector over a volume's labels (nil or empty selects everything)."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or ():
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _check_volume(volume: Mapping[str, Any], claim: Mapping[str, Any]) -> bool:
    """The checks every candidate passes, pre-bound or not (steps 1-5 of upstream's matching)."""
    ref = _spec(volume).get("claimRef")
    if ref and not claim_ref_matches(volume, claim):
        return False
    if capacity(volume) < requested(claim):
        return False
    if volume_mode(volume) != volume_mode(claim):
        return False
    return not _md(volume).get("deletionTimestamp")


def find_matching_volume(claim: Mapping[str, Any], volumes: Iterable[Mapping[str, Any]], *,
                         delay_binding: bool = False,
                         excluded: frozenset[str] = frozenset()) -> Mapping[str, Any] | None:
    """The volume `claim` should bind to, or None.

    `delay_binding` (WaitForFirstConsumer): only a volume pre-bound to the claim is returned; the
    scheduler chooses among the others. `excluded`: volume names already promised elsewhere (the
    binder's own in-flight bindings)."""
    wanted = access_modes(claim)
    buckets: dict[frozenset[str], list[Mapping[str, Any]]] = {}
    for volume in volumes:
        name = _md(volume).get("name")
        if name in excluded:
            continue
        buckets.setdefault(access_modes(volume), []).append(volume)
    # fewest modes first; a bucket qualifies when it holds every requested mode (upstream's index)
    ordered = sorted((modes for modes in buckets if wanted <= modes), key=lambda modes: (len(modes), sorted(modes)))
    selector = _spec(claim).get("selector")
    wanted_class = claim_class(claim)
    for modes in ordered:
        best: Mapping[str, Any] | None = None
        for volume in sorted(buckets[modes], key=lambda v: str(_md(v).get("name") or "")):
            if not _check_volume(volume, claim):
                continue
            if _spec(volume).get("claimRef") and claim_ref_matches(volume, claim):
                return volume  # pre-bound to this claim: class, selector and phase do not matter
            if delay_binding:
                continue
            if ((volume.get("status") or {}).get("phase") or AVAILABLE) != AVAILABLE:
                continue
            if _spec(volume).get("claimRef"):
                continue
            if not selector_matches(selector, _md(volume).get("labels") or {}):
                continue
            if volume_class(volume) != wanted_class:
                continue
            if best is None or capacity(volume) < capacity(best):
                best = volume
        if best is not None:
            return best
    return None


def mismatch_reason(volume: Mapping[str, Any], claim: Mapping[str, Any]) -> str | None:
    """Why `claim` (whose spec.volumeName names `volume`) cannot bind to it; None when it can
    (upstream's checkVolumeSatisfyClaim messages)."""
    if _md(volume).get("deletionTimestamp"):
        return "the volume is marked for deletion"
    if capacity(volume) < requested(claim):
        return "requested PV is too small"
    if volume_class(volume) != claim_class(claim):
        return "storageClassName does not match"
    if volume_mode(volume) != volume_mode(claim):
        return "incompatible volumeMode"
    if not access_modes(claim) <= access_modes(volume):
        return "incompatible accessMode"
    return None


def source_of(volume: Mapping[str, Any]) -> str | None:
    """Which source a volume uses (hostPath, local, csi), None when none of ours."""
    for name in SOURCES:
        if _spec(volume).get(name):
            return name
    return None


def affinity_terms(volume: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """spec.nodeAffinity.required.nodeSelectorTerms, None when the volume is reachable from any node."""
    required = (_spec(volume).get("nodeAffinity") or {}).get("required")
    if not required:
        return None
    return list(required.get("nodeSelectorTerms") or [])


def affinity_nodes(volume: Mapping[str, Any]) -> list[str]:
    """The node names a volume's affinity pins it to by `kubernetes.io/hostname In` (what
    `node_affinity` writes); [] for volumes reachable from anywhere or pinned otherwise."""
    names: list[str] = []
    for term in affinity_terms(volume) or ():
        for expression in term.get("matchExpressions") or ():
            if expression.get("key") == HOSTNAME_LABEL and expression.get("operator") == "In":
                names += [str(v) for v in expression.get("values") or ()]
    return names


def node_affinity(node_name: str) -> dict[str, Any]:
    """The nodeAffinity a volume living on one node carries (what provisioners of local storage write)."""
    return {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": HOSTNAME_LABEL, "operator": "In", "values": [node_name]}]}]}}


def claim_names(pod: Mapping[str, Any]) -> list[str]:
    """The claims a pod's volumes name, in order."""
    names = []
    for volume in _spec(pod).get("volumes") or ():
        claim = (volume or {}).get("persistentVolumeClaim") or {}
        if claim.get("claimName"):
            names.append(str(claim["claimName"]))
    return names
