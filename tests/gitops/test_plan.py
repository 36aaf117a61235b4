"""The pure plan of a Sync: apply order, prune set, conflicts, namespace defaulting, health."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconcile.gitops import plan

KINDS = ["Namespace", "CustomResourceDefinition", "ConfigMap", "Deployment", "Service"]


def obj(kind: str, name: str, *, wave: int | None = None, namespace: str | None = None,
        annotations: dict | None = None) -> dict:
    meta: dict = {"name": name, "annotations": dict(annotations or {})}
    if wave is not None:
        meta["annotations"][plan.SYNC_WAVE] = str(wave)
    if namespace:
        meta["namespace"] = namespace
    api = {"Deployment": "apps/v1", "CustomResourceDefinition": "apiextensions.k8s.io/v1"}.get(kind, "v1")
    return {"apiVersion": api, "kind": kind, "metadata": meta}


def test_namespaces_and_crds_first_then_waves() -> None:
    objects = [obj("Deployment", "d", wave=2), obj("ConfigMap", "c", wave=-1), obj("Service", "s"),
               obj("CustomResourceDefinition", "x"), obj("Namespace", "n")]
    order = [o["metadata"]["name"] for o in plan.apply_order(objects)]
    assert order == ["n", "x", "c", "s", "d"]


@given(st.lists(st.tuples(st.sampled_from(KINDS), st.integers(-3, 3)), max_size=30))
def test_apply_order_is_a_sorted_permutation(items: list[tuple[str, int]]) -> None:
    objects = [obj(kind, f"o{i}", wave=w) for i, (kind, w) in enumerate(items)]
    order = plan.apply_order(objects)
    assert sorted(o["metadata"]["name"] for o in order) == sorted(o["metadata"]["name"] for o in objects)
    ranks = [(plan.FIRST_KINDS.index(o["kind"]) if o["kind"] in plan.FIRST_KINDS else 2,
              plan.wave(o) if o["kind"] not in plan.FIRST_KINDS else 0) for o in order]
    assert ranks == sorted(ranks)
    assert plan.apply_order(order) == order  # idempotent


def test_bad_wave_is_zero() -> None:
    assert plan.wave(obj("ConfigMap", "c", annotations={plan.SYNC_WAVE: "soon"})) == 0


entries = st.builds(plan.Entry, st.sampled_from(["", "apps"]), st.sampled_from(KINDS),
                    st.sampled_from(["", "a", "b"]), st.sampled_from(["x", "y", "z"]))


@given(st.lists(entries, max_size=20), st.lists(entries, max_size=20))
def test_prune_only_old_minus_new(old: list[plan.Entry], new: list[plan.Entry]) -> None:
    pruned = plan.prune_set(old, new)
    new_keys = {e.key for e in new}
    assert {e.key for e in pruned} == {e.key for e in old} - new_keys
    assert all(e in old for e in pruned)  # never anything outside this Sync's inventory
    assert len(pruned) == len(set(pruned))
    # idempotent: after applying `new`, the inventory is `new`, and planning again prunes nothing
    assert plan.prune_set(new, new) == []


def test_prune_reverse_order_and_opt_out() -> None:
    ns, crd = plan.Entry("", "Namespace", "", "n"), plan.Entry("apiextensions.k8s.io", "CustomResourceDefinition", "", "c")
    a, b, keep = (plan.Entry("", "ConfigMap", "n", x) for x in ("a", "b", "keep"))
    live = {keep.key: obj("ConfigMap", "keep", annotations={plan.PRUNE: "disabled"})}
    assert plan.prune_set([ns, crd, a, b, keep], [], live) == [b, a, crd, ns]


def test_target_namespace_and_owner_labels() -> None:
    out = plan.with_defaults(obj("ConfigMap", "c", namespace="elsewhere"), target_namespace="apps",
                             namespaced=True, sync=("flux", "s"))
    assert out["metadata"]["namespace"] == "apps"
    assert out["metadata"]["labels"] == {plan.OWNER_NAME: "s", plan.OWNER_NAMESPACE: "flux"}
    assert plan.with_defaults(obj("ConfigMap", "c"), target_namespace=None, namespaced=True,
                              sync=("flux", "s"))["metadata"]["namespace"] == "flux"
    assert "namespace" not in plan.with_defaults(obj("Namespace", "n", namespace="x"), target_namespace="apps",
                                                 namespaced=False, sync=("flux", "s"))["metadata"]


def test_conflicts() -> None:
    mine = plan.with_defaults(obj("ConfigMap", "c"), target_namespace=None, namespaced=True, sync=("ns", "s"))
    assert plan.conflict(mine, ("ns", "s")) is None
    assert plan.conflict(mine, ("ns", "other")) == "owned by Sync ns/s"
    released = obj("ConfigMap", "c", annotations={plan.CHART_RELEASE: "web",
                                                  "charts.reconcile.dev/release-namespace": "ns"})
    assert plan.conflict(released, ("ns", "s")) == "owned by chart release ns/web"
    assert plan.conflict(None, ("ns", "s")) is None
    assert plan.conflict(obj("ConfigMap", "plain"), ("ns", "s")) is None


def test_inventory_round_trip_and_hostile_status() -> None:
    e = plan.Entry("apps", "Deployment", "ns", "web", "v1")
    assert plan.inventory_of({"inventory": {"entries": [e.to_status(), {"kind": 3}, "x", {}]}}) == [e]
    assert plan.inventory_of("nonsense") == []
    assert plan.inventory_of({"inventory": None}) == []


def deployment(generation: int, observed: int, replicas: int, updated: int, ready: int, available: int) -> dict:
    return {"kind": "Deployment", "metadata": {"generation": generation}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "updatedReplicas": updated, "readyReplicas": ready,
                       "availableReplicas": available}}


def test_health() -> None:
    assert plan.health(deployment(2, 1, 1, 1, 1, 1))[0] == "InProgress"
    assert plan.health(deployment(2, 2, 3, 2, 3, 3))[0] == "InProgress"
    assert plan.health(deployment(2, 2, 3, 3, 3, 2))[0] == "InProgress"
    assert plan.health(deployment(2, 2, 3, 3, 3, 3))[0] == "Current"
    assert plan.health({"kind": "Pod", "status": {"phase": "Failed"}})[0] == "Failed"
    assert plan.health({"kind": "Pod", "status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True"}]}})[0] == "Current"
    assert plan.health({"kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}})[0] == "InProgress"
    assert plan.health({"kind": "Widget", "status": {"conditions": [{"type": "Ready", "status": "False"}]}})[0] \
        == "InProgress"
    assert plan.health({"kind": "ConfigMap"})[0] == "Current"
    assert plan.health({"kind": "Deployment", "spec": {"replicas": "x"}, "status": "broken"})[0] == "Current"


@given(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.integers(0, 5),
       st.integers(0, 5))
def test_deployment_current_only_when_caught_up(g: int, o: int, r: int, u: int, rd: int, a: int) -> None:
    state, _ = plan.health(deployment(g, o, r, u, rd, a))
    assert (state == "Current") == (o >= g and u >= r and rd >= r and a >= r)


@given(st.lists(st.sampled_from(KINDS), max_size=30))
def test_same_kind_runs_keep_every_cross_kind_order(kinds: list[str]) -> None:
    objects = [obj(kind, f"o{i}") for i, kind in enumerate(kinds)]
    runs = plan.same_kind_runs(objects, lambda o: o)
    assert [o for run in runs for o in run] == objects  # in order, nothing lost
    assert all(len({(o["apiVersion"], o["kind"]) for o in run}) == 1 for run in runs)
    assert all(a[0]["kind"] != b[0]["kind"] for a, b in zip(runs, runs[1:], strict=False))  # maximal runs


def test_same_kind_runs_split_at_each_change_of_kind() -> None:
    objects = [obj("ConfigMap", "a"), obj("ConfigMap", "b"), obj("Deployment", "d"), obj("ConfigMap", "c")]
    runs = plan.same_kind_runs(objects, lambda o: o)
    assert [[o["metadata"]["name"] for o in run] for run in runs] == [["a", "b"], ["d"], ["c"]]


def test_an_apply_is_a_noop_only_when_its_dry_run_answers_the_live_object_itself() -> None:
    live = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "1"},
            "metadata": {"name": "c", "resourceVersion": "7", "managedFields": [
                {"manager": "gitops-controller", "operation": "Apply", "time": "2026-01-01T00:00:00Z",
                 "fieldsV1": {"f:data": {"f:k": {}}}}]}}
    restamped = {**live, "metadata": {**live["metadata"], "managedFields": [
        {**live["metadata"]["managedFields"][0], "time": "2026-01-02T00:00:00Z"}]}}
    assert plan.apply_is_noop(live, live) and plan.apply_is_noop(live, restamped)
    assert not plan.apply_is_noop(live, {**live, "data": {"k": "2"}})  # a change (or drift to revert)
    assert not plan.apply_is_noop(None, live) and not plan.apply_is_noop(live, None)  # a create; no answer
    other_version = {**live, "metadata": {**live["metadata"], "resourceVersion": "8"}}
    assert not plan.apply_is_noop(live, other_version)  # judged on another write than the one read
    no_version = {**live, "metadata": {k: v for k, v in live["metadata"].items() if k != "resourceVersion"}}
    assert not plan.apply_is_noop(no_version, no_version)
    taken = {**live, "metadata": {**live["metadata"], "managedFields": [
        {**live["metadata"]["managedFields"][0], "manager": "kubectl-edit", "operation": "Update"}]}}
    assert not plan.apply_is_noop(taken, live)  # the same values, but the apply takes the fields back
