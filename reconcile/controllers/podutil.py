"""Pod facts the workload controllers share: active, ready, available, and who goes first on scale-down."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reconcile.core import meta

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def is_active(pod: dict[str, Any]) -> bool:
    """Counts toward replicas: not finished and not being deleted (upstream FilterActivePods)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not (pod.get("metadata") or {}).get("deletionTimestamp")


def ready_condition(pod: dict[str, Any]) -> dict[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
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
    if not stamp:
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
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount") or 0) for s in statuses)


def _stamp(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return meta.parse_time(value).timestamp()
    except ValueError:
        return 0.0


def deletion_rank(pod: dict[str, Any]) -> tuple:
    """Sort key: pods that sort first are deleted first (upstream ActivePods ordering).

    Unscheduled before scheduled, Pending before Unknown before Running, not ready before
    ready, ready for less time before longer, more restarts first, newer before older.
    """
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    ready = is_ready(pod)
    since = ready_since(pod)
    return (
        1 if spec.get("nodeName") else 0,
        _PHASE_RANK.get(status.get("phase") or "Pending", 0),
        1 if ready else 0,
        -(since.timestamp() if since else 0.0) if ready else 0.0,
        -_restarts(pod),
        -_stamp((pod.get("metadata") or {}).get("creationTimestamp")),
        (pod.get("metadata") or {}).get("name", ""),
    )
