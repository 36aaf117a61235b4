"""The pure decisions of the StatefulSet controller (upstream stateful_set_control.go and _utils.go).

No I/O here: given the set's settings and what each ordinal's pod looks like, `plan` says which
pods to create and delete next, in order; `compute_status` derives the status counters; the
claim helpers say which claims a pod needs and who should own them under the retention policy.
Kept apart so every ordering rule (OrderedReady one at a time, condemned highest first, rolling
update highest first within `partition` and `maxUnavailable`) can be property-tested.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"  # on pods: the revision's name, as upstream


@dataclass(frozen=True)
class PodView:
    """What the planner needs of one existing pod."""

    ordinal: int
    revision: str  # its controller-revision-hash label
    terminating: bool = False  # deletionTimestamp set
    finished: bool = False  # phase Failed or Succeeded: replaced
    ready: bool = False  # Running and Ready, not terminating
    available: bool = False  # ready for at least minReadySeconds


@dataclass(frozen=True)
class Settings:
    replicas: int
    start: int = 0  # spec.ordinals.start
    ordered: bool = True  # podManagementPolicy OrderedReady (False: Parallel)
    rolling: bool = True  # updateStrategy RollingUpdate (False: OnDelete)
    partition: int = 0
    max_unavailable: int = 1
    current_revision: str = ""
    update_revision: str = ""
    burst: int = 500  # Parallel: creates per plan at most (replicas may be 2**31-1; the next sync goes on)


@dataclass(frozen=True)
class Action:
    verb: str  # "create" or "delete"
    ordinal: int
    revision: str = ""  # create: the revision the new pod is made from
    reason: str = ""  # delete: "finished", "scale-down" or "update"


def revision_for(settings: Settings, ordinal: int) -> str:
    """The revision a (re)created pod gets: below the partition the current one (upstream
    newVersionedStatefulSetPod), else the update revision."""
    if settings.rolling and ordinal < settings.start + settings.partition and settings.current_revision:
        return settings.current_revision
    return settings.update_revision


def wanted(settings: Settings) -> range:
    return range(settings.start, settings.start + max(0, settings.replicas))


def plan(settings: Settings, pods: dict[int, PodView]) -> list[Action]:
    """The next actions, in the order to take them.

    OrderedReady stops at the first thing it must wait for (a create, a delete, a pod not yet
    available or terminating), so at most one pod changes at a time; Parallel does everything.
    """
    actions: list[Action] = []
    ordered = settings.ordered
    want = wanted(settings)
    creates = [0]
    for ordinal in _walk(want, pods, settings.burst, creates):
        pod = pods.get(ordinal)
        if pod is not None and pod.finished and not pod.terminating:
            actions.append(Action("delete", ordinal, reason="finished"))
            if ordered:
                return actions
            continue
        if pod is None:
            actions.append(Action("create", ordinal, revision=revision_for(settings, ordinal)))
            creates[0] += 1
            if ordered:
                return actions
            continue
        if ordered and (pod.terminating or not pod.available):
            return actions
    condemned = sorted(o for o in pods if o not in want)
    unhealthy = [o for o in sorted(pods) if not pods[o].available]
    first_unhealthy = unhealthy[0] if unhealthy else None
    for ordinal in reversed(condemned):
        pod = pods[ordinal]
        if pod.terminating:
            if ordered:
                return actions
            continue
        if ordered and not pod.available and ordinal != first_unhealthy:
            return actions
        actions.append(Action("delete", ordinal, reason="scale-down"))
        if ordered:
            return actions
    if not settings.rolling:
        return actions
    present = [o for o in pods if o in want]
    missing = len(want) - len(present)
    unavailable = missing + sum(1 for o in present if not pods[o].available or pods[o].terminating)
    budget = settings.max_unavailable - unavailable
    for ordinal in sorted(present, reverse=True):  # missing ordinals have nothing to update
        if budget <= 0 or ordinal < settings.start + settings.partition:
            break
        pod = pods[ordinal]
        if pod.revision != settings.update_revision and not pod.terminating:
            actions.append(Action("delete", ordinal, reason="update"))
            budget -= 1
    return actions


def _walk(want: range, pods: dict[int, PodView], burst: int, creates: list[int]) -> Iterator[int]:
    """The wanted ordinals ascending until `burst` creates are planned, then only those with a pod:
    at most len(pods) + burst steps, however large replicas is (up to 2**31-1)."""
    for ordinal in want:
        if creates[0] >= burst:
            yield from sorted(o for o in pods if o in want and o >= ordinal)
            return
        yield ordinal


def resolve_max_unavailable(value: Any, replicas: int) -> int:
    """maxUnavailable as a count: a percentage of replicas rounded down, at least 1 (upstream)."""
    if value is None:
        return 1
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    else:
        text = str(value).strip()
        count = replicas * int(text[:-1]) // 100 if text.endswith("%") else int(text)
    return max(1, count)


def compute_status(pods: list[PodView], *, current_revision: str, update_revision: str) -> dict[str, int]:
    """Counters of status (upstream computeReplicaStatus): every pod counts in replicas, the others
    only when not terminating."""
    live = [p for p in pods if not p.terminating]
    return {
        "replicas": len(pods),
        "readyReplicas": sum(1 for p in live if p.ready),
        "availableReplicas": sum(1 for p in live if p.available),
        "currentReplicas": sum(1 for p in live if p.revision == current_revision),
        "updatedReplicas": sum(1 for p in live if p.revision == update_revision),
    }


# --- names, pods and claims ---------------------------------------------------------------------


def pod_name(set_name: str, ordinal: int) -> str:
    return f"{set_name}-{ordinal}"


def ordinal_of(set_name: str, name: str) -> int | None:
    """The ordinal in `<set>-<n>`, None for a name that is not one of this set's."""
    prefix = f"{set_name}-"
    if not name.startswith(prefix):
        return None
    tail = name[len(prefix):]
    if not tail.isdigit() or (len(tail) > 1 and tail[0] == "0"):
        return None
    return int(tail)


