"""Nodes with the pods bound to them and their summed requests: the snapshot filters and scores read.

`Snapshot` is the scheduler's cache. It is mutated only between decisions (informer events,
assume/forget), and a decision runs without awaiting, so a decision always sees one
consistent state. Per-node sums are kept up to date on every pod add/remove, so checking a
node's free resources is O(1).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from reconcile.core import errors, quantities
from reconcile.scheduler import podinfo

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"


def _quantity(parse: Any, value: Any) -> int:
    try:
        return parse(value)
    except (errors.ApiError, ValueError, TypeError):
        return 0


def ready_status(node: dict[str, Any]) -> str:
    """The Ready condition's status: "True", "False" or "Unknown" (no condition at all is Unknown)."""
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status") or "Unknown")
    return "Unknown"


def node_taints(node: dict[str, Any]) -> tuple[Taint, ...]:
    """The node's taints, plus the condition taint upstream's node controller would add for a node not Ready.

    Upstream never filters on the Ready condition itself: the node lifecycle controller taints a
    node that is not Ready (TaintNodesByCondition) and TaintToleration does the filtering. Adding
    that taint here when it is missing gives the same answers (and the same message) even before
    any controller reacted, and lets pods that tolerate it (as DaemonSet pods do) through.
    """
    taints = tuple(
        Taint(key=t.get("key") or "", value=t.get("value") or "", effect=t.get("effect") or "")
        for t in (node.get("spec") or {}).get("taints") or []
    )
    status = ready_status(node)
    if status != "True" and not any(t.key in (NOT_READY_TAINT, UNREACHABLE_TAINT) for t in taints):
        key = NOT_READY_TAINT if status == "False" else UNREACHABLE_TAINT
        taints += (Taint(key=key, effect="NoSchedule"),)
    return taints


def parse_node(node: dict[str, Any]) -> None:
    """Read a node as `NodeInfo.set_node` does; raises on a node whose fields have the wrong types."""
    NodeInfo(name="").set_node(node)


@dataclass
class NodeInfo:
    """One node and what is bound to it. `node` is None for a placeholder (pods seen before their node)."""

    name: str
    node: dict[str, Any] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    ready: str = "Unknown"
    allocatable_milli_cpu: int = 0
    allocatable_memory: int = 0
    allocatable_pods: int = 0
    # Invariant: the fields below are the sums over `pods` (kept by add_pod/remove_pod).
    pods: dict[podinfo.Key, podinfo.PodInfo] = field(default_factory=dict)
    requested_milli_cpu: int = 0
    requested_memory: int = 0
    nonzero_milli_cpu: int = 0
    nonzero_memory: int = 0
    owner_counts: Counter[str] = field(default_factory=Counter)  # controller owner uid -> pods here

    def set_node(self, node: dict[str, Any]) -> None:
        status = node.get("status") or {}
        allocatable = {**(status.get("capacity") or {}), **(status.get("allocatable") or {})}
        self.node = node
        self.labels = dict((node.get("metadata") or {}).get("labels") or {})
        self.taints = node_taints(node)
        self.unschedulable = bool((node.get("spec") or {}).get("unschedulable"))
        self.ready = ready_status(node)
        self.allocatable_milli_cpu = _quantity(quantities.parse_cpu_millis, allocatable.get("cpu", 0))
        self.allocatable_memory = _quantity(quantities.parse_bytes, allocatable.get("memory", 0))
        self.allocatable_pods = _quantity(quantities.parse_bytes, allocatable.get("pods", 0))

    def fingerprint(self) -> tuple[Any, ...]:
        """What a node update must change to possibly help a pod that did not fit (heartbeats do not)."""
        return (
            tuple(sorted(self.labels.items())),
            self.taints,
            self.unschedulable,
            self.ready,
            self.allocatable_milli_cpu,
            self.allocatable_memory,
            self.allocatable_pods,
        )

    def add_pod(self, pod: podinfo.PodInfo) -> None:
        self.pods[pod.key] = pod
        self.requested_milli_cpu += pod.milli_cpu
        self.requested_memory += pod.memory
        self.nonzero_milli_cpu += pod.nonzero_milli_cpu
        self.nonzero_memory += pod.nonzero_memory
        if pod.owner_uid:
            self.owner_counts[pod.owner_uid] += 1

    def remove_pod(self, key: podinfo.Key) -> podinfo.PodInfo | None:
        pod = self.pods.pop(key, None)
        if pod is None:
            return None
        self.requested_milli_cpu -= pod.milli_cpu
        self.requested_memory -= pod.memory
        self.nonzero_milli_cpu -= pod.nonzero_milli_cpu
        self.nonzero_memory -= pod.nonzero_memory
        if pod.owner_uid:
            self.owner_counts[pod.owner_uid] -= 1
            if self.owner_counts[pod.owner_uid] <= 0:
                del self.owner_counts[pod.owner_uid]
        return pod


