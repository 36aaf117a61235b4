"""Pure pieces of the controllers: fenceposts, hashes, expectations, deletion order, conditions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.controllers import batching, expectations, nodelifecycle, podutil, rollout
from reconcile.engine import clock as clock_mod


def _deploy(replicas: int, rolling: dict | None = None, strategy: str = "RollingUpdate") -> dict:
    spec: dict = {"replicas": replicas, "strategy": {"type": strategy}}
    if rolling is not None:
        spec["strategy"]["rollingUpdate"] = rolling
    return {"metadata": {"name": "d", "generation": 1}, "spec": spec}


def test_fenceposts_round_like_kubernetes() -> None:
    assert rollout.fenceposts(_deploy(10)) == (3, 2)  # 25%: surge up (2.5 -> 3), unavailable down
    assert rollout.fenceposts(_deploy(1)) == (1, 0)
    assert rollout.fenceposts(_deploy(10, {"maxSurge": 1, "maxUnavailable": 1})) == (1, 1)
    assert rollout.fenceposts(_deploy(10, {"maxSurge": "0%", "maxUnavailable": 0})) == (0, 1)  # both 0: 1
    assert rollout.max_unavailable(_deploy(3, {"maxSurge": 1, "maxUnavailable": 5})) == 3
    assert rollout.max_surge(_deploy(3, strategy="Recreate")) == 0
    assert rollout.max_unavailable(_deploy(0)) == 0


def test_template_hash_is_stable_and_ignores_the_hash_label() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    h = rollout.template_hash(template)
    assert h == rollout.template_hash({**template, "metadata": {"labels": {"app": "web", "pod-template-hash": h},
                                                                "creationTimestamp": None}})
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 6 <= len(h) <= 10
    assert rollout.template_hash(template, 1) != h
    other = {**template, "spec": {"containers": [{"name": "c", "image": "y"}]}}
    assert rollout.template_hash(other) != h
    assert rollout.same_template(template, {**template, "metadata": {"labels": {"app": "web", "pod-template-hash": h}}})


def test_new_replica_set_size_respects_surge() -> None:
    d = _deploy(10, {"maxSurge": 1, "maxUnavailable": 1})
    old = {"metadata": {"uid": "o"}, "spec": {"replicas": 10}, "status": {"replicas": 10}}
    new = {"metadata": {"uid": "n"}, "spec": {"replicas": 0}, "status": {}}
    assert rollout.new_rs_replicas(d, [old, new], new) == 1
    # the old RS's spec went down but its pods are still there: no extra surge
    old_shrinking = {"metadata": {"uid": "o"}, "spec": {"replicas": 9}, "status": {"replicas": 10}}
    new1 = {"metadata": {"uid": "n"}, "spec": {"replicas": 1}, "status": {}}
    assert rollout.new_rs_replicas(d, [old_shrinking, new1], new1) == 1


def test_expectations_block_until_observed_or_expired() -> None:
    clock = clock_mod.FakeClock()
    exp = expectations.Expectations(clock=clock, ttl=300)
    assert exp.satisfied("k")
    exp.expect_creations("k", 2)
    assert not exp.satisfied("k")
    exp.creation_observed("k")
    assert not exp.satisfied("k")
    exp.creation_observed("k")
    assert exp.satisfied("k")
    exp.expect_deletions("k", ["a", "b"])
    exp.deletion_observed("k", "a")
    exp.deletion_observed("k", "a")  # seen twice (cache and API): counted once
    assert not exp.satisfied("k")
    clock.advance(301)
    assert exp.satisfied("k")


def _pod(name: str, *, node: str = "", phase: str = "Running", ready_at: str | None = None,
         created: str = "2026-01-01T00:00:00Z") -> dict:
    conditions = [{"type": "Ready", "status": "True", "lastTransitionTime": ready_at}] if ready_at else []
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": conditions}}


def test_deletion_order_prefers_unscheduled_then_not_ready_then_newest() -> None:
    pods = [
        _pod("old-ready", node="n", ready_at="2026-01-01T00:00:00Z"),
        _pod("new-ready", node="n", ready_at="2026-01-01T00:05:00Z"),
        _pod("not-ready", node="n"),
        _pod("unscheduled", phase="Pending"),
        _pod("newer-not-ready", node="n", created="2026-01-02T00:00:00Z"),
    ]
    order = [p["metadata"]["name"] for p in sorted(pods, key=podutil.deletion_rank)]
    assert order == ["unscheduled", "newer-not-ready", "not-ready", "new-ready", "old-ready"]


def test_available_honours_min_ready_seconds() -> None:
    now = datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
    pod = _pod("p", ready_at="2026-01-01T00:00:00Z")
    assert podutil.available_in(pod, 0, now) == 0
    assert podutil.available_in(pod, 5, now) == 0
    assert podutil.available_in(pod, 30, now) == 20
    assert podutil.available_in(_pod("q"), 0, now) is None


def test_progressing_condition_keeps_transition_time() -> None:
    t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    status: dict = {}
    rollout.set_condition(status, rollout.new_condition("Progressing", "True", rollout.NEW_RS_CREATED, "m", t0))
    rollout.set_condition(status, rollout.new_condition("Progressing", "True", rollout.RS_UPDATED, "m", t1))
    cond = rollout.condition(status, "Progressing")
    assert cond["reason"] == rollout.RS_UPDATED and cond["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert cond["lastUpdateTime"] == "2026-01-01T00:01:00Z"
    d = {"metadata": {"generation": 1}, "spec": {"progressDeadlineSeconds": 30}}
    assert not rollout.timed_out(d, status, t1)
    assert rollout.timed_out(d, status, datetime(2026, 1, 1, 0, 2, tzinfo=UTC))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["phase", "conditions", "type", "status", "lastTransitionTime", "containerStatuses", "restartCount",
         "nodeName", "tolerations", "key", "operator", "effect", "tolerationSeconds", "x"]), inner, max_size=4),
    max_leaves=15,
)


@settings(max_examples=300)
@given(status=_JSON, spec=_JSON)
def test_pod_facts_read_any_shape_without_raising(status: object, spec: object) -> None:
    """A pod stored with wrong types must count as not ready, not fail the ReplicaSet that owns it."""
    pod = {"metadata": {"name": "p", "namespace": "n", "creationTimestamp": "2026-01-01T00:00:00Z"},
           "status": status, "spec": spec}
    podutil.is_active(pod)
    ready = podutil.is_ready(pod)
    assert podutil.available_in(pod, 5, datetime(2026, 1, 2, tzinfo=UTC)) is None or ready
    sorted([pod, {"metadata": {"name": "q"}}], key=podutil.deletion_rank)
    taints = [{"key": nodelifecycle.UNREACHABLE, "effect": "NoExecute"}]
    seconds = nodelifecycle.toleration_seconds(pod, taints, default=300.0)
    assert seconds is None or seconds >= 0


@given(count=st.integers(0, 5000), initial=st.integers(1, 8))
def test_slow_start_batches_double_and_add_up(count: int, initial: int) -> None:
    sizes = list(batching.batch_sizes(count, initial=initial))
    assert sum(sizes) == count and all(s > 0 for s in sizes)
    if sizes:
        assert sizes[0] == min(count, initial)
        assert all(b <= 2 * a for a, b in zip(sizes, sizes[1:], strict=False))
        assert all(b == 2 * a for a, b in zip(sizes, sizes[1:-1], strict=False))  # only the last is cut short
        assert len(sizes) <= max(1, count).bit_length() + 1


def test_slow_start_batches_of_a_default_burst() -> None:
    assert list(batching.batch_sizes(batching.per_sync(10**12))) == [1, 2, 4, 8, 16, 32, 64, 128, 245]
    assert batching.per_sync(3) == 3 and batching.per_sync(-4) == 0 and batching.per_sync(900, burst=20) == 20


@settings(max_examples=100)
@given(count=st.integers(1, 300), fail_at=st.integers(1, 400))
async def test_slow_start_stops_after_the_batch_with_the_first_failure(count: int, fail_at: int) -> None:
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        if calls == fail_at:
            raise RuntimeError("rejected")

    done, error = await batching.slow_start(count, call)
    if fail_at > count:
        assert (done, error, calls) == (count, None, count)
        return
    # every batch up to and including the one holding the failing call ran; nothing after it
    ran = 0
    for size in batching.batch_sizes(count):
        ran += size
        if ran >= fail_at:
            break
    assert calls == ran and done == ran - 1 and isinstance(error, RuntimeError)


_TEMPLATE = {"metadata": {"labels": {"app": "web"}},
             "spec": {"containers": [{"name": "main", "image": "nginx:1"}], "restartPolicy": "Always",
                      "volumes": [{"name": "scratch", "emptyDir": {}}]}}


def _through_a_typed_client(template: dict) -> dict:
    """What `kubectl rollout undo` sends back: Go's encoding adds null timestamps and empty resources."""
    out = json.loads(json.dumps(template))
    out.setdefault("metadata", {})["creationTimestamp"] = None
    for container in out["spec"]["containers"]:
        container.setdefault("resources", {})
    out["spec"].setdefault("securityContext", {})
    return out


