"""One scheduling decision: filter every node, score the feasible ones, pick the best (ties at random).

Pure: reads a Snapshot, changes nothing; the caller assumes the result. A failure carries
upstream's FitError message (`0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had ...`).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from reconcile.scheduler import filters, interpod, nodeinfo, podinfo, scores, volumebinding

NO_NODES = "no nodes available to schedule pods"  # upstream's ErrNoNodesAvailable


@dataclass
class Decision:
    node: str | None  # None: no node fits
    message: str = ""  # the FitError message when node is None
    failed_plugins: set[str] = field(default_factory=set)  # which filters rejected nodes (for requeue hints)
    feasible: list[str] = field(default_factory=list)


def fit_error(num_nodes: int, reasons: Counter[str]) -> str:
    """FitError.Error(): `"<count> <reason>"` strings sorted as strings, joined by ", "."""
    message = f"0/{num_nodes} nodes are available:"
    histogram = sorted(f"{count} {reason}" for reason, count in reasons.items())
    if histogram:
        message += f" {', '.join(histogram)}."
    return message


def schedule(
    pod: podinfo.PodInfo, snapshot: nodeinfo.Snapshot, *, rng: random.Random | None = None,
    volume_state: volumebinding.State | None = None,
) -> Decision:
    """`volume_state`: the VolumeBinding PreFilter's answer for the pod (None: it names no claims)."""
    nodes = snapshot.node_list()
    if not nodes:
        return Decision(None, NO_NODES)
    if volume_state is not None and volume_state.error:
        return Decision(None, f"0/{len(nodes)} nodes are available: {volume_state.error}.", {volumebinding.NAME})
    if volume_state is not None and volume_state.idle:
        volume_state = None
    affinity_state: interpod.FilterState | None = interpod.prefilter(pod, snapshot)
    if affinity_state is not None and affinity_state.idle and not pod.affinity:
        affinity_state = None  # nothing to check on any node
    feasible: list[nodeinfo.NodeInfo] = []
    reasons: Counter[str] = Counter()
    failed: set[str] = set()
    for node in nodes:
        verdict = filters.run(pod, node, affinity_state)
        if verdict is None and volume_state is not None:
            volume_reasons = volumebinding.filter_node(volume_state, node)
            verdict = (volumebinding.NAME, volume_reasons) if volume_reasons else None
        if verdict is None:
            feasible.append(node)
        else:
            failed.add(verdict[0])
            for reason in verdict[1]:
                reasons[reason] += 1
    if not feasible:
        message = fit_error(len(nodes), reasons)
        if volume_state is not None:
            message += volumebinding.blocking_message(volume_state)
        return Decision(None, message, failed)
    if len(feasible) == 1:
        return Decision(feasible[0].name, feasible=[feasible[0].name])
    totals = scores.total(pod, feasible, snapshot)
    best = max(totals)
    winners = [node.name for node, value in zip(feasible, totals, strict=True) if value == best]
    choice = (rng or random).choice(winners)
    return Decision(choice, feasible=[n.name for n in feasible])
