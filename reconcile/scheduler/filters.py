"""Filter plugins: may this pod run on this node? Pure functions over a PodInfo and a NodeInfo.

Each returns the reasons a node is rejected (empty = fits), worded as upstream's plugins word
them, so `framework.fit_error` can build upstream's message. They run in upstream's default
order and a node stops at its first failing plugin, as in the framework's RunFilterPlugins.
"""

from __future__ import annotations

from collections.abc import Callable

from reconcile.scheduler import interpod, nodeaffinity, nodeinfo, podinfo, taints

REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_NODE_NAME = "node(s) didn't match the requested node name"
REASON_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_TOO_MANY_PODS = "Too many pods"
REASON_INSUFFICIENT_CPU = "Insufficient cpu"
REASON_INSUFFICIENT_MEMORY = "Insufficient memory"

_UNSCHEDULABLE_TAINT = nodeinfo.Taint(key=nodeinfo.UNSCHEDULABLE_TAINT, effect="NoSchedule")

Reasons = list[str]


def node_unschedulable(pod: podinfo.PodInfo, node: nodeinfo.NodeInfo) -> Reasons:
    """Cordoned nodes take only pods tolerating node.kubernetes.io/unschedulable:NoSchedule."""
    if node.unschedulable and not taints.tolerated(_UNSCHEDULABLE_TAINT, pod.tolerations):
        return [REASON_UNSCHEDULABLE]
    return []


def node_name(pod: podinfo.PodInfo, node: nodeinfo.NodeInfo) -> Reasons:
    """A pod naming a node (spec.nodeName set before binding) fits only there."""
    if pod.node_name and pod.node_name != node.name:
        return [REASON_NODE_NAME]
    return []


def taint_toleration(pod: podinfo.PodInfo, node: nodeinfo.NodeInfo) -> Reasons:
    """NoSchedule and NoExecute taints must be tolerated (Ready is judged here, through condition taints)."""
    taint = taints.first_untolerated(node.taints, pod.tolerations)
    if taint is not None:
        return [f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"]
    return []


def node_affinity(pod: podinfo.PodInfo, node: nodeinfo.NodeInfo) -> Reasons:
    """spec.nodeSelector and required node affinity must both match."""
    if pod.node_selector and not nodeaffinity.match_node_selector(pod.node_selector, node.labels):
        return [REASON_NODE_AFFINITY]
    if pod.required_node_terms is not None and not nodeaffinity.match_terms(
        pod.required_node_terms, node.labels, node.name
    ):
        return [REASON_NODE_AFFINITY]
    return []


def resources_fit(pod: podinfo.PodInfo, node: nodeinfo.NodeInfo) -> Reasons:
    """Requests against allocatable minus what bound (and assumed) pods request; every shortfall is a reason."""
    reasons: Reasons = []
    if len(node.pods) + 1 > node.allocatable_pods:
        reasons.append(REASON_TOO_MANY_PODS)
    if pod.milli_cpu == 0 and pod.memory == 0:
        return reasons
    if pod.milli_cpu > 0 and pod.milli_cpu > node.allocatable_milli_cpu - node.requested_milli_cpu:
        reasons.append(REASON_INSUFFICIENT_CPU)
    if pod.memory > 0 and pod.memory > node.allocatable_memory - node.requested_memory:
        reasons.append(REASON_INSUFFICIENT_MEMORY)
    return reasons


NodeFilter = Callable[[podinfo.PodInfo, nodeinfo.NodeInfo], Reasons]

# Upstream's default order; the name is what the scheduling queue keeps to know which
# cluster events may help a pod that failed.
FILTERS: tuple[tuple[str, NodeFilter], ...] = (
    ("NodeUnschedulable", node_unschedulable),
    ("NodeName", node_name),
    ("TaintToleration", taint_toleration),
    ("NodeAffinity", node_affinity),
    ("NodeResourcesFit", resources_fit),
)
INTER_POD_AFFINITY = "InterPodAffinity"


def run(
    pod: podinfo.PodInfo, node: nodeinfo.NodeInfo, affinity_state: interpod.FilterState | None
) -> tuple[str, Reasons] | None:
    """(failing plugin, reasons) for the first plugin rejecting `node`, or None if it fits."""
    for name, plugin in FILTERS:
        reasons = plugin(pod, node)
        if reasons:
            return name, reasons
    if affinity_state is not None:
        reason = interpod.filter_node(pod, node, affinity_state)
        if reason is not None:
            return INTER_POD_AFFINITY, [reason]
    return None
