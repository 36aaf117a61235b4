"""The StatefulSet controller's pure decisions (reconcile/controllers/statefulsetplan.py).

Unit tests pin upstream's rules one by one; the hypothesis properties check the orderings on any
mix of pods: OrderedReady changes one pod at a time and only when everything below is available,
condemned pods go highest first, a rolling update never reaches below the partition nor past
maxUnavailable, and a simulated cluster driven by the plan always converges.
"""

from __future__ import annotations

import dataclasses
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.controllers import statefulsetplan as plan
from reconcile.controllers.statefulsetplan import Action, PodView, Settings

OLD, NEW = "web-old", "web-new"


def _healthy(ordinal: int, revision: str = NEW) -> PodView:
    return PodView(ordinal, revision, ready=True, available=True)


def _set(replicas: int, **kw) -> Settings:
    kw.setdefault("current_revision", OLD)
    kw.setdefault("update_revision", NEW)
    return Settings(replicas=replicas, **kw)


# --- OrderedReady and Parallel scaling ----------------------------------------------------------


def test_ordered_ready_creates_the_lowest_missing_ordinal_only() -> None:
    assert plan.plan(_set(3), {}) == [Action("create", 0, revision=NEW)]
    assert plan.plan(_set(3), {0: _healthy(0)}) == [Action("create", 1, revision=NEW)]


def test_ordered_ready_waits_for_the_previous_pod_to_be_ready_and_available() -> None:
    assert plan.plan(_set(3), {0: PodView(0, NEW)}) == []  # created, not Ready
    assert plan.plan(_set(3), {0: PodView(0, NEW, ready=True)}) == []  # Ready, not yet minReadySeconds
    assert plan.plan(_set(3), {0: PodView(0, NEW, terminating=True)}) == []


def test_parallel_creates_every_missing_ordinal_without_waiting() -> None:
    actions = plan.plan(_set(4, ordered=False), {1: PodView(1, NEW)})
    assert actions == [Action("create", o, revision=NEW) for o in (0, 2, 3)]


def test_ordinals_start_shifts_the_identities() -> None:
    assert plan.plan(_set(2, start=5), {}) == [Action("create", 5, revision=NEW)]
    pods = {5: _healthy(5), 6: _healthy(6), 0: _healthy(0)}
    assert plan.plan(_set(2, start=5), pods) == [Action("delete", 0, reason="scale-down")]


def test_finished_pods_are_deleted_to_be_recreated() -> None:
    pods = {0: PodView(0, NEW, finished=True), 1: _healthy(1)}
    assert plan.plan(_set(2), pods) == [Action("delete", 0, reason="finished")]
    # once it terminates, OrderedReady waits for it to go before anything else
    assert plan.plan(_set(2), {0: PodView(0, NEW, finished=True, terminating=True)}) == []
    assert plan.plan(_set(2, ordered=False), {0: PodView(0, NEW, finished=True)}) == [
        Action("delete", 0, reason="finished"), Action("create", 1, revision=NEW)]


def test_scale_down_deletes_the_highest_ordinal_one_at_a_time() -> None:
    pods = {o: _healthy(o) for o in range(5)}
    assert plan.plan(_set(2), pods) == [Action("delete", 4, reason="scale-down")]
    pods[4] = PodView(4, NEW, terminating=True)
    assert plan.plan(_set(2), pods) == []  # waits for 4 to be gone
    del pods[4]
    assert plan.plan(_set(2), pods) == [Action("delete", 3, reason="scale-down")]


def test_scale_down_waits_unless_the_condemned_pod_is_the_first_unhealthy() -> None:
    pods = {0: _healthy(0), 1: _healthy(1), 2: PodView(2, NEW), 3: _healthy(3)}
    assert plan.plan(_set(2), pods) == [Action("delete", 3, reason="scale-down")]
    pods = {0: _healthy(0), 1: _healthy(1), 2: PodView(2, NEW), 3: PodView(3, NEW)}
    assert plan.plan(_set(2), pods) == []  # 3 is unhealthy but 2 is the first unhealthy one
    assert plan.plan(_set(3), {0: _healthy(0), 1: _healthy(1), 2: _healthy(2), 3: PodView(3, NEW)}) == [
        Action("delete", 3, reason="scale-down")]


