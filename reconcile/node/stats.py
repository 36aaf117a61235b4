"""Resource usage of this node's pods, sampled from Docker as metrics-server samples kubelets.

The API server's `metrics.k8s.io` (what `kubectl top` reads) asks each node agent for its
`/stats/summary`, the kubelet Summary API's shape cut to what metrics-server uses: CPU as
nanocores averaged over the window between the last two samples, memory as the working set
(usage minus inactive file pages, as cAdvisor counts it). Samples are taken every `interval`
(15 s, metrics-server's default resolution) by one background task; a request never waits on
Docker. A container needs two samples before it has a CPU rate, so it appears one interval after
it starts. The node's usage is the sum of its pods' containers: with several agents on one host,
each node is one Docker engine, not the whole machine (upstream reads the node's root cgroup).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from dataclasses import dataclass
from typing import Any

from reconcile.node import containers, docker

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 15.0


@dataclass(frozen=True)
class Sample:
    """One container's cumulative counters at one moment."""

    at: float  # wall-clock seconds
    cpu_ns: int  # CPU time used since the container started, all cores
    working_set: int  # bytes


@dataclass(frozen=True)
class Usage:
    nano_cores: int
    working_set: int
    at: float
    window: float  # seconds the CPU rate is averaged over


def sample_of(stats: dict[str, Any], *, at: float) -> Sample | None:
    """A `docker stats` snapshot as counters (None when the engine reported none: a stopped container)."""
    cpu = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
    memory = stats.get("memory_stats") or {}
    if not isinstance(cpu, int) or "usage" not in memory:
        return None
    return Sample(at=at, cpu_ns=cpu, working_set=working_set(memory))


def working_set(memory_stats: dict[str, Any]) -> int:
    """cAdvisor's working set: usage less inactive file pages (cgroup v1 `total_inactive_file`, v2 `inactive_file`)."""
    usage = int(memory_stats.get("usage") or 0)
    detail = memory_stats.get("stats") or {}
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0)) or 0
    return max(0, usage - int(inactive))


def usage_between(before: Sample, after: Sample) -> Usage | None:
    """The CPU rate between two samples of one container (None if they cannot give one: a restart
    reset the counter, or no time passed)."""
    elapsed = after.at - before.at
    spent = after.cpu_ns - before.cpu_ns
    if elapsed <= 0 or spent < 0:
        return None
    return Usage(nano_cores=int(spent / elapsed), working_set=after.working_set, at=after.at, window=elapsed)


def _rfc3339(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _figures(usage: Usage) -> dict[str, Any]:
    when = _rfc3339(usage.at)
    return {"cpu": {"time": when, "usageNanoCores": usage.nano_cores},
            "memory": {"time": when, "workingSetBytes": usage.working_set},
            "window": f"{usage.window:.3f}s"}


@dataclass(frozen=True)
class PodKey:
    namespace: str
    name: str
    uid: str


def summary(node: str, usages: dict[tuple[PodKey, str], Usage], *, now: float) -> dict[str, Any]:
    """The Summary API document for these per-(pod, container) usages. The infra container counts
    towards its pod and the node but is not listed as a container (as the kubelet hides the pause
    container)."""
    pods: dict[PodKey, list[tuple[str, Usage]]] = {}
    for (pod, container), usage in usages.items():
        pods.setdefault(pod, []).append((container, usage))
    out_pods = []
    for pod, items in sorted(pods.items(), key=lambda kv: (kv[0].namespace, kv[0].name)):
        listed = [{"name": name, **_figures(usage)} for name, usage in sorted(items, key=lambda i: i[0])
                  if name != containers.INFRA]
        out_pods.append({"podRef": {"namespace": pod.namespace, "name": pod.name, "uid": pod.uid},
                         **_figures(_total([u for _, u in items])), "containers": listed})
    everything = list(usages.values())
    node_usage = _total(everything) if everything else Usage(0, 0, now, 0.0)
    return {"node": {"nodeName": node, **_figures(node_usage)}, "pods": out_pods}


def _total(usages: list[Usage]) -> Usage:
    return Usage(nano_cores=sum(u.nano_cores for u in usages), working_set=sum(u.working_set for u in usages),
                 at=max(u.at for u in usages), window=max(u.window for u in usages))


class Sampler:
    """Samples every running container of this node each `interval`; `summary()` answers from memory."""

    def __init__(self, runtime: docker.DockerRuntime, node: str, *, interval: float = INTERVAL_SECONDS) -> None:
        self.runtime = runtime
        self.node = node
        self.interval = interval
        self._last: dict[str, tuple[PodKey, str, Sample]] = {}  # container id -> its latest sample
        self._usage: dict[str, tuple[PodKey, str, Usage]] = {}  # container id -> its latest rate

    def summary(self) -> dict[str, Any]:
        usages = {(pod, name): usage for pod, name, usage in self._usage.values()}
        return summary(self.node, usages, now=time.time())

    async def run(self) -> None:
        """Sample forever (the agent runs this as one of its tasks and cancels it on close)."""
        while True:
            try:
                await self.sample_once()
            except docker.DockerError as exc:
                log.warning("stats: cannot sample containers: %s", exc)
            await asyncio.sleep(self.interval)

    async def _snapshot(self, container_id: str) -> tuple[dict | None, float]:
        """A container's counters and when the engine gave them: the round's calls share two threads
        (reconcile/node/docker.py), so on a busy node the last answer may come many seconds after
        the first, and a rate must divide by the time between a container's own two samples."""
        stats = await self.runtime.stats(container_id)
        return stats, time.time()

    async def sample_once(self) -> None:
        """One round: every running container's counters, and its rate since the previous round."""
        found = [containers.from_inspect(d)
                 for d in await self.runtime.list(labels={containers.LABEL_NODE: self.node}, all=False)]
        running = [inst for inst in found if inst.running]
        snapshots = await asyncio.gather(*(self._snapshot(inst.id) for inst in running), return_exceptions=True)
        last, usage = {}, {}
        for inst, answer in zip(running, snapshots, strict=True):
            if not isinstance(answer, tuple) or not isinstance(answer[0], dict):
                continue
            stats, answered_at = answer
            sample = sample_of(stats, at=answered_at)
            if sample is None:
                continue
            pod = PodKey(inst.namespace, inst.pod_name, inst.pod_uid)
            last[inst.id] = (pod, inst.name, sample)
            previous = self._last.get(inst.id)
            rate = usage_between(previous[2], sample) if previous is not None else None
            if rate is not None:
                usage[inst.id] = (pod, inst.name, rate)
        self._last, self._usage = last, usage
