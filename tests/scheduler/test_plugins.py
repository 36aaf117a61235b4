"""Unit tests of the pure filters, scores and the decision over snapshots."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from reconcile.scheduler import filters, framework, nodeaffinity, nodeinfo, podinfo, scores, taints
from tests.scheduler import objects


def snapshot(*nodes: dict, bound: list[tuple[dict, str]] = ()) -> nodeinfo.Snapshot:
    snap = nodeinfo.Snapshot()
    for n in nodes:
        snap.set_node(n)
    for pod, node_name in bound:
        snap.assume(podinfo.from_pod(pod), node_name)
    return snap


def decide(pod: dict, snap: nodeinfo.Snapshot, *, seed: int = 0) -> framework.Decision:
    return framework.schedule(podinfo.from_pod(pod), snap, rng=random.Random(seed))


# --- requests ---------------------------------------------------------------------------------


def test_requests_sum_containers_and_take_max_of_init_containers() -> None:
    spec = {
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "0.5"}, "limits": {"memory": "1Gi"}}},
        ],
        "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
    }
    cpu, mem, nz_cpu, nz_mem = podinfo.pod_requests(spec)
    assert cpu == 2000  # the init container needs more than the app containers together
    assert mem == 64 * 2**20 + 2**30  # limits stand in for a missing request
    assert (nz_cpu, nz_mem) == (2000, 64 * 2**20 + 2**30)


def test_best_effort_pods_get_default_requests_for_scoring_only() -> None:
    info = podinfo.from_pod(objects.pod("p"))
    assert (info.milli_cpu, info.memory) == (0, 0)
    assert (info.nonzero_milli_cpu, info.nonzero_memory) == (100, 200 * 2**20)


# --- filters ----------------------------------------------------------------------------------


def test_resources_fit_counts_bound_pods() -> None:
    snap = snapshot(objects.node("n1", cpu="1", memory="1Gi"), bound=[(objects.pod("a", cpu="600m"), "n1")])
    node = snap.nodes["n1"]
    assert filters.resources_fit(podinfo.from_pod(objects.pod("b", cpu="400m")), node) == []
    assert filters.resources_fit(podinfo.from_pod(objects.pod("c", cpu="401m", memory="2Gi")), node) == [
        filters.REASON_INSUFFICIENT_CPU,
        filters.REASON_INSUFFICIENT_MEMORY,
    ]


def test_too_many_pods() -> None:
    snap = snapshot(objects.node("n1", pods="1"), bound=[(objects.pod("a"), "n1")])
    assert filters.resources_fit(podinfo.from_pod(objects.pod("b")), snap.nodes["n1"]) == [filters.REASON_TOO_MANY_PODS]


def test_node_not_ready_is_rejected_through_its_condition_taint() -> None:
    snap = snapshot(objects.node("n1", ready="False"), objects.node("n2", ready=None))
    decision = decide(objects.pod("p"), snap)
    assert decision.node is None
    assert decision.message == (
        "0/2 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, "
        "1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }."
    )
    tolerant = objects.pod("d", tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}])
    assert decide(tolerant, snap).node == "n1"


def test_cordoned_node() -> None:
    snap = snapshot(objects.node("n1", unschedulable=True))
    assert decide(objects.pod("p"), snap).message == "0/1 nodes are available: 1 node(s) were unschedulable."
    tolerant = objects.pod(
        "t", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
    )
    assert decide(tolerant, snap).node == "n1"


def test_node_selector_and_required_affinity_operators() -> None:
    snap = snapshot(
        objects.node("small", labels={"size": "2", "disk": "hdd"}),
        objects.node("big", labels={"size": "16", "disk": "ssd", "gpu": "yes"}),
    )

    def affinity(*expressions: dict) -> dict:
        return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": list(expressions)}]}}}

    assert decide(objects.pod("a", node_selector={"disk": "ssd"}), snap).node == "big"
    cases = {
        "In": ({"key": "disk", "operator": "In", "values": ["hdd"]}, "small"),
        "NotIn": ({"key": "disk", "operator": "NotIn", "values": ["hdd"]}, "big"),
        "Exists": ({"key": "gpu", "operator": "Exists"}, "big"),
        "DoesNotExist": ({"key": "gpu", "operator": "DoesNotExist"}, "small"),
        "Gt": ({"key": "size", "operator": "Gt", "values": ["8"]}, "big"),
        "Lt": ({"key": "size", "operator": "Lt", "values": ["8"]}, "small"),
    }
    for op, (expression, expected) in cases.items():
        assert decide(objects.pod(op, affinity=affinity(expression)), snap).node == expected, op
    none = decide(objects.pod("x", affinity=affinity({"key": "zone", "operator": "In", "values": ["z"]})), snap)
    assert none.message == "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."


def test_node_selector_terms_are_ored_and_expressions_anded() -> None:
    labels = {"a": "1", "b": "2"}
    assert nodeaffinity.match_terms(
        [{"matchExpressions": [{"key": "a", "operator": "In", "values": ["9"]}]},
         {"matchExpressions": [{"key": "b", "operator": "In", "values": ["2"]}]}], labels, "n")
    assert not nodeaffinity.match_terms(
        [{"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]},
                               {"key": "b", "operator": "In", "values": ["9"]}]}], labels, "n")
    assert not nodeaffinity.match_terms([{}], labels, "n")  # an empty term matches nothing
    assert nodeaffinity.match_terms(
        [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}], labels, "n")


def test_taints_and_tolerations() -> None:
    taint = nodeinfo.Taint("dedicated", "gpu", "NoSchedule")
    assert taints.tolerates(podinfo.Toleration("dedicated", "Equal", "gpu", "NoSchedule"), taint)
    assert taints.tolerates(podinfo.Toleration("dedicated", "Exists", "", ""), taint)
    assert taints.tolerates(podinfo.Toleration("", "Exists", "", ""), taint)
    assert not taints.tolerates(podinfo.Toleration("dedicated", "Equal", "cpu", "NoSchedule"), taint)
    assert not taints.tolerates(podinfo.Toleration("dedicated", "Exists", "", "NoExecute"), taint)
    snap = snapshot(
        objects.node("gpu", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
        objects.node("evict", taints=[{"key": "broken", "value": "", "effect": "NoExecute"}]),
        objects.node("soft", taints=[{"key": "meh", "value": "x", "effect": "PreferNoSchedule"}]),
    )
    assert decide(objects.pod("p"), snap).node == "soft"  # PreferNoSchedule does not filter
    snap.set_node(objects.node("plain"))
    for seed in range(10):
        assert decide(objects.pod("p"), snap, seed=seed).node == "plain"  # ...but it scores lower


def test_fit_error_message_sorts_count_reason_strings_like_upstream() -> None:
    snap = snapshot(
        objects.node("a", memory="1Gi"),
        objects.node("b", memory="1Gi"),
        objects.node("c", memory="64Gi", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
    )
    decision = decide(objects.pod("p", memory="2Gi"), snap)
    assert decision.node is None
    assert decision.message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient memory."
    )
    assert decision.failed_plugins == {"TaintToleration", "NodeResourcesFit"}
    assert framework.fit_error(12, Counter({"Insufficient cpu": 10, "Too many pods": 2})) == (
        "0/12 nodes are available: 10 Insufficient cpu, 2 Too many pods."
    )


def test_no_nodes() -> None:
    assert decide(objects.pod("p"), nodeinfo.Snapshot()).message == "no nodes available to schedule pods"


# --- inter-pod affinity -----------------------------------------------------------------------


def test_required_anti_affinity_spreads_and_then_fails() -> None:
    snap = snapshot(objects.node("n1"), objects.node("n2"), objects.node("n3"))
    used = set()
    for i in range(3):
        pod = objects.pod(f"w{i}", labels={"app": "web"}, affinity=objects.anti_affinity({"app": "web"}))
        decision = decide(pod, snap, seed=i)
        assert decision.node not in used
        used.add(decision.node)
        snap.assume(podinfo.from_pod(pod), decision.node)
    extra = objects.pod("w3", labels={"app": "web"}, affinity=objects.anti_affinity({"app": "web"}))
    assert decide(extra, snap).message == "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
    # Existing pods' anti-affinity also binds a newcomer that has none of its own.
    plain = objects.pod("other", labels={"app": "web"})
    assert decide(plain, snap).message == (
        "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules."
    )
    assert decide(objects.pod("unrelated", labels={"app": "db"}), snap).node is not None


def test_required_affinity_follows_the_target_and_allows_the_first_of_a_group() -> None:
    snap = snapshot(objects.node("n1", labels={"zone": "a"}), objects.node("n2", labels={"zone": "b"}))
    affinity = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "zone"}]}}
    lonely = objects.pod("x", labels={"app": "web"}, affinity=affinity)
    assert decide(lonely, snap).message == "0/2 nodes are available: 2 node(s) didn't match pod affinity rules."
    first = objects.pod("c0", labels={"app": "cache"}, affinity=affinity)
    assert decide(first, snap).node in ("n1", "n2")  # matches its own term: the first of its group
    snap.assume(podinfo.from_pod(objects.pod("cache", labels={"app": "cache"})), "n2")
    for seed in range(5):
        assert decide(lonely, snap, seed=seed).node == "n2"


def test_affinity_namespaces() -> None:
    snap = snapshot(objects.node("n1"), objects.node("n2"))
    snap.namespace_labels = {"prod": {"env": "prod"}, "dev": {"env": "dev"}}
    snap.assume(podinfo.from_pod(objects.pod("a", namespace="dev", labels={"app": "web"})), "n1")
    own_ns = objects.pod("b", namespace="prod", labels={"app": "web"}, affinity=objects.anti_affinity({"app": "web"}))
    assert decide(own_ns, snap).feasible == ["n1", "n2"]  # the dev pod is in another namespace
    selecting = objects.pod("c", namespace="prod", labels={"app": "web"}, affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname",
            "namespaceSelector": {"matchLabels": {"env": "dev"}}}]}})
    assert decide(selecting, snap).feasible == ["n2"]


# --- scores -----------------------------------------------------------------------------------


def test_least_allocated_prefers_the_emptier_node() -> None:
    snap = snapshot(objects.node("busy"), objects.node("idle"), bound=[(objects.pod("a", cpu="3", memory="6Gi"), "busy")])
    for seed in range(5):
        assert decide(objects.pod("p", cpu="100m", memory="100Mi"), snap, seed=seed).node == "idle"


def test_preferred_node_affinity_weights() -> None:
    snap = snapshot(objects.node("a", labels={"t": "x"}), objects.node("b", labels={"t": "y"}))
    affinity = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [{"key": "t", "operator": "In", "values": ["x"]}]}},
        {"weight": 90, "preference": {"matchExpressions": [{"key": "t", "operator": "In", "values": ["y"]}]}},
    ]}}
    info = podinfo.from_pod(objects.pod("p", affinity=affinity))
    assert scores.node_affinity(info, snap.node_list()) == [11, 100]
    assert decide(objects.pod("p", affinity=affinity), snap).node == "b"


def test_preferred_pod_affinity_and_anti_affinity() -> None:
    snap = snapshot(objects.node("a"), objects.node("b"), bound=[(objects.pod("db", labels={"app": "db"}), "a")])
    term = {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}
    near = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]}}
    far = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]}}
    for seed in range(5):
        assert decide(objects.pod("n", affinity=near), snap, seed=seed).node == "a"
        assert decide(objects.pod("f", affinity=far), snap, seed=seed).node == "b"


def test_pods_of_one_owner_spread_over_nodes() -> None:
    snap = snapshot(*(objects.node(f"n{i}") for i in range(4)))
    for i in range(8):
        pod = objects.pod(f"r{i}", owner_uid="rs-1")
        decision = decide(pod, snap, seed=i)
        snap.assume(podinfo.from_pod(pod), decision.node)
    assert sorted(n.owner_counts["rs-1"] for n in snap.node_list()) == [2, 2, 2, 2]


def test_ties_are_broken_at_random() -> None:
    snap = snapshot(*(objects.node(f"n{i}") for i in range(5)))
    chosen = {decide(objects.pod("p"), snap, seed=seed).node for seed in range(40)}
    assert len(chosen) >= 3


def test_assume_and_forget_keep_the_sums() -> None:
    snap = snapshot(objects.node("n1"))
    info = podinfo.from_pod(objects.pod("p", cpu="1", memory="1Gi", owner_uid="o"))
    snap.assume(info, "n1")
    node = snap.nodes["n1"]
    assert (node.requested_milli_cpu, node.requested_memory, node.owner_counts["o"]) == (1000, 2**30, 1)
    snap.forget(info.key)
    assert (node.requested_milli_cpu, node.requested_memory, dict(node.owner_counts)) == (0, 0, {})


@pytest.mark.parametrize("bad", ["lots", "-", "1.5.5"])
def test_malformed_quantities_count_as_zero(bad: str) -> None:
    snap = snapshot(objects.node("n1", cpu=bad))
    assert snap.nodes["n1"].allocatable_milli_cpu == 0