def test_two_unhealthy_condemned_pods_block_ordered_scale_down() -> None:
    """Upstream: only the first unhealthy pod (lowest ordinal) may go while unhealthy; the highest
    condemned one is unhealthy too, so OrderedReady waits (the user must delete one)."""
    pods = {0: _healthy(0), 1: PodView(1, NEW, finished=True), 2: PodView(2, NEW, finished=True)}
    assert plan.plan(_set(1), pods) == []
    assert plan.plan(_set(1, ordered=False), pods) == [Action("delete", o, reason="scale-down") for o in (2, 1)]


def test_parallel_scale_down_deletes_all_condemned_at_once() -> None:
    pods = {o: PodView(o, NEW) for o in range(4)}
    assert plan.plan(_set(1, ordered=False), pods) == [Action("delete", o, reason="scale-down") for o in (3, 2, 1)]


def test_huge_replicas_plan_in_bounded_steps() -> None:
    """replicas 2**31-1 is valid: Parallel plans `burst` creates per sync, rolling updates walk only
    existing pods, OrderedReady stops at the first missing one; none walks the whole range."""
    huge = 2**31 - 1
    actions = plan.plan(_set(huge, ordered=False, burst=5), {})
    assert actions == [Action("create", o, revision=NEW) for o in range(5)]
    pods = {0: PodView(0, NEW, finished=True), 7: PodView(7, NEW, finished=True), 10**9: _healthy(10**9, OLD)}
    actions = plan.plan(_set(huge, ordered=False, burst=3), pods)
    assert [a for a in actions if a.verb == "delete"] == [Action("delete", 0, reason="finished"),
                                                          Action("delete", 7, reason="finished")]
    assert [a.ordinal for a in actions if a.verb == "create"] == [1, 2, 3]
    assert plan.plan(_set(huge), {0: _healthy(0)}) == [Action("create", 1, revision=NEW)]
    # everything missing counts as unavailable: no rolling deletions
    assert plan.plan(_set(huge, ordered=False, burst=0, max_unavailable=3), {5: _healthy(5, OLD)}) == []


def test_negative_replicas_want_nothing() -> None:
    assert list(plan.wanted(_set(-3))) == []


# --- rolling update and OnDelete ------------------------------------------------------------------


def test_rolling_update_goes_from_the_highest_ordinal_down() -> None:
    pods = {o: _healthy(o, OLD) for o in range(3)}
    assert plan.plan(_set(3), pods) == [Action("delete", 2, reason="update")]
    pods[2] = PodView(2, NEW)  # recreated, not ready yet
    assert plan.plan(_set(3), pods) == []
    pods[2] = _healthy(2)
    assert plan.plan(_set(3), pods) == [Action("delete", 1, reason="update")]


def test_rolling_update_honours_the_partition() -> None:
    pods = {o: _healthy(o, OLD) for o in range(4)}
    pods[3] = _healthy(3)
    assert plan.plan(_set(4, partition=2), pods) == [Action("delete", 2, reason="update")]
    pods[2] = _healthy(2)
    assert plan.plan(_set(4, partition=2), pods) == []
    assert plan.plan(_set(4, partition=9), {o: _healthy(o, OLD) for o in range(4)}) == []


def test_pods_below_the_partition_come_back_at_the_current_revision() -> None:
    pods = {0: _healthy(0, OLD), 2: _healthy(2)}
    assert plan.plan(_set(3, partition=2), pods) == [Action("create", 1, revision=OLD)]
    assert plan.revision_for(_set(3, partition=2), 2) == NEW
    assert plan.revision_for(_set(3, partition=2, rolling=False), 0) == NEW  # OnDelete: the update revision


