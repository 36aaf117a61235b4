"""What the scheduler needs from a pod, parsed once: requests, tolerations, affinity terms, owner.

Parsing quantities and selectors is the expensive part of a scheduling decision; doing it once
per pod (not once per node) keeps a decision O(nodes) with a small constant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconcile.core import errors, quantities, selectors

Key = tuple[str, str]  # (namespace, name)

# Upstream's defaults for pods that request nothing, used only by scores (never by filters),
# so a node full of best-effort pods does not look empty.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


@dataclass(frozen=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"  # Equal | Exists
    value: str = ""
    effect: str = ""  # "" matches every effect


@dataclass(frozen=True)
class AffinityTerm:
    """A pod (anti-)affinity term; namespaces resolved against the pod that declares it."""

    selector: selectors.LabelSelector
    namespaces: frozenset[str]
    namespace_selector: selectors.LabelSelector | None  # None: only `namespaces`
    topology_key: str
    weight: int = 1  # preferred terms only

    def matches(self, namespace: str, labels: dict[str, str], ns_labels: dict[str, dict[str, str]]) -> bool:
        """Whether a pod in `namespace` with `labels` is selected by this term."""
        if namespace not in self.namespaces and not (
            self.namespace_selector is not None and self.namespace_selector.matches(ns_labels.get(namespace) or {})
        ):
            return False
        return self.selector.matches(labels)


@dataclass
class PodInfo:
    """A pod reduced to the fields filters and scores read."""

    namespace: str
    name: str
    uid: str
    labels: dict[str, str]
    node_name: str  # spec.nodeName ("" while unscheduled)
    milli_cpu: int  # effective requests (what filters use)
    memory: int
    nonzero_milli_cpu: int  # requests with upstream's defaults filled in (what scores use)
    nonzero_memory: int
    node_selector: dict[str, str]
    required_node_terms: list[dict[str, Any]] | None  # None: no required node affinity
    preferred_node_terms: list[tuple[int, dict[str, Any]]]
    tolerations: list[Toleration]
    affinity: list[AffinityTerm] = field(default_factory=list)  # required pod affinity
    anti_affinity: list[AffinityTerm] = field(default_factory=list)  # required pod anti-affinity
    preferred_affinity: list[AffinityTerm] = field(default_factory=list)
    preferred_anti_affinity: list[AffinityTerm] = field(default_factory=list)
    owner_uid: str = ""  # uid of the controller ownerReference ("" if none)

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def has_pod_affinity(self) -> bool:
        return bool(self.affinity or self.anti_affinity or self.preferred_affinity or self.preferred_anti_affinity)


def _quantity(parse: Any, value: Any) -> int:
    try:
        return parse(value)
    except (errors.ApiError, ValueError, TypeError):
        return 0


def _container_requests(container: dict[str, Any]) -> tuple[int, int, int, int]:
    """(cpu, memory, nonzero cpu, nonzero memory); limits stand in for missing requests, as API defaulting does."""
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    cpu_raw = requests.get("cpu", limits.get("cpu"))
    mem_raw = requests.get("memory", limits.get("memory"))
    cpu = _quantity(quantities.parse_cpu_millis, cpu_raw) if cpu_raw is not None else 0
    mem = _quantity(quantities.parse_bytes, mem_raw) if mem_raw is not None else 0
    return (
        cpu,
        mem,
        cpu if cpu_raw is not None else DEFAULT_MILLI_CPU_REQUEST,
        mem if mem_raw is not None else DEFAULT_MEMORY_REQUEST,
    )


def pod_requests(spec: dict[str, Any]) -> tuple[int, int, int, int]:
    """Effective requests: max(sum over containers, each init container) plus overhead, as upstream."""
    totals = [0, 0, 0, 0]
    for container in spec.get("containers") or []:
        for i, value in enumerate(_container_requests(container)):
            totals[i] += value
    for container in spec.get("initContainers") or []:
        for i, value in enumerate(_container_requests(container)):
            totals[i] = max(totals[i], value)
    overhead = spec.get("overhead") or {}
    if overhead:
        cpu = _quantity(quantities.parse_cpu_millis, overhead.get("cpu", 0))
        mem = _quantity(quantities.parse_bytes, overhead.get("memory", 0))
        totals = [totals[0] + cpu, totals[1] + mem, totals[2] + cpu, totals[3] + mem]
    return totals[0], totals[1], totals[2], totals[3]


def _selector(spec: Any) -> selectors.LabelSelector:
    try:
        return selectors.LabelSelector.from_match(spec)
    except errors.ApiError:
        return selectors.LabelSelector.match_nothing()


def affinity_term(term: dict[str, Any], namespace: str, *, weight: int = 1) -> AffinityTerm:
    """Upstream: no namespaces and no namespaceSelector means the declaring pod's own namespace."""
    names = frozenset(term.get("namespaces") or ())
    ns_selector_spec = term.get("namespaceSelector")
    ns_selector = _selector(ns_selector_spec) if ns_selector_spec is not None else None
    if not names and ns_selector is None:
        names = frozenset({namespace})
    return AffinityTerm(
        selector=_selector(term.get("labelSelector")),
        namespaces=names,
        namespace_selector=ns_selector,
        topology_key=term.get("topologyKey") or "",
        weight=weight,
    )


