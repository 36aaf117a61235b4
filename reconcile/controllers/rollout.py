"""The pure arithmetic of Deployments (upstream deployment/util): hashes, revisions, fenceposts, status.

No I/O here, so every rule can be read (and tested) on plain dicts.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

from reconcile.core import meta

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
MAX_REVISION_HISTORY_CHARS = 2000  # upstream maxRevHistoryLengthInChars
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# Deployment annotations that are not copied onto its ReplicaSets (upstream annotationsToSkip).
SKIPPED_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY,
    DESIRED, MAX_REPLICAS, "deprecated.deployment.rollback.to",
})

# Condition reasons, as upstream (kubectl and dashboards match on them).
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"  # upstream rand.SafeEncodeString: no vowels, no 0/1/3


# --- templates and hashes --------------------------------------------------------------------------


def normalized_template(template: dict[str, Any] | None) -> dict[str, Any]:
    """A pod template without what differs between a Deployment and its ReplicaSet's copy."""
    result = copy.deepcopy(template or {})
    md = result.get("metadata")
    if isinstance(md, dict):
        md.pop("creationTimestamp", None)
        labels = md.get("labels")
        if isinstance(labels, dict):
            labels.pop(HASH_LABEL, None)
            if not labels:
                md.pop("labels")
        if not md:
            result.pop("metadata")
    return result


def canonical_template(template: dict[str, Any] | None) -> dict[str, Any]:
    """A pod template as defaulting leaves it, so equal revisions compare (and hash) equal.

    Upstream compares *defaulted* templates (EqualIgnoreHash): a template that went through a
    typed client, as `kubectl rollout undo` sends it, carries `creationTimestamp: null` and
    `resources: {}` on every container, which the stored copy may lack. Here null values and
    empty objects and lists count as absent, as they do for the API (they select no behaviour),
    except a volume's source: `emptyDir: {}` *is* the volume. Besides that, the hash label goes.
    """
    return _without_empties(normalized_template(template))