def from_node(node: dict[str, Any]) -> NodeInfo:
    info = NodeInfo(name=(node.get("metadata") or {}).get("name") or "")
    info.set_node(node)
    return info


class Snapshot:
    """Every node and every bound (or assumed) pod, with indexes the affinity plugins need."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        # Invariant: pods[key] is in nodes[pods[key].node_name].pods (placeholder NodeInfos are
        # created for nodes not seen yet, and dropped when empty and nodeless).
        self.pods: dict[podinfo.Key, podinfo.PodInfo] = {}
        # Invariant: keys of pods (bound or assumed) whose own affinity terms other pods must
        # respect; lets a pod with no affinity skip scanning every pod.
        self.with_affinity: set[podinfo.Key] = set()
        self.with_required_anti_affinity: set[podinfo.Key] = set()
        self.assumed: set[podinfo.Key] = set()  # bound by us, not yet seen bound by the informer
        self.namespace_labels: dict[str, dict[str, str]] = {}
        self._ready_nodes: list[NodeInfo] | None = None  # cache of the real (non-placeholder) nodes

    # --- nodes ----------------------------------------------------------------------------------

    def node_list(self) -> list[NodeInfo]:
        """The nodes that exist (placeholders excluded), in a stable order."""
        if self._ready_nodes is None:
            self._ready_nodes = [n for n in self.nodes.values() if n.node is not None]
        return self._ready_nodes

    def set_node(self, node: dict[str, Any]) -> tuple[Any, ...] | None:
        """Add or update a node; returns the previous fingerprint (None if it is new)."""
        name = (node.get("metadata") or {}).get("name") or ""
        info = self.nodes.get(name)
        old = info.fingerprint() if info is not None and info.node is not None else None
        if info is None:
            info = self.nodes[name] = NodeInfo(name=name)
        info.set_node(node)
        self._ready_nodes = None
        return old

    def remove_node(self, name: str) -> None:
        info = self.nodes.get(name)
        if info is None:
            return
        if info.pods:
            info.node = None  # keep the pods accounted until their own deletions arrive
        else:
            del self.nodes[name]
        self._ready_nodes = None

    # --- pods -----------------------------------------------------------------------------------

    def add_pod(self, pod: podinfo.PodInfo) -> None:
        """Add or move a bound pod (replacing an assumed copy)."""
        self.remove_pod(pod.key)
        info = self.nodes.get(pod.node_name)
        if info is None:
            info = self.nodes[pod.node_name] = NodeInfo(name=pod.node_name)
        info.add_pod(pod)
        self.pods[pod.key] = pod
        if pod.has_pod_affinity:
            self.with_affinity.add(pod.key)
        if pod.anti_affinity:
            self.with_required_anti_affinity.add(pod.key)

    def remove_pod(self, key: podinfo.Key) -> podinfo.PodInfo | None:
        pod = self.pods.pop(key, None)
        self.assumed.discard(key)
        if pod is None:
            return None
        self.with_affinity.discard(key)
        self.with_required_anti_affinity.discard(key)
        info = self.nodes.get(pod.node_name)
        if info is not None:
            info.remove_pod(key)
            if info.node is None and not info.pods:
                del self.nodes[pod.node_name]
        return pod

    def assume(self, pod: podinfo.PodInfo, node_name: str) -> None:
        """Count `pod` on `node_name` now, before the binding is confirmed by a watch event."""
        pod.node_name = node_name
        self.add_pod(pod)
        self.assumed.add(pod.key)

    def forget(self, key: podinfo.Key) -> None:
        """Undo an assumption (the binding failed)."""
        if key in self.assumed:
            self.remove_pod(key)

    def node_of(self, pod: podinfo.PodInfo) -> NodeInfo | None:
        return self.nodes.get(pod.node_name)