def _terms(section: dict[str, Any], namespace: str) -> tuple[list[AffinityTerm], list[AffinityTerm]]:
    required = [
        affinity_term(t, namespace) for t in section.get("requiredDuringSchedulingIgnoredDuringExecution") or []
    ]
    preferred = [
        affinity_term(p.get("podAffinityTerm") or {}, namespace, weight=int(p.get("weight") or 0))
        for p in section.get("preferredDuringSchedulingIgnoredDuringExecution") or []
    ]
    return required, preferred


def tolerations(spec: dict[str, Any]) -> list[Toleration]:
    return [
        Toleration(
            key=t.get("key") or "",
            operator=t.get("operator") or "Equal",
            value=t.get("value") or "",
            effect=t.get("effect") or "",
        )
        for t in spec.get("tolerations") or []
    ]


def from_pod(pod: dict[str, Any]) -> PodInfo:
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    namespace = metadata.get("namespace") or ""
    cpu, mem, nz_cpu, nz_mem = pod_requests(spec)
    affinity = spec.get("affinity") or {}
    node_affinity = affinity.get("nodeAffinity") or {}
    required_node = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    preferred_node = [
        (int(p.get("weight") or 0), p.get("preference") or {})
        for p in node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []
    ]
    pod_aff, pod_aff_pref = _terms(affinity.get("podAffinity") or {}, namespace)
    pod_anti, pod_anti_pref = _terms(affinity.get("podAntiAffinity") or {}, namespace)
    owner = next((r for r in metadata.get("ownerReferences") or [] if r.get("controller")), None)
    return PodInfo(
        namespace=namespace,
        name=metadata.get("name") or "",
        uid=metadata.get("uid") or "",
        labels=dict(metadata.get("labels") or {}),
        node_name=spec.get("nodeName") or "",
        milli_cpu=cpu,
        memory=mem,
        nonzero_milli_cpu=nz_cpu,
        nonzero_memory=nz_mem,
        node_selector=dict(spec.get("nodeSelector") or {}),
        required_node_terms=(
            list(required_node.get("nodeSelectorTerms") or []) if required_node is not None else None
        ),
        preferred_node_terms=preferred_node,
        tolerations=tolerations(spec),
        affinity=pod_aff,
        anti_affinity=pod_anti,
        preferred_affinity=pod_aff_pref,
        preferred_anti_affinity=pod_anti_pref,
        owner_uid=(owner or {}).get("uid") or "",
    )