def test_max_unavailable_deletes_several_highest_first_within_budget() -> None:
    pods = {o: _healthy(o, OLD) for o in range(5)}
    assert plan.plan(_set(5, max_unavailable=3, ordered=False), pods) == [
        Action("delete", o, reason="update") for o in (4, 3, 2)]
    pods[4] = PodView(4, NEW)  # one unavailable already: budget 2
    assert plan.plan(_set(5, max_unavailable=3, ordered=False), pods) == [
        Action("delete", o, reason="update") for o in (3, 2)]
    pods[3] = PodView(3, NEW)
    pods[2] = PodView(2, NEW)
    assert plan.plan(_set(5, max_unavailable=3, ordered=False), pods) == []


def test_on_delete_never_deletes_for_an_update() -> None:
    pods = {o: _healthy(o, OLD) for o in range(3)}
    assert plan.plan(_set(3, rolling=False), pods) == []


def test_resolve_max_unavailable_rounds_down_with_a_floor_of_one() -> None:
    assert plan.resolve_max_unavailable(None, 10) == 1
    assert plan.resolve_max_unavailable(3, 10) == 3
    assert plan.resolve_max_unavailable("25%", 10) == 2
    assert plan.resolve_max_unavailable("5%", 10) == 1
    assert plan.resolve_max_unavailable(0, 10) == 1


# --- status and revisions -------------------------------------------------------------------------


def test_status_counts_pods_per_revision_and_readiness() -> None:
    pods = [_healthy(0, OLD), PodView(1, NEW, ready=True), PodView(2, NEW, terminating=True)]
    assert plan.compute_status(pods, current_revision=OLD, update_revision=NEW) == {
        "replicas": 3, "readyReplicas": 2, "availableReplicas": 1, "currentReplicas": 1, "updatedReplicas": 1}
    done = {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2}
    assert plan.rollout_complete(done, 2) and not plan.rollout_complete(done, 3)
    assert not plan.rollout_complete({**done, "readyReplicas": 1}, 2)


def test_revision_data_is_a_replacing_patch_and_hashes_as_upstream() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    data = plan.revision_data(template)
    assert data == {"spec": {"template": {**template, "$patch": "replace"}}}
    assert plan.template_of(data) == template
    h = plan.revision_hash(data, 0)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 6 <= len(h) <= 10
    assert plan.revision_hash(data, 0) == h and plan.revision_hash(data, 1) != h
    # fnv-32 (multiply, then xor), as Go's hash/fnv New32: the empty input is the offset basis
    assert plan._fnv1_32(b"") == 0x811C9DC5 and plan._fnv1_32(b"a") == 0x050C5D7E
    assert plan.revision_name("web", h) == f"web-{h}"


def test_history_trims_the_oldest_dead_revisions_only() -> None:
    revisions = [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)]
    assert plan.history_to_trim(revisions, keep={"a", "e"}, limit=2) == ["b"]
    assert plan.history_to_trim(revisions, keep={"e"}, limit=10) == []
    assert plan.history_to_trim(revisions, keep=set(), limit=0) == ["a", "b", "c", "d", "e"]


# --- names, pods, claims, ownership ---------------------------------------------------------------


def _sts(**spec) -> dict:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid"},
            "spec": {"serviceName": "nginx", "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}],
                                           "volumes": [{"name": "data", "emptyDir": {}},
                                                       {"name": "cfg", "configMap": {"name": "c"}}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": {"tier": "db"}},
                                               "spec": {"accessModes": ["ReadWriteOnce"],
                                                        "resources": {"requests": {"storage": "1Gi"}}}}],
                     **spec}}


