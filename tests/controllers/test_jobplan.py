"""jobplan: the Job controller's pure decisions (no API server): pods created up to parallelism while
completions remain, counts from pod phases, SuccessCriteriaMet then Complete, FailureTarget then
Failed (backoffLimit, activeDeadlineSeconds), suspend, Indexed completions, the failure backoff, and
each finished pod counted once across record -> untrack -> count."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from reconcile.controllers import jobplan as plan
from reconcile.controllers.jobplan import PodView, Settings

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
STAMP = "2026-01-01T12:00:00Z"


def _settled(pods: list[PodView], step: plan.Plan) -> list[PodView]:
    """The pods once the controller removed the tracking finalizers the plan named."""
    return [dataclasses.replace(p, tracked=False) if p.name in step.untrack else p for p in pods]


def _types(status: dict) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c.get("reason", "")) for c in status.get("conditions", [])]


def test_a_new_job_creates_up_to_parallelism_while_completions_remain() -> None:
    first = plan.plan(Settings(parallelism=2, completions=5), [], {}, NOW)
    assert first.create == [None, None]
    assert first.status == {"startTime": STAMP, "active": 2, "ready": 0, "terminating": 0,
                            "uncountedTerminatedPods": {}}
    pods = [PodView("a", "Succeeded"), PodView("b", "Succeeded"), PodView("c", "Succeeded"),
            PodView("d", "Running", ready=True)]
    later = plan.plan(Settings(parallelism=2, completions=5), pods, first.status, NOW)
    assert later.record is not None and later.record["uncountedTerminatedPods"] == {"succeeded": ["a", "b", "c"]}
    assert later.record.get("succeeded") is None and sorted(later.untrack) == ["a", "b", "c"]
    assert later.create == [None] and later.delete == []  # 3 done, 1 running: one more for the last
    assert (later.status["succeeded"], later.status["active"], later.status["ready"]) == (3, 2, 1)


def test_success_writes_success_criteria_met_then_complete_with_completion_time() -> None:
    pods = [PodView("a", "Succeeded")]
    step = plan.plan(Settings(), pods, {"startTime": "2026-01-01T11:59:00Z"}, NOW)
    assert _types(step.status) == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                                   ("Complete", "True", "CompletionsReached")]
    assert step.status["completionTime"] == STAMP and step.status["succeeded"] == 1
    assert step.status["conditions"][1]["message"] == "Reached expected number of succeeded pods"
    assert ("Normal", "Completed", "Job completed") in step.events
    again = plan.plan(Settings(), _settled(pods, step), step.status, NOW + timedelta(seconds=5))
    assert again.status == step.status and again.create == []  # finished: nothing moves


def test_extra_pods_are_stopped_before_complete() -> None:
    pods = [PodView("a", "Succeeded"), PodView("b", "Succeeded"), PodView("c", "Running")]
    step = plan.plan(Settings(parallelism=3, completions=2), pods, {"startTime": STAMP}, NOW)
    assert step.delete == ["c"] and _types(step.status) == [("SuccessCriteriaMet", "True", "CompletionsReached")]
    assert "completionTime" not in step.status and step.status["terminating"] == 1
    gone = plan.plan(Settings(parallelism=3, completions=2), _settled(pods[:2], step), step.status, NOW)
    assert [t for t, _, _ in _types(gone.status)] == ["SuccessCriteriaMet", "Complete"]


def test_without_completions_the_first_success_stops_new_pods_and_the_rest_finish() -> None:
    pods = [PodView("a", "Succeeded"), PodView("b", "Running")]
    step = plan.plan(Settings(parallelism=3, completions=None), pods, {"startTime": STAMP}, NOW)
    assert step.create == [] and step.delete == [] and "conditions" not in step.status
    done = plan.plan(Settings(parallelism=3, completions=None), [_settled(pods, step)[0], PodView("b", "Succeeded")],
                     step.status, NOW)
    assert done.status["succeeded"] == 2
    assert [t for t, _, _ in _types(done.status)] == ["SuccessCriteriaMet", "Complete"]


def test_backoff_limit_exceeded_fails_the_job() -> None:
    pods = [PodView("a", "Failed"), PodView("b", "Failed"), PodView("c", "Running")]
    step = plan.plan(Settings(parallelism=3, completions=3, backoff_limit=1), pods, {"startTime": STAMP}, NOW)
    assert step.delete == ["c"] and _types(step.status) == [("FailureTarget", "True", "BackoffLimitExceeded")]
    done = plan.plan(Settings(parallelism=3, completions=3, backoff_limit=1), _settled(pods[:2], step), step.status,
                     NOW)
    assert _types(done.status)[-1] == ("Failed", "True", "BackoffLimitExceeded")
    assert done.status["conditions"][-1]["message"] == "Job has reached the specified backoff limit"
    assert done.status["failed"] == 2 and "completionTime" not in done.status


def test_restarts_in_place_count_toward_the_backoff_limit_with_on_failure() -> None:
    pods = [PodView("a", "Running", restarts=3)]
    assert "conditions" not in plan.plan(Settings(backoff_limit=2), pods, {"startTime": STAMP}, NOW).status
    step = plan.plan(Settings(backoff_limit=2, restart_on_failure=True), pods, {"startTime": STAMP}, NOW)
    assert step.delete == ["a"] and _types(step.status) == [("FailureTarget", "True", "BackoffLimitExceeded")]


def test_failed_pods_are_replaced_after_the_backoff() -> None:
    failed = PodView("a", "Failed", finished_at=NOW.timestamp() - 4)
    waiting = plan.plan(Settings(backoff_limit=6), [failed], {"startTime": STAMP}, NOW)
    assert waiting.create == [] and 5.9 < (waiting.requeue_after or 0) <= 6.0
    assert plan.plan(Settings(backoff_limit=6), [failed], {"startTime": STAMP}, NOW + timedelta(seconds=7)).create \
        == [None]
    assert plan.backoff_remaining(Settings(), 4, [failed], NOW.timestamp()) == 80 - 4  # 10 s * 2^3
    assert plan.backoff_remaining(Settings(), 40, [failed], NOW.timestamp()) == plan.BACKOFF_MAX - 4


def test_active_deadline_fails_the_job_and_stops_its_pods() -> None:
    settings = Settings(active_deadline=30)
    early = plan.plan(settings, [PodView("a", "Running")], {"startTime": "2026-01-01T11:59:50Z"}, NOW)
    assert early.requeue_after == 20 and "conditions" not in early.status
    late = plan.plan(settings, [PodView("a", "Running")], {"startTime": "2026-01-01T11:59:00Z"}, NOW)
    assert late.delete == ["a"] and _types(late.status) == [("FailureTarget", "True", "DeadlineExceeded")]
    assert ("Warning", "DeadlineExceeded", "Job was active longer than specified deadline") in late.events


def test_suspend_deletes_active_pods_and_resume_restarts_the_clock() -> None:
    pods = [PodView("a", "Running"), PodView("b", "Succeeded")]
    step = plan.plan(Settings(parallelism=2, completions=4, suspend=True), pods, {"startTime": STAMP}, NOW)
    assert step.delete == ["a"] and step.create == [] and "startTime" not in step.status
    assert _types(step.status) == [("Suspended", "True", "JobSuspended")]
    resumed = plan.plan(Settings(parallelism=2, completions=4), _settled([pods[1]], step), step.status,
                        NOW + timedelta(minutes=1))
    assert resumed.create == [None, None] and resumed.status["startTime"] == "2026-01-01T12:01:00Z"
    assert _types(resumed.status) == [("Suspended", "False", "JobResumed")]


def test_indexed_jobs_run_each_missing_index_once_lowest_first() -> None:
    settings = Settings(parallelism=2, completions=4, indexed=True)
    assert plan.plan(settings, [], {}, NOW).create == [0, 1]
    pods = [PodView("j-0", "Succeeded", index=0), PodView("j-1", "Running", index=1),
            PodView("j-1b", "Running", index=1), PodView("j-9", "Running", index=9)]
    step = plan.plan(settings, pods, {"startTime": STAMP}, NOW)
    assert sorted(step.delete) == ["j-1b", "j-9"] and step.create == [2]
    assert step.status["completedIndexes"] == "0"
    done = [PodView(f"j-{i}", "Succeeded", index=i) for i in range(4)]
    final = plan.plan(settings, done, {**step.status, "succeeded": 1}, NOW)
    assert final.status["completedIndexes"] == "0-3" and final.status["succeeded"] == 4
    assert [t for t, _, _ in _types(final.status)] == ["SuccessCriteriaMet", "Complete"]


def test_counts_never_go_down_when_finished_pods_are_deleted() -> None:
    step = plan.plan(Settings(completions=3, parallelism=1), [], {"startTime": STAMP, "succeeded": 2, "failed": 1},
                     NOW)
    assert step.create == [None] and (step.status["succeeded"], step.status["failed"]) == (2, 1)


def test_each_finished_pod_is_counted_once_across_the_three_steps() -> None:
    pods = [PodView("a", "Succeeded", uid="ua"), PodView("b", "Failed", uid="ub"),
            PodView("c", "Running", uid="uc", deleting=True)]  # deleted while running: a failure
    settings = Settings(completions=3, parallelism=3)
    step = plan.plan(settings, pods, {"startTime": STAMP}, NOW)
    assert step.record is not None
    assert step.record["uncountedTerminatedPods"] == {"succeeded": ["ua"], "failed": ["ub", "uc"]}
    assert sorted(step.untrack) == ["a", "b", "c"]
    assert (step.status["succeeded"], step.status["failed"], step.status["uncountedTerminatedPods"]) == (1, 2, {})
    # crashed after recording, before untracking: the same counts, nothing recorded twice
    again = plan.plan(settings, pods, step.record, NOW)
    assert again.record is None and sorted(again.untrack) == ["a", "b", "c"]
    assert (again.status["succeeded"], again.status["failed"]) == (1, 2)
    # untracked and counted: the pods gone, the counts stay
    assert (plan.plan(settings, [], step.status, NOW).status["succeeded"],
            plan.plan(settings, [], step.status, NOW).status["failed"]) == (1, 2)
    untracked = plan.plan(settings, [dataclasses.replace(p, tracked=False) for p in pods], step.status, NOW)
    assert (untracked.status["succeeded"], untracked.status["failed"], untracked.untrack) == (1, 2, [])


def test_replace_only_failed_waits_for_terminating_pods() -> None:
    pods = [PodView("a", "Running", deleting=True)]
    assert plan.plan(Settings(), pods, {"startTime": STAMP}, NOW).create == [None]
    held = plan.plan(Settings(replace_only_failed=True), pods, {"startTime": STAMP}, NOW)
    assert held.create == [] and held.status["terminating"] == 1


def test_ttl_counts_from_the_finish_time() -> None:
    job = {"spec": {"ttlSecondsAfterFinished": 60},
           "status": {"completionTime": "2026-01-01T11:59:30Z",
                      "conditions": [{"type": "Complete", "status": "True"}]}}
    assert plan.ttl_remaining(job, NOW) == 30
    assert plan.ttl_remaining({"spec": {"ttlSecondsAfterFinished": 60}, "status": {}}, NOW) is None
    failed = {"spec": {"ttlSecondsAfterFinished": 0},
              "status": {"conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": STAMP}]}}
    assert plan.ttl_remaining(failed, NOW) == 0


@given(st.sets(st.integers(min_value=0, max_value=40)))
def test_completed_indexes_round_trip(indexes: set[int]) -> None:
    text = plan.format_indexes(indexes)
    assert plan.parse_indexes(text, 41) == indexes
    assert ",," not in text


@given(st.integers(1, 6), st.integers(1, 10), st.lists(st.sampled_from(["Running", "Succeeded", "Pending"]),
                                                          max_size=12))
def test_never_more_active_than_parallelism_nor_than_completions_left(parallelism: int, completions: int,
                                                                      phases: list[str]) -> None:
    pods = [PodView(f"p{i}", phase) for i, phase in enumerate(phases)]
    step = plan.plan(Settings(parallelism=parallelism, completions=completions), pods, {"startTime": STAMP}, NOW)
    running = sum(1 for p in pods if p.active) - len(step.delete) + len(step.create)
    succeeded = sum(1 for p in pods if p.phase == "Succeeded")
    if succeeded < completions:
        assert running <= min(parallelism, completions - succeeded)
        assert step.create == [] or running == min(parallelism, completions - succeeded)
    else:
        assert running == 0