def claim_name(template_name: str, set_name: str, ordinal: int) -> str:
    return f"{template_name}-{set_name}-{ordinal}"


def claim_templates(sts: dict[str, Any]) -> list[dict[str, Any]]:
    templates = (sts.get("spec") or {}).get("volumeClaimTemplates") or []
    return [t for t in templates if isinstance(t, dict) and (t.get("metadata") or {}).get("name")]


def new_claim(sts: dict[str, Any], template: dict[str, Any], ordinal: int) -> dict[str, Any]:
    """The claim of `ordinal` from `template`: its labels plus the set's matchLabels (upstream)."""
    md = sts["metadata"]
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    labels.update(((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
    metadata: dict[str, Any] = {"name": claim_name(tmeta["name"], md["name"], ordinal),
                                "namespace": md["namespace"], "labels": labels}
    if tmeta.get("annotations"):
        metadata["annotations"] = dict(tmeta["annotations"])
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata,
            "spec": copy.deepcopy(template.get("spec") or {})}


def new_pod(sts: dict[str, Any], template: dict[str, Any], ordinal: int, revision: str,
            owner_ref: dict[str, Any]) -> dict[str, Any]:
    """The pod of `ordinal` at `revision` (made from that revision's `template`): stable name and
    hostname, subdomain = serviceName, identity labels, claims in place of same-named volumes."""
    md = sts["metadata"]
    spec_of_set = sts.get("spec") or {}
    name = pod_name(md["name"], ordinal)
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    labels.update({POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal), REVISION_LABEL: revision})
    metadata: dict[str, Any] = {"name": name, "namespace": md["namespace"], "labels": labels,
                                "ownerReferences": [owner_ref]}
    if tmeta.get("annotations"):
        metadata["annotations"] = dict(tmeta["annotations"])
    spec = copy.deepcopy(template.get("spec") or {})
    spec["hostname"] = name
    if spec_of_set.get("serviceName"):
        spec["subdomain"] = spec_of_set["serviceName"]
    claims = {(t.get("metadata") or {})["name"]: claim_name(t["metadata"]["name"], md["name"], ordinal)
              for t in claim_templates(sts)}
    volumes = [{"name": vol, "persistentVolumeClaim": {"claimName": claim}} for vol, claim in claims.items()]
    volumes += [v for v in spec.get("volumes") or [] if isinstance(v, dict) and v.get("name") not in claims]
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def claim_owners(policy: dict[str, Any] | None, *, scaled_down: bool) -> tuple[bool, bool]:
    """(owned by the set, owned by the pod) for a claim under persistentVolumeClaimRetentionPolicy
    (upstream updateClaimOwnerRefForSetAndPod): whenDeleted=Delete hands the claim to the set
    (the garbage collector removes it with the set); whenScaled=Delete hands a scaled-down pod's
    claim to that pod (removed with it). Retain/Retain: nobody owns it."""
    policy = policy or {}
    when_deleted = policy.get("whenDeleted") or "Retain"
    when_scaled = policy.get("whenScaled") or "Retain"
    if when_scaled == "Delete" and scaled_down:
        return False, True
    return when_deleted == "Delete", False


def owner_refs(current: list[dict[str, Any]], wanted_refs: list[dict[str, Any]],
               unwanted_uids: set[str]) -> list[dict[str, Any]]:
    """`current` without the refs to `unwanted_uids`, plus each of `wanted_refs` not yet there."""
    kept = [r for r in current if r.get("uid") not in unwanted_uids]
    have = {r.get("uid") for r in kept}
    return kept + [r for r in wanted_refs if r["uid"] not in have]


# --- revisions ----------------------------------------------------------------------------------

HASH_LABEL = "controller.kubernetes.io/hash"  # on ControllerRevisions: the bare hash
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"  # upstream rand.SafeEncodeString's alphabet


def revision_data(template: dict[str, Any]) -> dict[str, Any]:
    """A ControllerRevision's data (upstream getPatch): a strategic-merge patch that replaces the
    whole pod template, so `kubectl rollout undo` can send it back as it is."""
    return {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}}