def test_names_and_ordinals_round_trip() -> None:
    assert plan.pod_name("web", 3) == "web-3"
    assert plan.ordinal_of("web", "web-3") == 3
    for other in ("web", "web-", "web-x", "web-1-0", "webs-1", "web-01", "db-1"):
        assert plan.ordinal_of("web", other) is None, other
    assert plan.ordinal_of("web-1", "web-1-0") == 0
    assert plan.claim_name("data", "web", 2) == "data-web-2"


def test_new_pod_has_identity_labels_hostname_subdomain_and_claims() -> None:
    sts = _sts()
    ref = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "set-uid", "controller": True}
    pod = plan.new_pod(sts, sts["spec"]["template"], 2, "web-abc", ref)
    md = pod["metadata"]
    assert md["name"] == "web-2" and md["namespace"] == "ns" and md["ownerReferences"] == [ref]
    assert md["labels"] == {"app": "web", "statefulset.kubernetes.io/pod-name": "web-2",
                            "apps.kubernetes.io/pod-index": "2", "controller-revision-hash": "web-abc"}
    assert pod["spec"]["hostname"] == "web-2" and pod["spec"]["subdomain"] == "nginx"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-2"}}
    assert volumes["cfg"] == {"name": "cfg", "configMap": {"name": "c"}}
    assert len(pod["spec"]["volumes"]) == 2
    assert sts["spec"]["template"]["spec"]["volumes"][0] == {"name": "data", "emptyDir": {}}  # not mutated


def test_new_claim_carries_template_and_selector_labels() -> None:
    sts = _sts()
    claim = plan.new_claim(sts, plan.claim_templates(sts)[0], 1)
    assert claim["metadata"] == {"name": "data-web-1", "namespace": "ns", "labels": {"tier": "db", "app": "web"}}
    assert claim["spec"]["resources"] == {"requests": {"storage": "1Gi"}}


def test_claim_templates_skip_nameless_entries() -> None:
    assert plan.claim_templates(_sts(volumeClaimTemplates=[{"spec": {}}, "junk", {"metadata": {"name": "a"}}])) == [
        {"metadata": {"name": "a"}}]


def test_retention_policy_owners() -> None:
    assert plan.claim_owners(None, scaled_down=False) == (False, False)
    assert plan.claim_owners(None, scaled_down=True) == (False, False)
    delete_both = {"whenDeleted": "Delete", "whenScaled": "Delete"}
    assert plan.claim_owners(delete_both, scaled_down=False) == (True, False)
    assert plan.claim_owners(delete_both, scaled_down=True) == (False, True)
    assert plan.claim_owners({"whenScaled": "Delete"}, scaled_down=False) == (False, False)
    assert plan.claim_owners({"whenScaled": "Delete"}, scaled_down=True) == (False, True)
    assert plan.claim_owners({"whenDeleted": "Delete"}, scaled_down=True) == (True, False)


def test_owner_refs_swap_without_touching_foreign_refs() -> None:
    foreign = {"uid": "other", "kind": "X", "name": "x"}
    set_ref = {"uid": "set", "kind": "StatefulSet", "name": "web"}
    pod_ref = {"uid": "pod", "kind": "Pod", "name": "web-1"}
    assert plan.owner_refs([foreign, set_ref], [pod_ref], {"set"}) == [foreign, pod_ref]
    assert plan.owner_refs([foreign, pod_ref], [pod_ref], set()) == [foreign, pod_ref]


# --- properties -------------------------------------------------------------------------------------

pod_views = st.builds(
    lambda o, rev, term, fin, ready, avail: PodView(o, rev, terminating=term, finished=fin,
                                                    ready=ready or avail, available=avail),
    st.integers(0, 9), st.sampled_from([OLD, NEW]), st.booleans(), st.booleans(), st.booleans(), st.booleans())
pod_maps = st.lists(pod_views, max_size=10).map(lambda views: {v.ordinal: v for v in views})
setting_values = st.builds(
    lambda replicas, ordered, rolling, partition, mu: _set(replicas, ordered=ordered, rolling=rolling,
                                                           partition=partition, max_unavailable=mu),
    st.integers(0, 8), st.booleans(), st.booleans(), st.integers(0, 9), st.integers(1, 4))


