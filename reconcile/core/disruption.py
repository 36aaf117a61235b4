"""PodDisruptionBudget arithmetic, pure: what the disruption controller writes into a PDB's status
and what the eviction subresource spends from it (upstream's pkg/controller/disruption and
pkg/apis/policy/validation, intstr.GetScaledValueFromIntOrPercent).

Shared by `api` (validation, the eviction REST) and `controllers` (the disruption controller), so
both sides of the budget read the same rules: a percent of the owning controllers' scale is
rounded up, `disruptionsAllowed = currentHealthy - desiredHealthy` floored at 0 (and 0 when no pod
is expected), a pod counts as healthy when Ready, not being deleted, and not recently evicted.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

from reconcile.core import errors, meta

CONDITION = "DisruptionAllowed"
SUFFICIENT_PODS, INSUFFICIENT_PODS, SYNC_FAILED = "SufficientPods", "InsufficientPods", "SyncFailed"
CAUSE = "DisruptionBudget"  # policyv1.DisruptionBudgetCause
ALWAYS_ALLOW, IF_HEALTHY_BUDGET = "AlwaysAllow", "IfHealthyBudget"
# An evicted pod not gone after this long is counted again (upstream's DeletionTimeout).
DELETION_TIMEOUT = timedelta(minutes=2)
# Evictions the controller has not confirmed yet beyond this: refused (upstream's MaxDisruptedPodSize).
MAX_DISRUPTED_PODS = 2000
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
_PERCENT = re.compile(r"^[0-9]+%$")
_PERCENT_MESSAGE = ("a valid percent string must be a numeric string followed by an ending '%' "
                    "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def int_or_percent_causes(value: Any, field: str) -> list[dict[str, str]]:
    """ValidatePositiveIntOrPercent + IsNotMoreThan100Percent: a non-negative int, or `N%` with N <= 100."""
    if isinstance(value, str):
        if not _PERCENT.match(value):
            return [errors.cause(field, f"Invalid value: {_shown(value)}: {_PERCENT_MESSAGE}")]
        if int(value[:-1]) > 100:
            return [errors.cause(field, f"Invalid value: {_shown(value)}: must not be greater than 100%")]
        return []
    if _is_int(value):
        if value < 0:
            return [errors.cause(field, f"Invalid value: {value}: must be greater than or equal to 0")]
        return []
    return [errors.cause(field, f"Invalid value: {_shown(value)}: must be an integer or percentage (e.g '5%')")]


def spec_causes(spec: Any) -> list[dict[str, str]]:
    """ValidatePodDisruptionBudgetSpec: at most one of minAvailable and maxUnavailable, each an int or a percent."""
    if not isinstance(spec, dict):
        return []
    causes: list[dict[str, str]] = []
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        causes.append(errors.cause("spec", 'Invalid value: "object": minAvailable and maxUnavailable cannot be both set'))
    for name in ("minAvailable", "maxUnavailable"):
        if spec.get(name) is not None:
            causes += int_or_percent_causes(spec[name], f"spec.{name}")
    return causes


def scaled(value: Any, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent(value, total, roundUp=true): an int as is, `N%` of total rounded up."""
    if isinstance(value, str):
        if not _PERCENT.match(value):
            raise ValueError(f"invalid value for IntOrString: invalid value {value!r}")
        return math.ceil(int(value[:-1]) * total / 100)
    if _is_int(value):
        return value
    raise ValueError(f"invalid value for IntOrString: {value!r}")


def needs_scale(spec: dict[str, Any]) -> bool:
    """Whether the expected pod count comes from the owning controllers' scale (a percent, or
    maxUnavailable) rather than from the number of matching pods (minAvailable as an int)."""
    if spec.get("maxUnavailable") is not None:
        return True
    return isinstance(spec.get("minAvailable"), str)


def expected_and_desired(spec: dict[str, Any], pod_count: int, scale: int | None) -> tuple[int, int]:
    """(expectedPods, desiredHealthy) as getExpectedPodCount: `scale` is the sum of the owning
    controllers' replicas (None only when `needs_scale` is False)."""
    max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
    if max_unavailable is not None:
        expected = scale or 0
        return expected, max(0, expected - scaled(max_unavailable, expected))
    if min_available is not None:
        if _is_int(min_available):
            return pod_count, min_available
        expected = scale or 0
        return expected, scaled(min_available, expected)
    return 0, 0


def disruptions_allowed(current_healthy: int, desired_healthy: int, expected: int) -> int:
    """updatePdbStatus: healthy pods beyond the desired ones, never negative; none when nothing is expected."""
    allowed = current_healthy - desired_healthy
    return 0 if expected <= 0 or allowed <= 0 else allowed


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return meta.parse_time(text)
    except ValueError:
        return None


