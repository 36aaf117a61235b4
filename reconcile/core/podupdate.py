"""What an update may change in a pod's spec once the pod exists (upstream's ValidatePodUpdate).

A pod is run as it was admitted: the node agent, the scheduler and admission all decided on that
spec. So an update of the pod itself (not of /status or /binding) may change only the container
images, lower `activeDeadlineSeconds`, add tolerations (or change an existing one's
`tolerationSeconds`), set a negative grace period to 1, and remove scheduling gates. Anything else
is refused with upstream's Forbidden on `spec`, which names the changed fields (upstream prints a
Go diff of the two specs there; we print the paths that differ). Pure data, no I/O.
"""

from __future__ import annotations

import copy
from typing import Any

from reconcile.core import errors

UPDATABLE = ("`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
             "`spec.tolerations` (only additions to existing tolerations),"
             "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)")
MAX_INT32 = 2**31 - 1


def causes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, str]]:
    """Why `new` (a whole pod spec, defaulted as stored) may not replace `old`; [] when it may."""
    found = _deadline_causes(old.get("activeDeadlineSeconds"), new.get("activeDeadlineSeconds"))
    if found:
        return found
    toleration = _toleration_causes(old.get("tolerations") or [], new.get("tolerations") or [])
    gates = _gate_causes(old.get("schedulingGates") or [], new.get("schedulingGates") or [])
    munged = _munged(old, new)
    if munged != old:
        changed = ", ".join(differences(old, munged, "spec")) or "spec"
        return [*toleration, *gates, errors.cause(
            "spec", f"Forbidden: pod updates may not change fields other than {UPDATABLE}\nchanged: {changed}",
            "FieldValueForbidden")]
    return [*toleration, *gates]


def _munged(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`new` with every field an update may change set back to its old value."""
    munged = copy.deepcopy(new)
    for key in ("containers", "initContainers"):
        old_list, new_list = old.get(key), munged.get(key)
        if isinstance(old_list, list) and isinstance(new_list, list) and len(old_list) == len(new_list):
            for before, after in zip(old_list, new_list, strict=True):
                if isinstance(before, dict) and isinstance(after, dict):
                    _restore(after, before, "image")
    for key in ("activeDeadlineSeconds", "tolerations", "schedulingGates"):
        _restore(munged, old, key)
    grace = old.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and grace < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = grace
    return munged


def _restore(target: dict[str, Any], source: dict[str, Any], key: str) -> None:
    if key in source:
        target[key] = copy.deepcopy(source[key])
    else:
        target.pop(key, None)


def _deadline_causes(old: Any, new: Any) -> list[dict[str, str]]:
    if new is not None:
        if not isinstance(new, int) or new < 0 or new > MAX_INT32:
            return [errors.cause("spec.activeDeadlineSeconds",
                                 f"Invalid value: {new}: must be between 0 and {MAX_INT32}, inclusive")]
        if isinstance(old, int) and old < new:
            return [errors.cause("spec.activeDeadlineSeconds",
                                 f"Invalid value: {new}: must be less than or equal to previous value")]
    elif old is not None:
        return [errors.cause("spec.activeDeadlineSeconds",
                             "Invalid value: \"null\": must not update from a positive integer to nil value")]
    return []


def _toleration_causes(old: list[Any], new: list[Any]) -> list[dict[str, str]]:
    """Every old toleration must still be there, its `tolerationSeconds` aside."""
    for before in old:
        if not isinstance(before, dict):
            continue
        if not any(isinstance(after, dict) and _without_seconds(after) == _without_seconds(before) for after in new):
            return [errors.cause("spec.tolerations",
                                 "Forbidden: existing toleration can not be modified except its tolerationSeconds",
                                 "FieldValueForbidden")]
    return []


def _without_seconds(toleration: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in toleration.items() if k != "tolerationSeconds"}


def _gate_causes(old: list[Any], new: list[Any]) -> list[dict[str, str]]:
    """Scheduling gates can only be removed (the pod becomes schedulable as its gates go)."""
    if any(gate not in old for gate in new):
        return [errors.cause("spec.schedulingGates", "Forbidden: only deletion is allowed, but found new scheduling "
                             "gate", "FieldValueForbidden")]
    return []


def differences(old: Any, new: Any, path: str) -> list[str]:
    """The paths under `path` where `new` differs from `old` (lists by index)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                found.extend(differences(old.get(key), new.get(key), f"{path}.{key}"))
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        found = []
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            if before != after:
                found.extend(differences(before, after, f"{path}[{index}]"))
        return found
    return [] if old == new else [path]
