"""Pod priority, pure: the rules of PriorityClasses and how a new pod's priority follows from them
(upstream's pkg/apis/scheduling, its validation, and the Priority admission plugin).

Shared by `api` (PriorityClass validation, the Priority admission, the bootstrap of the two system
classes) and `scheduler` (queue order), so both read one definition of a pod's priority.

- A user class's value is at most 1,000,000,000; names starting `system-` are reserved for the two
  system classes, which must keep their own value and globalDefault.
- value and preemptionPolicy never change after creation.
- A pod without a class gets the global default class (the lowest-valued one, should a race have
  left two), or priority 0 and PreemptLowerPriority when there is none.
- A pod that states a priority or preemption policy of its own must agree with its class.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reconcile.core import errors

SYSTEM_PREFIX = "system-"
HIGHEST_USER_DEFINABLE = 1_000_000_000
SYSTEM_CRITICAL = 2 * HIGHEST_USER_DEFINABLE
SYSTEM_CLUSTER_CRITICAL, SYSTEM_NODE_CRITICAL = "system-cluster-critical", "system-node-critical"
DEFAULT_PRIORITY = 0  # no class named and no global default
PREEMPT_LOWER, PREEMPT_NEVER = "PreemptLowerPriority", "Never"
POLICIES = (PREEMPT_LOWER, PREEMPT_NEVER)

# name -> (value, description), as upstream's SystemPriorityClasses (neither is a global default)
SYSTEM_CLASSES: dict[str, tuple[int, str]] = {
    SYSTEM_NODE_CRITICAL: (SYSTEM_CRITICAL + 1000,
                           "Used for system critical pods that must not be moved from their current node."),
    SYSTEM_CLUSTER_CRITICAL: (SYSTEM_CRITICAL, "Used for system critical pods that must run in the cluster, "
                                               "but can be moved to another node if necessary."),
}

Cause = dict[str, str]


def system_class(name: str) -> dict[str, Any]:
    """One of the two system classes as the API server creates it at start."""
    value, description = SYSTEM_CLASSES[name]
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, "description": description, "preemptionPolicy": PREEMPT_LOWER}


def _known_system_class_error(name: str, value: Any, global_default: bool) -> str | None:
    """Why `name` is not one of the system classes as they are (upstream's IsKnownSystemPriorityClass)."""
    known = SYSTEM_CLASSES.get(name)
    if known is None:
        return f"{name} is not a known system priority class"
    if value != known[0]:
        return f"value of {name} PriorityClass must be {known[0]}"
    if global_default:
        return f"globalDefault of {name} PriorityClass must be false"
    return None


def policy_causes(policy: Any, field: str) -> list[Cause]:
    """ValidatePreemptionPolicy: one of the two, and not empty."""
    if policy is None or policy in POLICIES:
        return []
    if policy == "":
        return [errors.cause(field, "Required value", "FieldValueRequired")]
    supported = ", ".join(f'"{p}"' for p in POLICIES)
    return [errors.cause(field, f'Unsupported value: "{policy}": supported values: {supported}',
                         "FieldValueNotSupported")]


def class_causes(pc: dict[str, Any]) -> list[Cause]:
    """A PriorityClass's checks beyond its schema (ValidatePriorityClass)."""
    name = str((pc.get("metadata") or {}).get("name") or "")
    value = pc.get("value", 0)
    causes: list[Cause] = []
    if name.startswith(SYSTEM_PREFIX):
        why = _known_system_class_error(name, value, bool(pc.get("globalDefault")))
        if why is not None:
            causes.append(errors.cause("metadata.name", f"Forbidden: priority class names with '{SYSTEM_PREFIX}' "
                                                        f"prefix are reserved for system use only. error: {why}",
                                       "FieldValueForbidden"))
    elif isinstance(value, int) and value > HIGHEST_USER_DEFINABLE:
        causes.append(errors.cause("value", "Forbidden: maximum allowed value of a user defined priority is "
                                            f"{HIGHEST_USER_DEFINABLE}", "FieldValueForbidden"))
    return causes + policy_causes(pc.get("preemptionPolicy"), "preemptionPolicy")


def class_update_causes(old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    """ValidatePriorityClassUpdate: value and preemptionPolicy are immutable."""
    causes = class_causes(new)
    if old.get("value", 0) != new.get("value", 0):
        causes.append(errors.cause("value", "Forbidden: may not be changed in an update.", "FieldValueForbidden"))
    if old.get("preemptionPolicy") != new.get("preemptionPolicy"):
        causes.append(errors.cause("preemptionPolicy", f'Invalid value: "{new.get("preemptionPolicy")}": '
                                                       "field is immutable"))
    return causes


def default_class(classes: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The global default class: of several (a race of two creates), the one of the lowest value."""
    found: dict[str, Any] | None = None
    for pc in classes:
        if pc.get("globalDefault") and (found is None or pc.get("value", 0) < found.get("value", 0)):
            found = pc
    return found


@dataclass(frozen=True)
class Resolved:
    """What a new pod gets: its class name (empty: none), priority and preemption policy."""

    class_name: str
    priority: int
    preemption_policy: str | None


NO_DEFAULT = Resolved("", DEFAULT_PRIORITY, PREEMPT_LOWER)


def resolved_from(pc: dict[str, Any]) -> Resolved:
    return Resolved(str(pc["metadata"]["name"]), int(pc.get("value", 0)), pc.get("preemptionPolicy"))


def disagreement(spec: dict[str, Any], resolved: Resolved) -> str | None:
    """Upstream's refusal when a pod states a priority or policy its class does not give, else None."""
    stated = spec.get("priority")
    if stated is not None and stated != resolved.priority:
        return (f"the integer value of priority ({stated}) must not be provided in pod spec; priority admission "
                f"controller computed {resolved.priority} from the given PriorityClass name")
    policy = spec.get("preemptionPolicy")
    if resolved.preemption_policy is not None and policy is not None and policy != resolved.preemption_policy:
        return (f"the string value of PreemptionPolicy ({policy}) must not be provided in pod spec; priority "
                f"admission controller computed {resolved.preemption_policy} from the given PriorityClass name")
    return None


def apply(spec: dict[str, Any], resolved: Resolved) -> None:
    """Write the resolution into a pod spec (after `disagreement` found none)."""
    if resolved.class_name:
        spec["priorityClassName"] = resolved.class_name
    spec["priority"] = resolved.priority
    if resolved.preemption_policy is not None:
        spec["preemptionPolicy"] = resolved.preemption_policy


def of_pod(pod: dict[str, Any]) -> int:
    """A pod's priority as the scheduler orders by it (upstream's corev1helpers.PodPriority: 0 when unset)."""
    value = (pod.get("spec") or {}).get("priority")
    return value if isinstance(value, int) and not isinstance(value, bool) else DEFAULT_PRIORITY
