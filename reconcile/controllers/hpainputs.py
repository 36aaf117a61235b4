"""What the HPA controller feeds the replica calculator, read from API objects: each pod's phase,
readiness and summed request of a resource (`pod_inputs`), and each pod's usage from a
`metrics.k8s.io/v1beta1` PodMetricsList (`samples`), as upstream's metrics client sums a pod's
containers. Quantities become milli-units (Quantity.MilliValue), so cpu and memory share one path."""

from __future__ import annotations

import re
from typing import Any

from reconcile.core import meta, quantities, replicacalc

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?$")


def milli(value: Any) -> int:
    """A quantity in milli-units, rounded up as MilliValue."""
    return quantities.parse_cpu_millis(value)


def format_milli(value: int) -> str:
    """NewMilliQuantity(value, DecimalSI).String(): whole units bare, else with the m suffix."""
    return str(value // 1000) if value % 1000 == 0 else f"{value}m"


def window_seconds(text: Any) -> float:
    """A Go duration as metrics-server writes it ("15s", "1m0s", "1.5s"); 0 when unreadable."""
    match = _DURATION.match(text) if isinstance(text, str) and text else None
    if match is None:
        return 0.0
    hours, minutes, seconds = (float(part) if part else 0.0 for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def pod_inputs(pod: dict[str, Any], resource: str) -> replicacalc.Pod:
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    ready = None
    ready_since = None
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            ready = condition.get("status") == "True"
            ready_since = meta.epoch_seconds(condition.get("lastTransitionTime"))
    request: int | None = 0
    without = ""
    for container in (pod.get("spec") or {}).get("containers") or []:
        wanted = ((container.get("resources") or {}).get("requests") or {}).get(resource)
        if wanted is None:
            request, without = None, container.get("name", "")
            break
        request = (request or 0) + milli(wanted)
    return replicacalc.Pod(name=metadata.get("name", ""), phase=status.get("phase") or "Pending",
                           deleting=bool(metadata.get("deletionTimestamp")), ready=ready, ready_since=ready_since,
                           started=meta.epoch_seconds(status.get("startTime")), request=request, unrequested=without)


def samples(pod_metrics: list[dict[str, Any]], resource: str) -> dict[str, replicacalc.Sample]:
    """pod name -> its usage; a pod with a container that reports no such usage has no sample."""
    out: dict[str, replicacalc.Sample] = {}
    for item in pod_metrics:
        total = 0
        containers = item.get("containers") or []
        usages = [(c.get("usage") or {}).get(resource) for c in containers]
        if not containers or any(u is None for u in usages):
            continue
        for usage in usages:
            total += milli(usage)
        when = meta.epoch_seconds(item.get("timestamp"))
        name = (item.get("metadata") or {}).get("name", "")
        out[name] = replicacalc.Sample(usage=total, timestamp=when or 0.0, window=window_seconds(item.get("window")))
    return out
