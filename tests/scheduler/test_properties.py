"""Property tests of the pure filters and of the decision built on them."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.scheduler import filters, framework, interpod, nodeaffinity, nodeinfo, podinfo, taints
from tests.scheduler import objects

KEYS = st.sampled_from(["a", "b", "zone", "disk"])
VALUES = st.sampled_from(["1", "2", "x", "y", ""])
LABELS = st.dictionaries(KEYS, VALUES, max_size=4)
EFFECTS = st.sampled_from(["NoSchedule", "NoExecute", "PreferNoSchedule"])
TAINTS = st.builds(nodeinfo.Taint, key=KEYS, value=VALUES, effect=EFFECTS)
TOLERATIONS = st.builds(
    podinfo.Toleration,
    key=st.one_of(st.just(""), KEYS),
    operator=st.sampled_from(["Equal", "Exists"]),
    value=VALUES,
    effect=st.one_of(st.just(""), EFFECTS),
)
CPU = st.integers(min_value=0, max_value=4000)
MEMORY = st.integers(min_value=0, max_value=8 * 2**30)


@st.composite
def nodes_and_pods(draw: st.DrawFn) -> tuple[nodeinfo.Snapshot, dict]:
    snap = nodeinfo.Snapshot()
    count = draw(st.integers(min_value=1, max_value=6))
    for i in range(count):
        taint_list = draw(st.lists(TAINTS, max_size=2))
        snap.set_node(objects.node(
            f"n{i}",
            cpu=f"{draw(st.integers(0, 4000))}m",
            memory=str(draw(st.integers(0, 8 * 2**30))),
            pods=str(draw(st.integers(0, 5))),
            labels=draw(LABELS),
            taints=[{"key": t.key, "value": t.value, "effect": t.effect} for t in taint_list],
            unschedulable=draw(st.booleans()),
            ready=draw(st.sampled_from(["True", "True", "False", None])),
        ))
        for j in range(draw(st.integers(0, 3))):
            bound = objects.pod(f"b{i}-{j}", cpu=f"{draw(CPU) // 4}m", memory=str(draw(MEMORY) // 4),
                                labels=draw(LABELS))
            snap.assume(podinfo.from_pod(bound), f"n{i}")
    tolerations = draw(st.lists(TOLERATIONS, max_size=2))
    pod = objects.pod(
        "incoming",
        cpu=f"{draw(CPU)}m",
        memory=str(draw(MEMORY)),
        labels=draw(LABELS),
        node_selector=draw(st.one_of(st.none(), LABELS)),
        tolerations=[t.__dict__ for t in tolerations],
        affinity=draw(st.one_of(st.none(), st.builds(objects.anti_affinity, LABELS.filter(bool), topology_key=KEYS))),
    )
    return snap, pod


@given(CPU, MEMORY, st.lists(st.tuples(CPU, MEMORY), max_size=5), CPU, MEMORY)
def test_a_node_passing_resources_fit_has_room_for_the_pod(
    cap_cpu: int, cap_mem: int, bound: list[tuple[int, int]], cpu: int, mem: int
) -> None:
    snap = nodeinfo.Snapshot()
    snap.set_node(objects.node("n", cpu=f"{cap_cpu}m", memory=str(cap_mem)))
    for i, (c, m) in enumerate(bound):
        snap.assume(podinfo.from_pod(objects.pod(f"b{i}", cpu=f"{c}m", memory=str(m))), "n")
    node = snap.nodes["n"]
    pod = podinfo.from_pod(objects.pod("p", cpu=f"{cpu}m", memory=str(mem)))
    fits = filters.resources_fit(pod, node) == []
    free_cpu = cap_cpu - sum(c for c, _ in bound)
    free_mem = cap_mem - sum(m for _, m in bound)
    if fits:
        assert cpu == 0 or cpu <= free_cpu
        assert mem == 0 or mem <= free_mem
    else:
        assert (cpu > 0 and cpu > free_cpu) or (mem > 0 and mem > free_mem)


@given(TAINTS, st.sampled_from(["", "NoSchedule", "NoExecute", "PreferNoSchedule"]))
def test_exists_with_an_empty_key_tolerates_every_taint(taint: nodeinfo.Taint, effect: str) -> None:
    toleration = podinfo.Toleration(key="", operator="Exists", effect=effect)
    assert taints.tolerates(toleration, taint) == (effect in ("", taint.effect))
    assert taints.tolerates(podinfo.Toleration(key="", operator="Exists"), taint)


@given(LABELS, KEYS, st.lists(VALUES, min_size=1, max_size=3))
def test_in_and_not_in_are_complements(labels: dict[str, str], key: str, values: list[str]) -> None:
    inside = nodeaffinity.match_expression({"key": key, "operator": "In", "values": values}, labels)
    outside = nodeaffinity.match_expression({"key": key, "operator": "NotIn", "values": values}, labels)
    assert inside != outside
    exists = nodeaffinity.match_expression({"key": key, "operator": "Exists"}, labels)
    assert exists != nodeaffinity.match_expression({"key": key, "operator": "DoesNotExist"}, labels)


@given(LABELS, KEYS, st.integers(-5, 5))
def test_gt_and_lt_never_both_hold(labels: dict[str, str], key: str, bound: int) -> None:
    gt = nodeaffinity.match_expression({"key": key, "operator": "Gt", "values": [str(bound)]}, labels)
    lt = nodeaffinity.match_expression({"key": key, "operator": "Lt", "values": [str(bound)]}, labels)
    assert not (gt and lt)


@settings(max_examples=200)
@given(nodes_and_pods(), st.integers(0, 1000))
def test_the_chosen_node_passes_every_filter_and_failures_are_counted(case: tuple, seed: int) -> None:
    snap, pod = case
    info = podinfo.from_pod(pod)
    decision = framework.schedule(info, snap, rng=random.Random(seed))
    state = interpod.prefilter(info, snap)
    verdicts = {n.name: filters.run(info, n, state) for n in snap.node_list()}
    feasible = {name for name, verdict in verdicts.items() if verdict is None}
    if decision.node is None:
        assert not feasible
        reasons = sum(len(v[1]) for v in verdicts.values() if v is not None)
        counted = sum(int(part.split(" ", 1)[0]) for part in decision.message.split(": ", 1)[1].rstrip(".").split(", "))
        assert counted == reasons
        assert decision.message.startswith(f"0/{len(verdicts)} nodes are available")
    else:
        assert decision.node in feasible
        assert set(decision.feasible) == feasible