@settings(max_examples=200, deadline=None)
@given(setting_values, pod_maps)
def test_every_plan_respects_the_ordering_rules(settings_: Settings, pods: dict[int, PodView]) -> None:
    actions = plan.plan(settings_, pods)
    want = set(plan.wanted(settings_))
    if settings_.ordered:
        assert len([a for a in actions if a.reason != "update"]) <= 1
    for action in actions:
        if action.verb == "create":
            assert action.ordinal in want and action.ordinal not in pods
            if settings_.ordered:  # everything below it exists, is available and is staying
                assert all(o in pods and pods[o].available and not pods[o].terminating
                           for o in want if o < action.ordinal)
        elif action.reason == "scale-down":
            assert action.ordinal not in want and not pods[action.ordinal].terminating
            if settings_.ordered:  # the highest condemned pod, with every wanted one available
                assert action.ordinal == max(o for o in pods if o not in want)
                assert all(o in pods and pods[o].available for o in want)
        elif action.reason == "update":
            assert settings_.rolling and action.ordinal in want
            assert action.ordinal >= settings_.partition
            assert pods[action.ordinal].revision != NEW and not pods[action.ordinal].terminating
        else:
            assert action.reason == "finished" and pods[action.ordinal].finished
    updates = [a.ordinal for a in actions if a.reason == "update"]
    assert updates == sorted(updates, reverse=True)
    unavailable = sum(1 for o in want if o not in pods or not pods[o].available or pods[o].terminating)
    assert len(updates) <= max(0, settings_.max_unavailable - unavailable)
    if updates:  # the highest outdated pods in the updatable range, none skipped
        outdated = sorted((o for o in want if o >= settings_.partition and o in pods
                           and pods[o].revision != NEW and not pods[o].terminating), reverse=True)
        assert updates == outdated[:len(updates)]


@settings(max_examples=100, deadline=None)
@given(setting_values, pod_maps, st.integers(0, 2**32))
def test_a_cluster_driven_by_the_plan_converges(settings_: Settings, pods: dict[int, PodView], seed: int) -> None:
    """Apply each plan to a simulated cluster (terminating pods go, new pods become available in a
    random order): it ends with exactly the wanted ordinals, all available, and under RollingUpdate
    those at or above the partition at the update revision. Condemned pods here are never finished
    for good: two such pods block an OrderedReady scale-down forever, as upstream (see
    test_two_unhealthy_condemned_pods_block_ordered_scale_down)."""
    want = set(plan.wanted(settings_))
    pods = {o: p if o in want else dataclasses.replace(p, finished=False) for o, p in pods.items()}
    rnd = random.Random(seed)
    for _ in range(200):
        actions = plan.plan(settings_, pods)
        if not actions and all(p.available and not p.terminating for p in pods.values()):
            break
        for action in actions:
            if action.verb == "create":
                pods[action.ordinal] = PodView(action.ordinal, action.revision)
            else:
                old = pods[action.ordinal]
                pods[action.ordinal] = PodView(old.ordinal, old.revision, terminating=True, finished=old.finished)
        # the world moves on: some terminating pods go, some pending ones become ready, at least one
        moving = [o for o, p in pods.items() if p.terminating or not (p.available or p.finished)]
        for ordinal in rnd.sample(moving, k=rnd.randint(min(1, len(moving)), len(moving))):
            if pods[ordinal].terminating:
                del pods[ordinal]
            else:
                pods[ordinal] = PodView(ordinal, pods[ordinal].revision, ready=True, available=True)
    assert set(pods) == want
    assert all(p.available for p in pods.values())
    if settings_.rolling:
        assert all(pods[o].revision == NEW for o in want if o >= settings_.partition)
