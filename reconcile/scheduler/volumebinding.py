"""The VolumeBinding plugin (pure): where a pod's PersistentVolumeClaims let it run.

Upstream's (pkg/scheduler/framework/plugins/volumebinding), reduced to what this project provisions:
- PreFilter: every claim must exist and not be being deleted; an unbound claim of an `Immediate`
  class means "pod has unbound immediate PersistentVolumeClaims" (the binder binds it first).
- Filter: a bound claim's volume must have node affinity matching the node ("node(s) had volume node
  affinity conflict"); a claim whose volume is gone blocks every node; an unbound
  WaitForFirstConsumer claim fits a node where an Available static volume matches it (class,
  modes, size, selector, and the volume's node affinity; the smallest, as the binder's matching)
  or, failing that, where its class can provision (ours: any node), or only on the node of its
  `volume.kubernetes.io/selected-node`.
- PreBind (the scheduler's `_bind`, from `plan_for` the chosen node): a matched static volume gets
  the claim's claimRef (the binder then completes the binding, as upstream's BindPodVolumes), and
  the claims to provision get `selected-node` = the chosen node, which the binder's provisioner
  acts on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconcile.core import volumes
from reconcile.scheduler import nodeaffinity, nodeinfo

NAME = "VolumeBinding"
REASON_AFFINITY = "node(s) had volume node affinity conflict"
REASON_NO_VOLUMES = "node(s) didn't find available persistent volumes to bind"
REASON_MISSING_PV = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
RWOP_CONFLICT = "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"

Getter = Callable[..., Mapping[str, Any] | None]


@dataclass
class State:
    """What PreFilter learnt about one pod's claims."""

    error: str | None = None  # the pod fits no node at all (PreFilter's message)
    # (volume, claim, terms) of bound claims whose volume has node affinity
    affinities: list[tuple[str, str, list[Mapping[str, Any]]]] = field(default_factory=list)
    missing_volume: bool = False
    pinned: set[str] = field(default_factory=set)  # nodes named by claims' selected-node
    pinned_by: list[str] = field(default_factory=list)  # the claims that carry a selected-node
    # what rejected some node, for the Unschedulable message: 'persistentvolume "pv" (claim "c")'
    blocking: set[str] = field(default_factory=set)
    # unbound WaitForFirstConsumer claims without a selected node, each with whether its class provisions
    delayed: list[tuple[Mapping[str, Any], bool]] = field(default_factory=list)
    candidates: list[Mapping[str, Any]] = field(default_factory=list)  # the PVs those may bind to

    @property
    def idle(self) -> bool:
        return not (self.affinities or self.missing_volume or self.delayed or self.pinned)


@dataclass(frozen=True)
class Plan:
    """What PreBind writes for the chosen node."""

    static: tuple[tuple[str, str], ...] = ()  # (claim, volume): the volume gets the claim's claimRef
    provision: tuple[str, ...] = ()  # claims that get selected-node


def prefilter(pod: Mapping[str, Any], claims: Getter, pvs: Getter, classes: Getter, *,
              in_use: Callable[[str, str], bool] = lambda _ns, _claim: False,
              all_volumes: Callable[[], Iterable[Mapping[str, Any]]] = lambda: ()) -> State | None:
    """None when the pod names no claims. `claims(namespace, name)`, `pvs(name)`, `classes(name)`
    read the scheduler's caches, `all_volumes()` every PV it holds; `in_use(namespace, claim)`:
    another scheduled (or assumed) pod uses the claim (VolumeRestrictions: a ReadWriteOncePod claim
    serves one pod in the whole cluster)."""
    names = volumes.claim_names(pod)
    if not names:
        return None
    namespace = (pod.get("metadata") or {}).get("namespace") or ""
    state = State()
    for name in names:
        claim = claims(namespace, name)
        if claim is None:
            return State(error=f'persistentvolumeclaim "{name}" not found')
        if (claim.get("metadata") or {}).get("deletionTimestamp"):
            return State(error=f'persistentvolumeclaim "{name}" is being deleted')
        if volumes.RWOP in volumes.access_modes(claim) and in_use(namespace, name):
            return State(error=RWOP_CONFLICT)
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if volume_name:
            volume = pvs(volume_name)
            if volume is None:
                state.missing_volume = True
                continue
            terms = volumes.affinity_terms(volume)
            if terms is not None:
                state.affinities.append((volume_name, name, terms))
            continue
        storage_class = classes(volumes.claim_class(claim)) if volumes.claim_class(claim) else None
        if storage_class is None or storage_class.get("volumeBindingMode") != volumes.WAIT_FOR_FIRST_CONSUMER:
            return State(error=UNBOUND_IMMEDIATE)
        selected = ((claim.get("metadata") or {}).get("annotations") or {}).get(volumes.SELECTED_NODE)
        if selected:
            state.pinned.add(selected)
            state.pinned_by.append(name)
        else:
            state.delayed.append((claim, storage_class.get("provisioner") == volumes.DOCKER_VOLUME_DRIVER))
    if state.delayed:
        state.candidates = [v for v in all_volumes() if not (v.get("spec") or {}).get("claimRef")
                            and ((v.get("status") or {}).get("phase") or volumes.AVAILABLE) == volumes.AVAILABLE]
    return state


def plan_for(state: State, node: nodeinfo.NodeInfo) -> Plan | None:
    """The delayed claims' bindings on `node`: a matching static volume for each that has one (no
    volume promised twice), provisioning for the rest whose class provisions; None when some claim
    can have neither there."""
    taken: set[str] = set()
    static: list[tuple[str, str]] = []
    provision: list[str] = []
    for claim, provisions in state.delayed:
        here = [v for v in state.candidates if _fits(v, node)]
        found = volumes.find_matching_volume(claim, here, excluded=frozenset(taken))
        claim_name = str((claim.get("metadata") or {}).get("name") or "")
        if found is not None:
            volume_name = str((found.get("metadata") or {}).get("name") or "")
            taken.add(volume_name)
            static.append((claim_name, volume_name))
        elif provisions:
            provision.append(claim_name)
        else:
            return None
    return Plan(tuple(static), tuple(provision))


def _fits(volume: Mapping[str, Any], node: nodeinfo.NodeInfo) -> bool:
    terms = volumes.affinity_terms(volume)
    return terms is None or nodeaffinity.match_terms(terms, node.labels, node.name)


def filter_node(state: State, node: nodeinfo.NodeInfo) -> list[str]:
    """Why `node` cannot run the pod (upstream's reasons; empty: it can). A node-affinity conflict
    also records the volume or claim behind it in `state.blocking`, which `blocking_message` names."""
    if state.missing_volume:
        return [REASON_MISSING_PV]
    for volume_name, claim_name, terms in state.affinities:
        if not nodeaffinity.match_terms(terms, node.labels, node.name):
            state.blocking.add(f'persistentvolume "{volume_name}" (claim "{claim_name}")')
            return [REASON_AFFINITY]
    if state.pinned and (len(state.pinned) > 1 or node.name not in state.pinned):
        state.blocking.update(f'persistentvolumeclaim "{c}" (selected node)' for c in state.pinned_by)
        return [REASON_AFFINITY]
    if state.delayed and plan_for(state, node) is None:
        return [REASON_NO_VOLUMES]
    return []


def blocking_message(state: State) -> str:
    """What follows upstream's FitError when volumes rejected nodes: which ones, so a Pending pod
    says which volume pins it (upstream names none; the histogram before it stays upstream's)."""
    if not state.blocking:
        return ""
    return f" Blocked by {', '.join(sorted(state.blocking))}."
