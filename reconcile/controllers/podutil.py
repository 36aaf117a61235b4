"""Pod facts the workload controllers share: active, ready, available, and who goes first on scale-down.

Every reader here tolerates wrong types in the fields it reads (a pod stored straight into etcd
can hold `"conditions": "x"`): a field that does not read as declared counts as absent, so
one odd pod is counted as not ready instead of failing the ReplicaSet that owns it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reconcile.core import meta

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def _section(pod: dict[str, Any], name: str) -> dict[str, Any]:
    value = pod.get(name)
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _phase(pod: dict[str, Any]) -> str:
    phase = _section(pod, "status").get("phase")
    return phase if isinstance(phase, str) else ""


def is_active(pod: dict[str, Any]) -> bool:
    """Counts toward replicas: not finished and not being deleted (upstream FilterActivePods)."""
    return _phase(pod) not in ("Succeeded", "Failed") and not _section(pod, "metadata").get("deletionTimestamp")


def ready_condition(pod: dict[str, Any]) -> dict[str, Any] | None:
    for cond in _dicts(_section(pod, "status").get("conditions")):
        if cond.get("type") == "Ready":
            return cond
    return None


def is_ready(pod: dict[str, Any]) -> bool:
    cond = ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: dict[str, Any]) -> datetime | None:
    """When the pod became Ready (its condition's lastTransitionTime), None if not ready."""
    cond = ready_condition(pod)
    if cond is None or cond.get("status") != "True":
        return None
    stamp = cond.get("lastTransitionTime")
    if not stamp or not isinstance(stamp, str):
        return None
    try:
        return meta.parse_time(stamp)
    except ValueError:
        return None


def available_in(pod: dict[str, Any], min_ready_seconds: int, now: datetime) -> float | None:
    """Seconds until the pod counts as available: 0 if it is, None if it is not even ready."""
    if not is_ready(pod):
        return None
    if min_ready_seconds <= 0:
        return 0.0
    since = ready_since(pod)
    if since is None:
        return 0.0  # ready but no timestamp: treat as ready long ago, as upstream does for a zero time
    remaining = min_ready_seconds - (now - since).total_seconds()
    return max(0.0, remaining)


def _restarts(pod: dict[str, Any]) -> int:
    counts = (s.get("restartCount") for s in _dicts(_section(pod, "status").get("containerStatuses")))
    return sum(c for c in counts if isinstance(c, int) and not isinstance(c, bool))


def deletion_rank(pod: dict[str, Any]) -> tuple:
    """Sort key: pods that sort first are deleted first (upstream ActivePods ordering).

    Unscheduled before scheduled, Pending before Unknown before Running, not ready before
    ready, ready for less time before longer, more restarts first, newer before older.
    """
    ready = is_ready(pod)
    since = ready_since(pod)
    name = _section(pod, "metadata").get("name")
    return (
        1 if _section(pod, "spec").get("nodeName") else 0,
        _PHASE_RANK.get(_phase(pod) or "Pending", 0),
        1 if ready else 0,
        -(since.timestamp() if since else 0.0) if ready else 0.0,
        -_restarts(pod),
        -(meta.epoch_seconds(_section(pod, "metadata").get("creationTimestamp")) or 0.0),
        name if isinstance(name, str) else "",
    )