def _without_empties(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            pruned = _volumes(item) if key == "volumes" else _without_empties(item)
            if pruned is None or pruned == {} or pruned == []:
                continue
            out[key] = pruned
        return out
    if isinstance(value, list):
        return [_without_empties(item) for item in value]
    return value


def _volumes(volumes: Any) -> Any:
    """Each volume keeps its source even when that is `{}` (emptyDir, a secret with defaults...)."""
    if not isinstance(volumes, list):
        return _without_empties(volumes)
    return [{k: _without_empties(v) for k, v in vol.items() if v is not None} if isinstance(vol, dict) else vol
            for vol in volumes]


def _fnv1a_32(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def template_hash(template: dict[str, Any], collision_count: int | None = None) -> str:
    """Stable hash of a pod template: fnv-32a of its canonical JSON (+ collision count), safe-encoded."""
    data = json.dumps(canonical_template(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += int(collision_count).to_bytes(4, "little")
    return "".join(_ALPHANUMS[b % len(_ALPHANUMS)] for b in str(_fnv1a_32(data)).encode())


def same_template(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """The same revision: equal once defaulted and without the hash label (upstream EqualIgnoreHash)."""
    return canonical_template(a) == canonical_template(b)


def revision_history(history: str | None, old_revision: str) -> str | None:
    """`deployment.kubernetes.io/revision-history` after a reused ReplicaSet leaves `old_revision`.

    Upstream SetNewReplicaSetAnnotations: revisions a rolled-back-to ReplicaSet held before,
    oldest first, comma-separated, the oldest dropped to stay within 2000 characters (None: no room).
    """
    revisions = [r for r in (history or "").split(",") if r]
    total = len(",".join([*revisions, old_revision]))
    while revisions and total > MAX_REVISION_HISTORY_CHARS:
        total -= len(revisions.pop(0)) + 1
    if total > MAX_REVISION_HISTORY_CHARS:
        return None
    return ",".join([*revisions, old_revision])


def revision(obj: dict[str, Any]) -> int:
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


# --- sizes -------------------------------------------------------------------------------------------


def replicas(obj: dict[str, Any] | None) -> int:
    if not obj:
        return 0
    return int((obj.get("spec") or {}).get("replicas", 1))


def status_of(obj: dict[str, Any] | None, field: str) -> int:
    return int(((obj or {}).get("status") or {}).get(field) or 0)


def safe_available(rs: dict[str, Any]) -> int:
    """Available pods an RS will keep: its status may still count pods it is about to delete."""
    return min(status_of(rs, "availableReplicas"), replicas(rs))


def pods_bound(rs: dict[str, Any]) -> int:
    """At most this many pods of the RS exist: its spec, or more while it has not deleted the extra ones."""
    return max(replicas(rs), status_of(rs, "replicas"))


def created(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("creationTimestamp") or ""


def by_age(rss: list[dict[str, Any]], *, newest_first: bool = False) -> list[dict[str, Any]]:
    return sorted(rss, key=lambda rs: (created(rs), rs["metadata"]["name"]), reverse=newest_first)


def is_rolling(d: dict[str, Any]) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") != "Recreate"


def _resolve(value: Any, total: int, *, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        percent = int(text[:-1])
        return -(-total * percent // 100) if round_up else total * percent // 100
    return int(text)


def fenceposts(d: dict[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as counts: surge rounds up, unavailable down; both 0 means 1 unavailable."""
    spec = d.get("spec") or {}
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    total = replicas(d)
    surge = _resolve(rolling.get("maxSurge", "25%"), total, round_up=True)
    unavailable = _resolve(rolling.get("maxUnavailable", "25%"), total, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: dict[str, Any]) -> int:
    return fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: dict[str, Any]) -> int:
    if not is_rolling(d) or replicas(d) == 0:
        return 0
    return min(fenceposts(d)[1], replicas(d))


def new_rs_replicas(d: dict[str, Any], all_rss: list[dict[str, Any]], new_rs: dict[str, Any] | None) -> int:
    """How big the new RS may be now (upstream NewRSNewReplicas)."""
    wanted = replicas(d)
    current_new = replicas(new_rs) if new_rs else 0
    if not is_rolling(d):
        return wanted
    new_uid = new_rs["metadata"]["uid"] if new_rs else None
    current_total = sum(pods_bound(rs) for rs in all_rss if rs["metadata"]["uid"] != new_uid) + current_new
    max_total = wanted + max_surge(d)
    if current_total >= max_total:
        return current_new
    return current_new + max(0, min(max_total - current_total, wanted - current_new))


# --- status and conditions -------------------------------------------------------------------------


def condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def set_condition(status: dict[str, Any], new: dict[str, Any]) -> None:
    """Upstream SetDeploymentCondition: no-op for the same status+reason; keeps lastTransitionTime on same status."""
    current = condition(status, new["type"])
    if current is not None and current.get("status") == new["status"] and current.get("reason") == new.get("reason"):
        return
    if current is not None and current.get("status") == new["status"]:
        new["lastTransitionTime"] = current.get("lastTransitionTime") or new["lastTransitionTime"]
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != new["type"]] + [new]


def remove_condition(status: dict[str, Any], kind: str) -> None:
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != kind]


def new_condition(kind: str, value: str, reason: str, message: str, now: datetime) -> dict[str, Any]:
    stamp = meta.format_time(now)
    return {"type": kind, "status": value, "reason": reason, "message": message,
            "lastUpdateTime": stamp, "lastTransitionTime": stamp}


def calculate_status(d: dict[str, Any], all_rss: list[dict[str, Any]], new_rs: dict[str, Any] | None,
                     now: datetime, *, selector: str) -> dict[str, Any]:
    """The Deployment status its ReplicaSets imply (upstream calculateStatus)."""
    old = d.get("status") or {}
    available = sum(status_of(rs, "availableReplicas") for rs in all_rss)
    total = sum(replicas(rs) for rs in all_rss)
    status: dict[str, Any] = {
        "observedGeneration": int(d["metadata"].get("generation") or 0),
        "replicas": sum(status_of(rs, "replicas") for rs in all_rss),
        "updatedReplicas": status_of(new_rs, "replicas") if new_rs else 0,
        "readyReplicas": sum(status_of(rs, "readyReplicas") for rs in all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total - available),
        "selector": selector,
        "conditions": copy.deepcopy(old.get("conditions") or []),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if available >= replicas(d) - max_unavailable(d):
        set_condition(status, new_condition("Available", "True", MIN_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition("Available", "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability.", now))
    return status


def complete(d: dict[str, Any], status: dict[str, Any]) -> bool:
    """Every replica updated and available, and this generation observed (upstream DeploymentComplete)."""
    want = replicas(d)
    return (status.get("updatedReplicas", 0) == want and status.get("replicas", 0) == want
            and status.get("availableReplicas", 0) == want
            and status.get("observedGeneration", 0) >= int(d["metadata"].get("generation") or 0))


def progressing(d: dict[str, Any], new: dict[str, Any]) -> bool:
    """Something moved since the last status (upstream DeploymentProgressing)."""
    old = d.get("status") or {}
    old_olds = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_olds = new.get("replicas", 0) - new.get("updatedReplicas", 0)
    return (new.get("updatedReplicas", 0) > old.get("updatedReplicas", 0) or new_olds < old_olds
            or new.get("readyReplicas", 0) > old.get("readyReplicas", 0)
            or new.get("availableReplicas", 0) > old.get("availableReplicas", 0))


def deadline(d: dict[str, Any]) -> int | None:
    value = (d.get("spec") or {}).get("progressDeadlineSeconds", 600)
    return None if value is None or value >= 2**31 - 1 else int(value)


def seconds_to_deadline(d: dict[str, Any], status: dict[str, Any], now: datetime) -> float | None:
    """Seconds until the Progressing condition times out, or None if it cannot (upstream DeploymentTimedOut)."""
    limit = deadline(d)
    cond = condition(status, "Progressing")
    if limit is None or cond is None or cond.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT, PAUSED):
        return None
    stamp = cond.get("lastUpdateTime") or cond.get("lastTransitionTime")
    if not stamp:
        return None
    return (meta.parse_time(stamp) - now).total_seconds() + limit


def timed_out(d: dict[str, Any], status: dict[str, Any], now: datetime) -> bool:
    cond = condition(status, "Progressing")
    if deadline(d) is None or cond is None:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    remaining = seconds_to_deadline(d, status, now)
    return remaining is not None and remaining < 0
