"""How the agent names, labels and reads back the Docker containers of pods.

The labels are the agent's only memory that survives a restart: which pod (uid, namespace,
name), which container of it, which node, and the restart count, so a restarted agent adopts
what runs instead of starting it again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconcile.core import meta

LABEL_UID = "reconcile.pod.uid"
LABEL_NAMESPACE = "reconcile.pod.namespace"
LABEL_NAME = "reconcile.pod.name"
LABEL_CONTAINER = "reconcile.container.name"
LABEL_NODE = "reconcile.node"
LABEL_RESTARTS = "reconcile.restart-count"
LABEL_HASH = "reconcile.container.hash"  # spec of the container it runs: a changed spec means replace it
INFRA = "POD"  # the container name label of a pod's infra container


def labels_for(pod: dict[str, Any], container: str, *, node: str, restarts: int, spec_hash: str = "") -> dict[str, str]:
    metadata = pod["metadata"]
    labels = {
        LABEL_UID: metadata["uid"],
        LABEL_NAMESPACE: metadata.get("namespace") or "default",
        LABEL_NAME: metadata["name"],
        LABEL_CONTAINER: container,
        LABEL_NODE: node,
        LABEL_RESTARTS: str(restarts),
    }
    if spec_hash:
        labels[LABEL_HASH] = spec_hash
    return labels


def docker_name(pod: dict[str, Any], container: str, restarts: int) -> str:
    """`k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`, the kubelet's (dockershim's) scheme."""
    metadata = pod["metadata"]
    return f"k8s_{container}_{metadata['name']}_{metadata.get('namespace') or 'default'}_{metadata['uid']}_{restarts}"


def spec_hash(container: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()[:16]


def _time(value: str | None) -> str | None:
    """Docker's nanosecond timestamps as Kubernetes' second-precision ones; its zero time is None."""
    if not value or value.startswith("0001-01-01"):
        return None
    return meta.format_time(meta.parse_time(value))


@dataclass(frozen=True)
class Instance:
    """One Docker container of a pod, read back from `inspect`."""

    id: str
    pod_uid: str
    namespace: str
    pod_name: str
    name: str  # the pod's container name, or INFRA
    restarts: int
    status: str  # created | running | paused | restarting | removing | exited | dead
    exit_code: int
    oom_killed: bool
    error: str
    started_at: str | None
    finished_at: str | None
    started_raw: str
    finished_raw: str
    image_id: str
    spec_hash: str
    ip_addresses: dict[str, str]  # network name -> IP

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused", "restarting")

    @property
    def terminated(self) -> bool:
        """Ran and stopped, or could not start at all."""
        return self.status in ("exited", "dead") or (self.status == "created" and bool(self.error))

    def ran_for(self) -> float:
        """Seconds between start and finish (0 when unknown)."""
        try:
            start, end = meta.parse_time(self.started_raw), meta.parse_time(self.finished_raw)
        except (ValueError, TypeError):
            return 0.0
        if start.year < 2000 or end.year < 2000:
            return 0.0
        return max(0.0, (end - start).total_seconds())

    def finished_at_datetime(self) -> datetime | None:
        if not self.finished_at:
            return None
        return meta.parse_time(self.finished_raw)


def from_inspect(data: dict[str, Any]) -> Instance:
    labels = (data.get("Config") or {}).get("Labels") or {}
    state = data.get("State") or {}
    networks = ((data.get("NetworkSettings") or {}).get("Networks")) or {}
    try:
        restarts = int(labels.get(LABEL_RESTARTS, "0"))
    except ValueError:
        restarts = 0
    return Instance(
        id=str(data.get("Id") or ""),
        pod_uid=labels.get(LABEL_UID, ""),
        namespace=labels.get(LABEL_NAMESPACE, ""),
        pod_name=labels.get(LABEL_NAME, ""),
        name=labels.get(LABEL_CONTAINER, ""),
        restarts=restarts,
        status=str(state.get("Status") or ""),
        exit_code=int(state.get("ExitCode") or 0),
        oom_killed=bool(state.get("OOMKilled")),
        error=str(state.get("Error") or ""),
        started_at=_time(state.get("StartedAt")),
        finished_at=_time(state.get("FinishedAt")),
        started_raw=str(state.get("StartedAt") or ""),
        finished_raw=str(state.get("FinishedAt") or ""),
        image_id=str(data.get("Image") or ""),
        spec_hash=labels.get(LABEL_HASH, ""),
        ip_addresses={name: str(n.get("IPAddress") or "") for name, n in networks.items()},
    )


def by_container(instances: list[Instance]) -> dict[str, list[Instance]]:
    """Instances per container name, oldest attempt first."""
    grouped: dict[str, list[Instance]] = {}
    for inst in sorted(instances, key=lambda i: (i.restarts, i.started_raw)):
        grouped.setdefault(inst.name, []).append(inst)
    return grouped