def test_templates_equal_but_for_defaulted_empty_fields_are_one_revision() -> None:
    echoed = _through_a_typed_client(_TEMPLATE)
    assert rollout.same_template(_TEMPLATE, echoed)
    assert rollout.template_hash(_TEMPLATE) == rollout.template_hash(echoed)
    hashed = {**echoed, "metadata": {**echoed["metadata"], "labels": {"app": "web", "pod-template-hash": "x"}}}
    assert rollout.same_template(_TEMPLATE, hashed)
    # what selects behaviour still counts: an image, a volume's empty source, a resource request
    changed = json.loads(json.dumps(_TEMPLATE))
    changed["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1"}}
    assert not rollout.same_template(_TEMPLATE, changed)
    no_source = json.loads(json.dumps(_TEMPLATE))
    no_source["spec"]["volumes"] = [{"name": "scratch"}]
    assert not rollout.same_template(_TEMPLATE, no_source)
    assert rollout.template_hash(no_source) != rollout.template_hash(_TEMPLATE)


_EMPTY = st.sampled_from([None, {}, []])


@settings(max_examples=200)
@given(extra=st.dictionaries(st.sampled_from(["resources", "securityContext", "env", "args", "ports", "x"]), _EMPTY,
                             max_size=4),
       pod_extra=st.dictionaries(st.sampled_from(["nodeSelector", "tolerations", "affinity", "securityContext"]),
                                 _EMPTY, max_size=4))
def test_empty_or_null_fields_never_make_a_new_revision(extra: dict, pod_extra: dict) -> None:
    echoed = json.loads(json.dumps(_TEMPLATE))
    echoed["spec"]["containers"][0].update(extra)
    echoed["spec"].update(pod_extra)
    assert rollout.same_template(_TEMPLATE, echoed)
    assert rollout.template_hash(echoed) == rollout.template_hash(_TEMPLATE)


def test_revision_history_keeps_the_revisions_a_reused_replicaset_held() -> None:
    assert rollout.revision_history(None, "1") == "1"
    assert rollout.revision_history("1", "3") == "1,3"
    long = ",".join(str(i) for i in range(1000, 1500))  # 2499 characters
    trimmed = rollout.revision_history(long, "9999")
    assert trimmed is not None and trimmed.endswith(",9999") and len(trimmed) <= rollout.MAX_REVISION_HISTORY_CHARS
    assert rollout.revision_history(None, "9" * 2001) is None
