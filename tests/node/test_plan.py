"""The pod sync planner (`node/plan.py`), without Docker.

Examples pin the kubelet's rules one by one; hypothesis properties check them over generated
worlds (pods, attempts in every Docker state, backoff records), and a small simulator applies
a plan's outcome to show that planning again asks for nothing more once everything runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.node import backoff, containers, plan
from tests.node.instances import NOW, UID, WALL, instance, spec, stamp

A = plan.Action


def pod(*specs: dict[str, Any], policy: str | None = None, phase: str | None = None, deleting: bool = False,
        uid: str = UID) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "p", "namespace": "ns", "uid": uid}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    body: dict[str, Any] = {"metadata": metadata, "spec": {"containers": list(specs or [spec()])},
                            "status": {"phase": phase} if phase else {}}
    if policy:
        body["spec"]["restartPolicy"] = policy
    return body


INFRA = instance(containers.INFRA)


def ids(instances: Iterable[containers.Instance]) -> set[str]:
    return {i.id for i in instances}


def compute(the_pod: dict[str, Any] | None, instances: list[containers.Instance],
            streaks: dict[str, backoff.Streak] | None = None) -> plan.PodPlan:
    return plan.compute(the_pod, instances, streaks=streaks or {}, now=NOW, wall=WALL)


def only(p: plan.PodPlan) -> plan.ContainerPlan:
    [container] = p.containers
    return container


# --- examples: the pod as a whole --------------------------------------------------------------

def test_a_deleted_pod_leaves_only_removals():
    found = [INFRA, instance()]
    assert compute(None, found) == plan.PodPlan(remove=tuple(found))


def test_containers_of_another_pod_under_the_same_name_are_removed():
    stranger = instance(uid="old-uid")
    p = compute(pod(), [INFRA, instance(), stranger])
    assert p.remove == (stranger,) and only(p).action is A.RUNNING


def test_a_pod_being_deleted_is_terminated_and_nothing_else():
    p = compute(pod(deleting=True), [INFRA, instance()])
    assert p.terminate and not p.live and p.containers == () and p.sandbox is None


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_a_finished_pod_stops_its_sandbox_and_writes_no_status(phase):
    dead_app = instance(state="exited")
    p = compute(pod(phase=phase), [INFRA, dead_app])
    assert p.stop_sandbox == (INFRA,) and not p.live and p.containers == ()
    assert compute(pod(phase=phase), [instance(containers.INFRA, state="exited"), dead_app]).stop_sandbox == ()


def test_a_new_pod_gets_a_sandbox_first():
    p = compute(pod(), [])
    assert p.sandbox == plan.Sandbox(attempt=0, kill=(), remove=()) and p.live and p.containers == ()


def test_a_dead_sandbox_is_replaced_after_killing_what_ran_in_it():
    dead = instance(containers.INFRA, 2, "exited")
    running, exited = instance("a"), instance("b", state="exited")
    p = compute(pod(spec("a"), spec("b")), [instance(containers.INFRA, 1, "exited"), dead, running, exited])
    assert p.sandbox is not None
    assert p.sandbox.attempt == 3 and p.sandbox.kill == (running,) and len(p.sandbox.remove) == 2
    assert p.containers == () and p.garbage == ()


# --- examples: one container -------------------------------------------------------------------

def test_first_start_is_attempt_zero():
    step = only(compute(pod(), [INFRA]))
    assert step.action is A.START and step.attempt == 0 and step.latest is None


def test_running_with_the_current_definition_is_kept():
    assert only(compute(pod(), [INFRA, instance()])).action is A.RUNNING
    adopted = instance(spec_hash="")  # from before hashes were written
    assert only(compute(pod(), [INFRA, adopted])).action is A.RUNNING


def test_running_an_outdated_definition_is_stopped():
    outdated = instance(of=spec(image="img:0"))
    step = only(compute(pod(spec(image="img:1")), [INFRA, outdated]))
    assert step.action is A.STOP and step.latest == outdated


def test_created_but_never_started_is_started():
    created = instance(state="created")
    assert only(compute(pod(), [INFRA, created])).action is A.START_CREATED
    failed = instance(state="created", error="exec: no such file", exit_code=127)  # could not start: terminated
    step = only(compute(pod(), [INFRA, failed]))
    assert step.action is A.START and step.attempt == 1


@pytest.mark.parametrize(("policy", "exit_code", "restarted"), [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False), ("OnFailure", 2, True),
    ("Never", 0, False), ("Never", 1, False),
])
def test_restart_policy(policy, exit_code, restarted):
    step = only(compute(pod(policy=policy), [INFRA, instance(state="exited", exit_code=exit_code)]))
    assert step.action is (A.START if restarted else A.DONE)
    assert plan.should_restart(policy, exit_code) is restarted


def test_crash_loop_backs_off_with_the_kubelet_message():
    dead = instance("app", 3, "exited", exit_code=1, finished_ago=4.0)
    p = compute(pod(), [INFRA, dead], {"app": backoff.Streak(streak=2)})
    step = only(p)
    assert step.action is A.BACK_OFF and step.delay == 20 and step.wait == pytest.approx(16)
    assert p.requeue_after == pytest.approx(16)
    assert step.message == "back-off 20s restarting failed container=app pod=p_ns(u-1)"


def test_backoff_over_restarts_at_once():
    dead = instance("app", 3, "exited", exit_code=1, finished_ago=25.0)
    step = only(compute(pod(), [INFRA, dead], {"app": backoff.Streak(streak=2)}))
    assert step.action is A.START and step.attempt == 4


def test_a_ten_minute_run_forgives_the_streak():
    dead = instance("app", 9, "exited", exit_code=1, ran=600.0, finished_ago=0.5)
    assert only(compute(pod(), [INFRA, dead], {"app": backoff.Streak(streak=8)})).action is A.START


def test_a_container_that_never_ran_counts_from_the_last_restart():
    failed = instance("app", 1, "created", error="no such file", exit_code=127)
    streak = backoff.Streak(counted_id="x", streak=1, restarted_at=NOW - 3)
    step = only(compute(pod(), [INFRA, failed], {"app": streak}))
    assert step.action is A.BACK_OFF and step.wait == pytest.approx(7)


def test_requeue_is_the_soonest_backoff():
    dead_a = instance("a", 1, "exited", exit_code=1, finished_ago=1.0)
    dead_b = instance("b", 1, "exited", exit_code=1, finished_ago=8.0)
    streaks = {"a": backoff.Streak(streak=1), "b": backoff.Streak(streak=1)}
    assert compute(pod(spec("a"), spec("b")), [INFRA, dead_a, dead_b], streaks).requeue_after == pytest.approx(2)
    assert compute(pod(), [INFRA, instance()]).requeue_after is None


# --- examples: garbage -----------------------------------------------------------------------

def test_garbage_keeps_current_and_previous_attempts():
    attempts = [instance("app", n, "exited", exit_code=1, finished_ago=100.0 - n) for n in range(4)]
    p = compute(pod(policy="Never"), [INFRA, *attempts])
    assert p.garbage == tuple(attempts[:2]) and only(p).action is A.DONE
    restarting = compute(pod(), [INFRA, *attempts])
    step = only(restarting)
    assert step.action is A.START and step.supersedes == attempts[2] and restarting.garbage == tuple(attempts[:2])


def test_garbage_takes_old_sandboxes_and_containers_no_longer_in_the_spec():
    old_infra = instance(containers.INFRA, 0, "exited")
    infra = instance(containers.INFRA, 1)
    gone = instance("sidecar")
    p = compute(pod(), [old_infra, infra, instance(), gone])
    assert ids(p.garbage) == ids([old_infra, gone]) and p.infra == infra


def test_an_older_attempt_still_running_is_not_collected():
    slow_to_stop = instance("app", 0)
    p = compute(pod(), [INFRA, slow_to_stop, instance("app", 1, "exited"), instance("app", 2)])
    assert slow_to_stop.id not in ids(p.garbage) and only(p).action is A.RUNNING


def test_a_settled_pod():
    assert compute(pod(), [INFRA, instance()]).settled
    assert compute(pod(policy="Never"), [INFRA, instance(state="exited")]).settled
    assert not compute(pod(), [INFRA]).settled


# --- properties over generated worlds -------------------------------------------------------------

POLICIES = ("Always", "OnFailure", "Never")
LAST_STATES = ("running", "exited", "dead", "created", "created-error")


@st.composite
def worlds(draw: st.DrawFn) -> tuple[dict[str, Any], list[containers.Instance], dict[str, backoff.Streak]]:
    """A pod, what Docker holds for it (only the newest attempt of a container may run) and streaks."""
    specs = [spec(f"c{i}", image=draw(st.sampled_from(["img:1", "img:2"]))) for i in range(draw(st.integers(1, 3)))]
    the_pod = pod(*specs, policy=draw(st.sampled_from(POLICIES)))
    found: list[containers.Instance] = []
    sandboxes = draw(st.integers(0, 3))
    for n in range(sandboxes):
        last = n == sandboxes - 1
        state = draw(st.sampled_from(["running", "exited"])) if last else "exited"
        found.append(instance(containers.INFRA, n, state))
    streaks: dict[str, backoff.Streak] = {}
    for c in specs:
        count = draw(st.integers(0, 4))
        for n in range(count):
            state = draw(st.sampled_from(LAST_STATES)) if n == count - 1 else draw(st.sampled_from(["exited", "dead"]))
            error = "cannot start" if state == "created-error" else ""
            of = c if draw(st.booleans()) else {**c, "image": "img:old"}
            found.append(instance(c["name"], n, "created" if error else state, error=error, of=of,
                                  exit_code=draw(st.sampled_from([0, 1, 137])),
                                  ran=draw(st.sampled_from([0.5, 30.0, 700.0])),
                                  finished_ago=draw(st.floats(0, 400))))
        if draw(st.booleans()):
            streaks[c["name"]] = backoff.Streak(streak=draw(st.integers(0, 8)),
                                                restarted_at=NOW - draw(st.floats(0, 400)))
    if draw(st.booleans()):
        found.append(instance("c0", 0, "running", uid="stranger"))
    return the_pod, found, streaks


def _grouped(instances: list[containers.Instance]) -> dict[str, list[containers.Instance]]:
    return containers.by_container([i for i in instances if i.pod_uid == UID])


def _sandbox_runs(instances: list[containers.Instance]) -> bool:
    infra = _grouped(instances).get(containers.INFRA)
    return bool(infra) and infra[-1].running


@settings(max_examples=200)
@given(worlds())
def test_planning_is_deterministic_and_total(world):
    the_pod, found, streaks = world
    first = compute(the_pod, found, streaks)
    assert first == compute(the_pod, list(found), dict(streaks))
    assert first.remove == tuple(i for i in found if i.pod_uid != UID)
    if first.sandbox is None:
        assert [c.name for c in first.containers] == [c["name"] for c in the_pod["spec"]["containers"]]


@settings(max_examples=200)
@given(worlds())
def test_a_running_container_with_its_current_definition_is_never_touched(world):
    the_pod, found, streaks = world
    p = compute(the_pod, found, streaks)
    if not _sandbox_runs(found):
        return
    for step in p.containers:
        latest = step.latest
        if latest is not None and latest.running and latest.spec_hash == containers.spec_hash(step.spec):
            assert step.action is A.RUNNING
            assert latest not in p.garbage and latest not in p.remove


@settings(max_examples=200)
@given(worlds())
def test_restart_policy_and_backoff_decide_every_terminated_container(world):
    the_pod, found, streaks = world
    p = compute(the_pod, found, streaks)
    policy = the_pod["spec"]["restartPolicy"]
    for step in p.containers:
        latest = step.latest
        if latest is None or not latest.terminated:
            assert step.action is not A.DONE and step.action is not A.BACK_OFF
            continue
        if policy == "Never" or (policy == "OnFailure" and latest.exit_code == 0):
            assert step.action is A.DONE
            continue
        assert step.action in (A.START, A.BACK_OFF)
        record = streaks.get(step.name) or backoff.Streak()
        expected = backoff.crash_delay(backoff.effective_streak(record, latest))
        if step.action is A.BACK_OFF:
            assert step.delay == expected > 0 and 0 < step.wait <= step.delay
            assert p.requeue_after is not None and p.requeue_after <= step.wait
        else:
            assert step.attempt == latest.restarts + 1
            assert expected == 0 or backoff.crash_wait(record, latest, now=NOW, wall=WALL)[1] == 0


@settings(max_examples=200)
@given(worlds())
def test_a_missing_or_dead_sandbox_comes_first_and_kills_what_ran_in_it(world):
    the_pod, found, streaks = world
    p = compute(the_pod, found, streaks)
    if _sandbox_runs(found):
        assert p.sandbox is None and p.infra is not None and p.infra.running
        return
    assert p.sandbox is not None and p.containers == () and p.garbage == ()
    mine = [i for i in found if i.pod_uid == UID]
    assert ids(p.sandbox.kill) == ids(i for i in mine if i.running and i.name != containers.INFRA)
    assert ids(p.sandbox.remove) == ids(i for i in mine if i.name == containers.INFRA)


def _acted_on(p: plan.PodPlan) -> list[containers.Instance]:
    acted = [c.latest for c in p.containers if c.action in (A.STOP, A.START_CREATED) and c.latest is not None]
    return acted + list(p.sandbox.kill if p.sandbox else ())


@settings(max_examples=200)
@given(worlds())
def test_the_plan_never_both_acts_on_and_collects_an_instance(world):
    the_pod, found, streaks = world
    p = compute(the_pod, found, streaks)
    collected = [i.id for i in (*p.garbage, *p.remove, *(c.supersedes for c in p.containers if c.supersedes))]
    assert len(collected) == len(set(collected))
    assert not set(collected) & ids(_acted_on(p))
    assert not set(collected) & ids(c.latest for c in p.containers if c.latest is not None)
    if p.infra is not None:
        assert p.infra.id not in collected


@settings(max_examples=200)
@given(worlds())
def test_at_most_the_current_and_previous_attempts_are_kept(world):
    the_pod, found, streaks = world
    p = compute(the_pod, found, streaks)
    if p.sandbox is not None:
        return
    grouped = _grouped(found)
    gone = ids(p.garbage)
    for step in p.containers:
        left = [i for i in grouped.get(step.name) or [] if i.id not in gone and i != step.supersedes]
        if step.action is A.START:
            left.append(instance(step.name, step.attempt))  # the new attempt
        assert len(left) <= 2
        assert step.latest is None or step.latest in left
    assert [i for i in grouped[containers.INFRA] if i.id not in gone] == [p.infra]


# --- idempotence: apply the outcome, plan again ------------------------------------------------------

def _apply(p: plan.PodPlan, found: list[containers.Instance]) -> list[containers.Instance]:
    """What Docker holds after the plan was carried out, every step succeeding."""
    world = {i.id: i for i in found}
    for inst in (*p.remove, *p.garbage):
        del world[inst.id]
    if p.sandbox is not None:
        for inst in p.sandbox.kill:
            world[inst.id] = dataclasses.replace(inst, status="exited", exit_code=137, finished_raw=stamp(WALL))
        for inst in p.sandbox.remove:
            del world[inst.id]
        new = instance(containers.INFRA, p.sandbox.attempt)
        world[new.id] = new
    for step in p.containers:
        if step.action is A.STOP and step.latest is not None:
            world[step.latest.id] = dataclasses.replace(step.latest, status="exited", exit_code=143,
                                                        finished_raw=stamp(WALL))
        elif step.action is A.START_CREATED and step.latest is not None:
            world[step.latest.id] = dataclasses.replace(step.latest, status="running", started_raw=stamp(WALL))
        elif step.action is A.START:
            if step.supersedes is not None:
                del world[step.supersedes.id]
            new = instance(step.name, step.attempt, of=step.spec)
            world[new.id] = new
    return list(world.values())


@settings(max_examples=200)
@given(worlds())
def test_once_the_outcome_is_applied_planning_again_asks_for_nothing(world):
    the_pod, found, _ = world
    current = compute(the_pod, found)  # no crash backoff: every restart is due now
    for _ in range(4):  # sandbox, then stops, then starts: each round is planned on what the last left
        if current.settled:
            break
        found = _apply(current, found)
        current = compute(the_pod, found)
    assert current.settled, current
    assert compute(the_pod, found) == current
    policy = the_pod["spec"]["restartPolicy"]
    for step in current.containers:
        assert step.latest is not None
        if policy == "Always":
            assert step.action is A.RUNNING and step.latest.spec_hash == containers.spec_hash(step.spec)


# --- initContainers ------------------------------------------------------------------------------

def _with_init(*names: str, policy: str | None = None) -> dict[str, Any]:
    body = pod(policy=policy)
    body["spec"]["initContainers"] = [spec(n) for n in names]
    return body


def test_init_containers_run_in_order_before_the_app():
    p = compute(_with_init("first", "second"), [INFRA])
    assert not p.initialized and p.containers == ()
    assert [(c.name, c.action) for c in p.init] == [("first", A.START)]
    running = compute(_with_init("first", "second"), [INFRA, instance("first")])
    assert [(c.name, c.action) for c in running.init] == [("first", A.RUNNING)] and running.containers == ()
    first_done = instance("first", state="exited", exit_code=0)
    after = compute(_with_init("first", "second"), [INFRA, first_done])
    assert [(c.name, c.action) for c in after.init] == [("first", A.DONE), ("second", A.START)]
    both = [INFRA, first_done, instance("second", state="exited", exit_code=0)]
    ready = compute(_with_init("first", "second"), both)
    assert ready.initialized and [c.action for c in ready.containers] == [A.START]
    assert not ids(ready.garbage) & ids(both)  # finished init containers are kept, not collected


def test_failed_init_container_restarts_unless_never():
    failed = [INFRA, instance("first", state="exited", exit_code=1, finished_ago=600)]
    again = compute(_with_init("first"), failed)
    assert [c.action for c in again.init] == [A.START] and not again.init_failed
    never = compute(_with_init("first", policy="Never"), failed)
    assert [c.action for c in never.init] == [A.DONE] and never.init_failed and never.containers == ()
