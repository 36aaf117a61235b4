"""Score plugins: how good is each feasible node? Pure functions, each normalized to 0..100.

A plugin maps the feasible nodes to raw scores, then normalizes them over those nodes as
upstream's NormalizeScore does; the framework sums `weight * score` per node.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from reconcile.scheduler import interpod, nodeaffinity, nodeinfo, podinfo, taints

MAX_NODE_SCORE = 100
ZONE_LABEL = "topology.kubernetes.io/zone"
ZONE_WEIGHTING = 2.0 / 3.0  # SelectorSpread: zone spreading counts twice as much as node spreading

Scores = list[int]


def least_allocated(pod: podinfo.PodInfo, nodes: list[nodeinfo.NodeInfo]) -> Scores:
    """NodeResourcesFit LeastAllocated: mean over cpu and memory of free/allocatable after placing the pod."""
    out: Scores = []
    for node in nodes:
        total = 0
        for capacity, requested in (
            (node.allocatable_milli_cpu, node.nonzero_milli_cpu + pod.nonzero_milli_cpu),
            (node.allocatable_memory, node.nonzero_memory + pod.nonzero_memory),
        ):
            if capacity > 0 and requested <= capacity:
                total += (capacity - requested) * MAX_NODE_SCORE // capacity
        out.append(total // 2)
    return out


def balanced_allocation(pod: podinfo.PodInfo, nodes: list[nodeinfo.NodeInfo]) -> Scores:
    """NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory fill up evenly."""
    out: Scores = []
    for node in nodes:
        if node.allocatable_milli_cpu <= 0 or node.allocatable_memory <= 0:
            out.append(0)
            continue
        cpu = min(1.0, (node.nonzero_milli_cpu + pod.nonzero_milli_cpu) / node.allocatable_milli_cpu)
        mem = min(1.0, (node.nonzero_memory + pod.nonzero_memory) / node.allocatable_memory)
        std = abs(cpu - mem) / 2
        out.append(int((1 - std) * MAX_NODE_SCORE))
    return out


def _normalize(raw: list[int], *, reverse: bool = False) -> Scores:
    """framework.DefaultNormalizeScore: scale to 0..100 by the maximum (reversed: lower raw is better)."""
    top = max(raw, default=0)
    if top == 0:
        return [MAX_NODE_SCORE] * len(raw) if reverse else [0] * len(raw)
    scores = [value * MAX_NODE_SCORE // top for value in raw]
    return [MAX_NODE_SCORE - s for s in scores] if reverse else scores


def node_affinity(pod: podinfo.PodInfo, nodes: list[nodeinfo.NodeInfo]) -> Scores:
    """Preferred node affinity: the sum of the weights of matching preference terms, normalized."""
    if not pod.preferred_node_terms:
        return [0] * len(nodes)
    raw = [
        sum(w for w, term in pod.preferred_node_terms if nodeaffinity.match_term(term, n.labels, n.name))
        for n in nodes
    ]
    return _normalize(raw)


def taint_toleration(pod: podinfo.PodInfo, nodes: list[nodeinfo.NodeInfo]) -> Scores:
    """Fewer untolerated PreferNoSchedule taints is better."""
    raw = [taints.count_untolerated(n.taints, pod.tolerations, effect="PreferNoSchedule") for n in nodes]
    return _normalize(raw, reverse=True)


def inter_pod_affinity(pod: podinfo.PodInfo, nodes: list[nodeinfo.NodeInfo], snapshot: nodeinfo.Snapshot) -> Scores:
    """Preferred pod (anti-)affinity, both ways, min-max normalized as upstream."""
    pair_scores = interpod.prescore(pod, snapshot)
    if not pair_scores:
        return [0] * len(nodes)
    raw = [interpod.score_node(n, pair_scores) for n in nodes]
    low, high = min(raw), max(raw)
    if high == low:
        return [0] * len(nodes)
    return [MAX_NODE_SCORE * (value - low) // (high - low) for value in raw]


def spread(pod: podinfo.PodInfo, nodes: list[nodeinfo.NodeInfo]) -> Scores:
    """SelectorSpread over the pod's controller owner: fewer siblings on a node (and in its zone) is better."""
    if not pod.owner_uid:
        return [0] * len(nodes)
    counts = [n.owner_counts.get(pod.owner_uid, 0) for n in nodes]
    top = max(counts, default=0)
    zones: Counter[str] = Counter()
    for node, count in zip(nodes, counts, strict=True):
        zone = node.labels.get(ZONE_LABEL)
        if zone is not None:
            zones[zone] += count
    top_zone = max(zones.values(), default=0)
    out: Scores = []
    for node, count in zip(nodes, counts, strict=True):
        score = MAX_NODE_SCORE * (top - count) / top if top > 0 else float(MAX_NODE_SCORE)
        zone = node.labels.get(ZONE_LABEL)
        if zones and zone is not None:
            zone_score = MAX_NODE_SCORE * (top_zone - zones[zone]) / top_zone if top_zone > 0 else MAX_NODE_SCORE
            score = score * (1.0 - ZONE_WEIGHTING) + ZONE_WEIGHTING * zone_score
        out.append(int(score))
    return out


NodeScorer = Callable[[podinfo.PodInfo, list[nodeinfo.NodeInfo]], Scores]

# (name, weight, plugin): upstream's default weights (TaintToleration 3, NodeAffinity 2,
# InterPodAffinity 2, topology spreading 2, NodeResourcesFit 1, BalancedAllocation 1).
SCORERS: tuple[tuple[str, int, NodeScorer], ...] = (
    ("TaintToleration", 3, taint_toleration),
    ("NodeAffinity", 2, node_affinity),
    ("PodTopologySpread", 2, spread),
    ("NodeResourcesFit", 1, least_allocated),
    ("NodeResourcesBalancedAllocation", 1, balanced_allocation),
)
INTER_POD_AFFINITY_WEIGHT = 2


def total(pod: podinfo.PodInfo, nodes: list[nodeinfo.NodeInfo], snapshot: nodeinfo.Snapshot) -> Scores:
    """The weighted sum of every plugin's normalized score, per node (same order as `nodes`)."""
    sums = [0] * len(nodes)
    for _name, weight, plugin in SCORERS:
        for i, value in enumerate(plugin(pod, nodes)):
            sums[i] += weight * value
    for i, value in enumerate(inter_pod_affinity(pod, nodes, snapshot)):
        sums[i] += INTER_POD_AFFINITY_WEIGHT * value
    return sums
