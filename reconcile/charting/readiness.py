"""Is an object ready? What `--wait` checks, per kind, as Helm's ready checker does.

Pure functions of the object as the server returns it, so they are unit-tested without a cluster.
A kind not listed here is ready once it exists.
"""

from __future__ import annotations

from typing import Any


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _condition(obj: dict[str, Any], kind: str) -> str | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == kind:
            return condition.get("status")
    return None


def ready(obj: dict[str, Any]) -> tuple[bool, str]:
    """(ready, why not / what it is) for one live object."""
    kind = obj.get("kind")
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    generation = _int((obj.get("metadata") or {}).get("generation"), 0)
    if kind == "Deployment":
        want = _int(spec.get("replicas"), 1)
        if _int(status.get("observedGeneration"), 0) < generation:
            return False, "waiting for the rollout to be observed"
        # kubectl rollout status's checks, in its order: an old pod still available (the rolling
        # update keeps it while a new one cannot start) must not count as the new revision being ready
        updated, available = _int(status.get("updatedReplicas")), _int(status.get("availableReplicas"))
        total = _int(status.get("replicas"))
        for condition in status.get("conditions") or []:
            if isinstance(condition, dict) and condition.get("type") == "Progressing" \
                    and condition.get("reason") == "ProgressDeadlineExceeded":
                return False, f"exceeded its progress deadline: {condition.get('message', '')}".rstrip(": ")
        if updated < want:
            return False, f"{updated} out of {want} new replicas have been updated"
        if total > updated:
            return False, f"{total - updated} old replicas are pending termination"
        if available < updated:
            return False, f"{available} of {updated} updated replicas are available"
        return True, f"{available}/{want} replicas available"
    if kind == "StatefulSet":
        want = _int(spec.get("replicas"), 1)
        if _int(status.get("observedGeneration"), 0) < generation:
            return False, "waiting for the rollout to be observed"
        ready_count = _int(status.get("readyReplicas"))
        if ready_count < want:
            return False, f"{ready_count}/{want} replicas ready"
        if status.get("updateRevision") and status.get("currentRevision") != status.get("updateRevision"):
            return False, "pods are not yet at the update revision"
        return True, f"{ready_count}/{want} replicas ready"
    if kind == "Pod":
        phase = status.get("phase") or "Pending"
        if phase == "Succeeded" or _condition(obj, "Ready") == "True":
            return True, phase
        return False, f"phase {phase}, not Ready"
    if kind == "Service":
        if spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None":
            return True, "exists"
        if not spec.get("clusterIP"):
            return False, "no clusterIP assigned yet"
        if spec.get("type") == "LoadBalancer" and not (status.get("loadBalancer") or {}).get("ingress"):
            return False, "waiting for a load balancer address"
        return True, f"clusterIP {spec['clusterIP']}"
    if kind == "PersistentVolumeClaim":
        phase = status.get("phase") or "Pending"
        return phase == "Bound", f"phase {phase}"
    if kind == "Job":
        if _condition(obj, "Complete") == "True":
            return True, "complete"
        if _condition(obj, "Failed") == "True":
            return False, "failed"
        return False, "running"
    return True, "exists"


def hook_outcome(obj: dict[str, Any]) -> str | None:
    """A hook's result: "succeeded", "failed", or None while it runs (Pods and Jobs; others succeed)."""
    kind = obj.get("kind")
    if kind == "Pod":
        phase = (obj.get("status") or {}).get("phase")
        return {"Succeeded": "succeeded", "Failed": "failed"}.get(phase or "")
    if kind == "Job":
        if _condition(obj, "Complete") == "True":
            return "succeeded"
        if _condition(obj, "Failed") == "True":
            return "failed"
        return None
    return "succeeded"
