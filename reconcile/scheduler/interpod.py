"""InterPodAffinity: required pod affinity / anti-affinity (filter) and preferred ones (score).

As upstream, the expensive part (scanning the pods already placed) happens once per pod in a
pre-pass that counts topology pairs `(topologyKey, value)`; checking one node is then a few
dictionary lookups. Pods without any affinity, facing no pods with anti-affinity, skip it all.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from reconcile.scheduler import nodeinfo, podinfo

Pair = tuple[str, str]

REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
HARD_POD_AFFINITY_WEIGHT = 1  # upstream's hardPodAffinityWeight default


@dataclass
class FilterState:
    # Pairs where an already placed pod's required anti-affinity term selects the incoming pod.
    existing_anti: Counter[Pair] = field(default_factory=Counter)
    # Pairs holding pods that match all of the incoming pod's required affinity terms.
    affinity: Counter[Pair] = field(default_factory=Counter)
    # Pairs holding pods that match one of the incoming pod's required anti-affinity terms.
    anti: Counter[Pair] = field(default_factory=Counter)
    matches_own_terms: bool = False

    @property
    def idle(self) -> bool:
        return not self.existing_anti and not self.affinity and not self.anti


def _matches_all(terms: list[podinfo.AffinityTerm], pod: podinfo.PodInfo, ns_labels: dict[str, dict[str, str]]) -> bool:
    return all(t.matches(pod.namespace, pod.labels, ns_labels) for t in terms)


def _pairs(snapshot: nodeinfo.Snapshot) -> list[tuple[nodeinfo.NodeInfo, podinfo.PodInfo]]:
    return [(node, pod) for node in snapshot.node_list() for pod in node.pods.values()]


def prefilter(pod: podinfo.PodInfo, snapshot: nodeinfo.Snapshot) -> FilterState:
    state = FilterState()
    ns_labels = snapshot.namespace_labels
    for key in snapshot.with_required_anti_affinity:
        existing = snapshot.pods.get(key)
        node = snapshot.nodes.get(existing.node_name) if existing is not None else None
        if existing is None or node is None or node.node is None:
            continue
        for term in existing.anti_affinity:
            value = node.labels.get(term.topology_key)
            if value is not None and term.matches(pod.namespace, pod.labels, ns_labels):
                state.existing_anti[(term.topology_key, value)] += 1
    if not pod.affinity and not pod.anti_affinity:
        return state
    state.matches_own_terms = _matches_all(pod.affinity, pod, ns_labels)
    for node, existing in _pairs(snapshot):
        if existing.key == pod.key:
            continue
        if pod.affinity and _matches_all(pod.affinity, existing, ns_labels):
            for term in pod.affinity:
                value = node.labels.get(term.topology_key)
                if value is not None:
                    state.affinity[(term.topology_key, value)] += 1
        for term in pod.anti_affinity:
            value = node.labels.get(term.topology_key)
            if value is not None and term.matches(existing.namespace, existing.labels, ns_labels):
                state.anti[(term.topology_key, value)] += 1
    return state


def filter_node(pod: podinfo.PodInfo, node: nodeinfo.NodeInfo, state: FilterState) -> str | None:
    """The reason `node` is rejected, or None."""
    labels = node.labels
    if pod.affinity:
        pods_exist = True
        for term in pod.affinity:
            value = labels.get(term.topology_key)
            if value is None:
                return REASON_AFFINITY  # every topology label must exist on the node
            if state.affinity[(term.topology_key, value)] <= 0:
                pods_exist = False
        # The first pod of a group with affinity to itself may go anywhere.
        if not pods_exist and not (not state.affinity and state.matches_own_terms):
            return REASON_AFFINITY
    if state.anti:
        for term in pod.anti_affinity:
            value = labels.get(term.topology_key)
            if value is not None and state.anti[(term.topology_key, value)] > 0:
                return REASON_ANTI_AFFINITY
    if state.existing_anti:
        for pair in labels.items():
            if state.existing_anti.get(pair, 0) > 0:
                return REASON_EXISTING_ANTI_AFFINITY
    return None


# --- score ------------------------------------------------------------------------------------


def prescore(pod: podinfo.PodInfo, snapshot: nodeinfo.Snapshot) -> Counter[Pair]:
    """Signed weights per topology pair, from the pod's preferred terms and placed pods' terms about it."""
    scores: Counter[Pair] = Counter()
    has_preferred = bool(pod.preferred_affinity or pod.preferred_anti_affinity)
    if not has_preferred and not snapshot.with_affinity:
        return scores
    ns_labels = snapshot.namespace_labels
    if has_preferred:
        candidates = _pairs(snapshot)
    else:
        candidates = []
        for key in snapshot.with_affinity:
            existing = snapshot.pods.get(key)
            node = snapshot.nodes.get(existing.node_name) if existing is not None else None
            if existing is not None and node is not None and node.node is not None:
                candidates.append((node, existing))
    for node, existing in candidates:
        if existing.key == pod.key:
            continue
        labels = node.labels

        def add(term: podinfo.AffinityTerm, weight: int, labels: dict[str, str] = labels) -> None:
            value = labels.get(term.topology_key)
            if value is not None and weight:
                scores[(term.topology_key, value)] += weight

        for term in pod.preferred_affinity:
            if term.matches(existing.namespace, existing.labels, ns_labels):
                add(term, term.weight)
        for term in pod.preferred_anti_affinity:
            if term.matches(existing.namespace, existing.labels, ns_labels):
                add(term, -term.weight)
        for term in existing.affinity:
            if term.matches(pod.namespace, pod.labels, ns_labels):
                add(term, HARD_POD_AFFINITY_WEIGHT)
        for term in existing.preferred_affinity:
            if term.matches(pod.namespace, pod.labels, ns_labels):
                add(term, term.weight)
        for term in existing.preferred_anti_affinity:
            if term.matches(pod.namespace, pod.labels, ns_labels):
                add(term, -term.weight)
    return scores


def score_node(node: nodeinfo.NodeInfo, pair_scores: Counter[Pair]) -> int:
    if not pair_scores:
        return 0
    return sum(pair_scores.get(pair, 0) for pair in node.labels.items())