def _metadata(pod: dict[str, Any]) -> dict[str, Any]:
    value = pod.get("metadata")
    return value if isinstance(value, dict) else {}


def is_ready(pod: dict[str, Any]) -> bool:
    """podutil.IsPodReady: the Ready condition is True."""
    status = pod.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for cond in conditions if isinstance(conditions, list) else ():
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def still_disrupted(pods: list[dict[str, Any]], disrupted: Any, now: datetime) -> tuple[dict[str, str], datetime | None]:
    """buildDisruptedPodMap: the evictions recorded in status.disruptedPods whose pod still exists,
    is not yet being deleted, and was evicted less than DELETION_TIMEOUT ago; and when the earliest
    of them times out (the controller looks again then)."""
    kept: dict[str, str] = {}
    recheck: datetime | None = None
    if not isinstance(disrupted, dict):
        return kept, None
    for pod in pods:
        md = _metadata(pod)
        if md.get("deletionTimestamp"):
            continue
        name = md.get("name")
        stamp = _time(disrupted.get(name)) if isinstance(name, str) else None
        if stamp is None:
            continue
        expires = stamp + DELETION_TIMEOUT
        if expires > now:
            kept[name] = disrupted[name]
            recheck = expires if recheck is None or expires < recheck else recheck
    return kept, recheck


def current_healthy(pods: list[dict[str, Any]], disrupted: dict[str, str], now: datetime) -> int:
    """countHealthyPods: Ready pods, not being deleted, not evicted within DELETION_TIMEOUT."""
    count = 0
    for pod in pods:
        md = _metadata(pod)
        if md.get("deletionTimestamp"):
            continue
        stamp = _time(disrupted.get(md.get("name"))) if isinstance(md.get("name"), str) else None
        if stamp is not None and stamp + DELETION_TIMEOUT > now:
            continue
        if is_ready(pod):
            count += 1
    return count


def with_condition(status: dict[str, Any], generation: int, now: str, *, reason: str | None = None,
                   message: str = "") -> dict[str, Any]:
    """UpdateDisruptionAllowedCondition (or the failSafe's SyncFailed): status.conditions with
    DisruptionAllowed set from disruptionsAllowed, lastTransitionTime kept unless the status flips."""
    allowed = (status.get("disruptionsAllowed") or 0) > 0
    wanted = {"type": CONDITION, "status": "True" if allowed and reason is None else "False",
              "reason": reason or (SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS), "message": message,
              "observedGeneration": generation}
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    for i, cond in enumerate(conditions):
        if cond.get("type") == CONDITION:
            stamp = cond.get("lastTransitionTime") if cond.get("status") == wanted["status"] else now
            conditions[i] = {**wanted, "lastTransitionTime": stamp or now}
            break
    else:
        conditions.append({**wanted, "lastTransitionTime": now})
    return {**status, "conditions": conditions}


def violation(pdb_name: str, detail: str) -> errors.TooManyRequests:
    """The 429 of a refused eviction: upstream's message and a DisruptionBudget cause."""
    return errors.TooManyRequests(VIOLATION, details={"causes": [{"reason": CAUSE, "message": detail}]})


def spend(pdb: dict[str, Any], pod_name: str, now: str, *, dry_run: bool = False) -> dict[str, Any]:
    """checkAndDecrement: the PDB's new status after one eviction of `pod_name`, or the error that
    refuses it (429 while the controller has not observed the spec, or no disruption is allowed)."""
    md, status = _metadata(pdb), pdb.get("status") if isinstance(pdb.get("status"), dict) else {}
    name = md.get("name", "")
    if (status.get("observedGeneration") or 0) < (md.get("generation") or 0):
        raise violation(name, f"The disruption budget {name} is still being processed by the server.")
    allowed = status.get("disruptionsAllowed") or 0
    if allowed < 0:
        raise errors.Forbidden(f'poddisruptionbudget.policy "{name}" is forbidden: pdb disruptions allowed is negative')
    disrupted = dict(status.get("disruptedPods") or {})
    if len(disrupted) > MAX_DISRUPTED_PODS:
        raise errors.Forbidden(f'poddisruptionbudget.policy "{name}" is forbidden: DisruptedPods map too big - '
                               "too many evictions not confirmed by PDB controller")
    if allowed == 0:
        raise violation(name, f"The disruption budget {name} needs {status.get('desiredHealthy') or 0} healthy pods "
                              f"and has {status.get('currentHealthy') or 0} currently")
    new = {**status, "disruptionsAllowed": allowed - 1}
    if allowed - 1 == 0:
        new = with_condition(new, status.get("observedGeneration") or 0, now)
    if not dry_run:
        disrupted[pod_name] = now
        new["disruptedPods"] = disrupted
    return new