def template_of(data: dict[str, Any]) -> dict[str, Any]:
    """The pod template a revision's data holds (its `$patch` directive dropped)."""
    template = dict(((data or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def _fnv1_32(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = (value * 0x01000193) & 0xFFFFFFFF
        value ^= byte
    return value


def revision_hash(data: dict[str, Any], collision_count: int | None = None) -> str:
    """Upstream HashControllerRevision: fnv-32 (not 32a) of the data's JSON (Go's: sorted keys,
    compact) then of the decimal collision count, safe-encoded."""
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if collision_count is not None:
        raw += str(int(collision_count)).encode()
    return "".join(_ALPHANUMS[b % len(_ALPHANUMS)] for b in str(_fnv1_32(raw)).encode())


def revision_name(set_name: str, hash_: str) -> str:
    """`<set>-<hash>` (upstream ControllerRevisionName: the set's name cut to 223 characters)."""
    return f"{set_name[:223]}-{hash_}"


def history_to_trim(revisions: list[tuple[str, int]], keep: set[str], limit: int) -> list[str]:
    """Names of revisions to delete (upstream truncateHistory): oldest first, beyond `limit`
    non-live ones; `keep` (current, update, and those live pods use) are never deleted.
    `revisions` are (name, revision number)."""
    dead = sorted((r for r in revisions if r[0] not in keep), key=lambda r: (r[1], r[0]))
    excess = len(dead) - max(0, limit)
    return [name for name, _ in dead[:excess]] if excess > 0 else []


def rollout_complete(status: dict[str, int], replicas: int) -> bool:
    """updated = ready = replicas = spec.replicas: the update revision becomes the current one
    (upstream completeRollingUpdate)."""
    return status.get("updatedReplicas") == status.get("readyReplicas") == status.get("replicas") == replicas
