"""How many replicas a Resource metric asks for, pure (upstream's ReplicaCalculator.GetResourceReplicas
for a Utilization target and GetRawResourceReplicas for an AverageValue one,
pkg/controller/podautoscaler/replica_calculator.go).

Per pod, usage over request; the pods' summed usage over their summed requests is the current
utilization, and its ratio to the target scales the ready pods' count (rounded up). Within the
tolerance (10%) of the target nothing changes. Pods are grouped first, conservatively:
- being deleted, Failed or Pending: ignored;
- without a metric: missing. When scaling down they are assumed to use their whole request (or
  the target, when above 100%), when scaling up nothing: they can only damp a change;
- for cpu, not ready: during the cpu initialization period (5 min after start) a pod not Ready,
  or whose sample was taken before it became Ready plus the sample's window; after it, a pod not
  Ready that never was since its start (readiness delay, 30 s). Unready pods count as using
  nothing, and only when the metric asks for a scale up.
If that second look reverses the direction or lands within the tolerance, the count stays.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

TOLERANCE = 0.1
CPU_INITIALIZATION_SECONDS = 300.0
INITIAL_READINESS_DELAY_SECONDS = 30.0


class CalculationError(Exception):
    """No recommendation: the words are upstream's (they end up in the ScalingActive condition)."""


@dataclass(frozen=True)
class Pod:
    """What the calculator reads of a pod; times are seconds since the epoch."""

    name: str
    phase: str = "Running"
    deleting: bool = False
    ready: bool | None = True  # the Ready condition's status; None when the pod has none
    ready_since: float | None = None  # that condition's lastTransitionTime
    started: float | None = None  # status.startTime
    request: int | None = None  # summed over the containers, milli-units; None: a container sets none
    unrequested: str = ""  # the container without a request, when `request` is None


@dataclass(frozen=True)
class Sample:
    """A pod's usage (milli-units) as PodMetrics reports it, and when and over what window."""

    usage: int
    timestamp: float
    window: float


@dataclass(frozen=True)
class Recommendation:
    replicas: int
    utilization: int | None  # percent of request (None for an AverageValue target), before missing and unready pods
    usage: int  # the average usage of the pods with metrics (milli-units)


def _unready(pod: Pod, sample: Sample, now: float) -> bool:
    if pod.ready is None or pod.started is None:
        return True
    if pod.started + CPU_INITIALIZATION_SECONDS > now:
        return pod.ready is False or (pod.ready_since is not None and sample.timestamp < pod.ready_since + sample.window)
    return (pod.ready is False and pod.ready_since is not None
            and pod.started + INITIAL_READINESS_DELAY_SECONDS > pod.ready_since)


def group(pods: list[Pod], samples: dict[str, Sample], *, cpu: bool,
          now: float) -> tuple[int, set[str], set[str], set[str]]:
    """(ready count, unready, missing, ignored) pod names, as upstream's groupPods."""
    ready, unready, missing, ignored = 0, set(), set(), set()
    for pod in pods:
        if pod.deleting or pod.phase in ("Failed", "Pending"):
            ignored.add(pod.name)
            continue
        sample = samples.get(pod.name)
        if sample is None:
            missing.add(pod.name)
            continue
        if cpu and _unready(pod, sample, now):
            unready.add(pod.name)
            continue
        ready += 1
    return ready, unready, missing, ignored


def _utilization(usage: dict[str, int], requests: dict[str, int], target: int) -> tuple[float, int, int]:
    """(ratio to the target, utilization percent, average usage) over the pods in `usage`."""
    total_usage = total_request = 0
    for name, value in usage.items():
        if name in requests:
            total_usage += value
            total_request += requests[name]
    if total_request == 0:
        raise CalculationError("no metrics returned matched known pods")
    utilization = (total_usage * 100) // total_request
    return utilization / target, utilization, total_usage // max(1, len(usage))


def _usage_of(pods: list[Pod], samples: dict[str, Sample], *, cpu: bool,
              now: float) -> tuple[int, set[str], set[str], dict[str, int]]:
    """(ready count, unready, missing, usage of the pods that count) for one metric."""
    if not pods:
        raise CalculationError("no pods returned by selector while calculating replica count")
    ready, unready, missing, ignored = group(pods, samples, cpu=cpu, now=now)
    names = {pod.name for pod in pods}
    usage = {name: s.usage for name, s in samples.items() if name in names and name not in ignored | unready}
    if not usage:
        raise CalculationError("did not receive metrics for targeted pods (pods might be unready)")
    return ready, unready, missing, usage


def _replicas(current: int, ready: int, unready: set[str], missing: set[str], usage: dict[str, int],
              ratio_of: Callable[[dict[str, int]], float], fallback: Callable[[str], int], tolerance: float) -> int:
    """Upstream's decision, shared by both target kinds: the plain ratio when every pod counts, else
    a second look with missing pods at `fallback` (scale down) or 0 (scale up) and unready pods at 0."""
    ratio = ratio_of(usage)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        return current if abs(1.0 - ratio) <= tolerance else math.ceil(ratio * ready)
    usage = dict(usage)
    if missing and ratio != 1.0:  # exactly on target: they are left out, as upstream
        for name in missing:
            usage[name] = fallback(name) if ratio < 1.0 else 0
    if scale_up_with_unready:
        for name in unready:
            usage[name] = 0
    new_ratio = ratio_of(usage)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (new_ratio < 1.0 < ratio):
        return current
    replicas = math.ceil(new_ratio * len(usage))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


def resource_replicas(current: int, target: int, pods: list[Pod], samples: dict[str, Sample], *,
                      resource: str = "cpu", now: float, tolerance: float = TOLERANCE) -> Recommendation:
    """The replica count a Utilization `target` (percent) asks for, `current` being the scale's replicas
    (GetResourceReplicas)."""
    ready, unready, missing, usage = _usage_of(pods, samples, cpu=resource == "cpu", now=now)
    requests: dict[str, int] = {}
    for pod in pods:
        if pod.request is None:
            raise CalculationError(f"missing request for {resource} in container {pod.unrequested} of Pod {pod.name}")
        requests[pod.name] = pod.request
    _, utilization, average = _utilization(usage, requests, target)
    replicas = _replicas(current, ready, unready, missing, usage, lambda u: _utilization(u, requests, target)[0],
                         lambda name: requests[name] * max(100, target) // 100, tolerance)
    return Recommendation(replicas, utilization, average)


def average_value_replicas(current: int, target: int, pods: list[Pod], samples: dict[str, Sample], *,
                           resource: str = "cpu", now: float, tolerance: float = TOLERANCE) -> Recommendation:
    """The replica count an AverageValue `target` (milli-units per pod) asks for (GetRawResourceReplicas):
    the pods' average usage against the target; missing pods count as the target when scaling down."""
    if target <= 0:
        raise CalculationError(f"the target average value of {resource} must be positive")
    ready, unready, missing, usage = _usage_of(pods, samples, cpu=resource == "cpu", now=now)

    def ratio_of(values: dict[str, int]) -> float:
        return sum(values.values()) / len(values) / target

    average = sum(usage.values()) // len(usage)
    replicas = _replicas(current, ready, unready, missing, usage, ratio_of, lambda name: target, tolerance)
    return Recommendation(replicas, None, average)
