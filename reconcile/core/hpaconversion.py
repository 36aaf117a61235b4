"""HorizontalPodAutoscaler autoscaling/v1 <-> autoscaling/v2 (the storage version), pure.

v1 knows one metric: `spec.targetCPUUtilizationPercentage` is v2's Resource metric `cpu` with a
target of type Utilization, and `status.currentCPUUtilizationPercentage` that metric's current
averageUtilization. Upstream keeps every other v2 field (other metrics, behavior, conditions) in
`autoscaling.alpha.kubernetes.io/*` annotations on the v1 object so a v1 round trip loses nothing.
Here a v1 read simply does not show them, and a v1 write keeps them from the stored object
(`to_v2(v1, stored)`): the other metrics, the behavior and the status conditions stay as they were.
"""

from __future__ import annotations

import copy
from typing import Any

V1, V2 = "autoscaling/v1", "autoscaling/v2"
KIND = "HorizontalPodAutoscaler"


def is_cpu_utilization(metric: Any) -> bool:
    """The one v2 metric v1 can say: a Resource cpu metric targeting an average utilization."""
    if not isinstance(metric, dict) or metric.get("type") != "Resource":
        return False
    source = metric.get("resource") or {}
    return source.get("name") == "cpu" and (source.get("target") or {}).get("type") == "Utilization"


def cpu_metric(percent: int) -> dict[str, Any]:
    return {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                      "averageUtilization": percent}}}


def to_v1(v2: dict[str, Any]) -> dict[str, Any]:
    """The v1 view of a stored (v2) object; a new dict, `v2` is not changed."""
    spec = v2.get("spec") or {}
    out: dict[str, Any] = {"apiVersion": V1, "kind": KIND, "metadata": copy.deepcopy(v2.get("metadata") or {})}
    v1_spec: dict[str, Any] = {}
    if "scaleTargetRef" in spec:
        v1_spec["scaleTargetRef"] = copy.deepcopy(spec["scaleTargetRef"])
    for name in ("minReplicas", "maxReplicas"):
        if name in spec:
            v1_spec[name] = spec[name]
    for metric in spec.get("metrics") or []:
        if is_cpu_utilization(metric):
            v1_spec["targetCPUUtilizationPercentage"] = metric["resource"]["target"].get("averageUtilization")
            break
    out["spec"] = v1_spec
    if "status" in v2:
        status = v2.get("status") or {}
        v1_status: dict[str, Any] = {}
        for name in ("observedGeneration", "lastScaleTime"):
            if name in status:
                v1_status[name] = status[name]
        v1_status["currentReplicas"] = status.get("currentReplicas", 0)
        v1_status["desiredReplicas"] = status.get("desiredReplicas", 0)
        for current in status.get("currentMetrics") or []:
            resource = current.get("resource") if isinstance(current, dict) else None
            if current.get("type") == "Resource" and isinstance(resource, dict) and resource.get("name") == "cpu":
                utilization = (resource.get("current") or {}).get("averageUtilization")
                if utilization is not None:
                    v1_status["currentCPUUtilizationPercentage"] = utilization
                break
        out["status"] = v1_status
    return out


def to_v2(v1: dict[str, Any], stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """The v2 (storage) form of a v1 object; `stored` is the current stored object on an update,
    whose v2-only parts (other metrics, behavior, conditions, current metrics) are kept."""
    base = copy.deepcopy(stored) if stored is not None else {}
    out: dict[str, Any] = {"apiVersion": V2, "kind": KIND, "metadata": copy.deepcopy(v1.get("metadata") or {})}
    spec_in = v1.get("spec")
    if isinstance(spec_in, dict):
        old_spec = base.get("spec") if isinstance(base.get("spec"), dict) else {}
        spec: dict[str, Any] = {k: v for k, v in old_spec.items() if k not in ("scaleTargetRef", "minReplicas",
                                                                             "maxReplicas", "metrics")}
        for name in ("scaleTargetRef", "minReplicas", "maxReplicas"):
            if name in spec_in:
                spec[name] = copy.deepcopy(spec_in[name])
        others = [m for m in old_spec.get("metrics") or [] if not is_cpu_utilization(m)]
        percent = spec_in.get("targetCPUUtilizationPercentage")
        metrics = ([cpu_metric(percent)] if percent is not None else []) + others
        if metrics:
            spec["metrics"] = metrics
        out["spec"] = spec
    elif spec_in is not None:
        out["spec"] = spec_in  # not an object: left for validation to refuse
    status_in = v1.get("status")
    if isinstance(status_in, dict):
        old_status = base.get("status") if isinstance(base.get("status"), dict) else {}
        status = {k: v for k, v in old_status.items() if k in ("conditions",)}
        for name in ("observedGeneration", "lastScaleTime", "currentReplicas", "desiredReplicas"):
            if name in status_in:
                status[name] = status_in[name]
        others = [m for m in old_status.get("currentMetrics") or []
                  if not (isinstance(m, dict) and m.get("type") == "Resource"
                          and (m.get("resource") or {}).get("name") == "cpu")]
        cpu = status_in.get("currentCPUUtilizationPercentage")
        current = ([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu}}}]
                   if cpu is not None else []) + others
        if current:
            status["currentMetrics"] = current
        out["status"] = status
    elif "status" in base:
        out["status"] = copy.deepcopy(base["status"])
    return out
