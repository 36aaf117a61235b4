"""cronjobplan: the CronJob controller's pure decisions, at any `now` (no minute waited): the Job of
the most recent schedule time, missed times and startingDeadlineSeconds, concurrencyPolicy, suspend,
history limits, time zones and the active list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from reconcile.controllers import cronjobplan as plan

CREATED = "2026-01-01T10:00:30Z"


def _cj(schedule: str = "*/5 * * * *", status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "ns", "uid": "cj-uid", "creationTimestamp": CREATED},
            "spec": {"schedule": schedule, "concurrencyPolicy": "Allow", "suspend": False,
                     "jobTemplate": {"metadata": {"labels": {"team": "a"}},
                                     "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "b"}],
                                                                    "restartPolicy": "Never"}}}}, **spec},
            "status": status or {}}


def _job(name: str, outcome: str | None = None, start: str = "2026-01-01T10:05:00Z", uid: str | None = None,
         completion: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": start}
    if outcome:
        status["conditions"] = [{"type": outcome, "status": "True"}]
    if completion:
        status["completionTime"] = completion
    return {"metadata": {"name": name, "uid": uid or f"uid-{name}", "creationTimestamp": start}, "status": status}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_job_of_the_schedule_time_is_named_by_its_minutes_since_the_epoch() -> None:
    step = plan.plan(_cj(), [], _at("2026-01-01T10:05:07Z"))
    scheduled = _at("2026-01-01T10:05:00Z")
    assert step.create is not None
    assert step.create["metadata"]["name"] == f"tick-{int(scheduled.timestamp()) // 60}"
    assert step.create["metadata"]["annotations"] == {plan.SCHEDULED_TIMESTAMP: "2026-01-01T10:05:00Z"}
    assert step.create["metadata"]["labels"] == {"team": "a"}
    assert step.create["metadata"]["ownerReferences"][0] | {"controller": True} == {
        "apiVersion": "batch/v1", "kind": "CronJob", "name": "tick", "uid": "cj-uid", "controller": True,
        "blockOwnerDeletion": True}
    assert step.create["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert step.status["lastScheduleTime"] == "2026-01-01T10:05:00Z"
    assert step.requeue_after == 293  # 10:10:00


def test_before_the_first_time_nothing_runs_and_the_next_time_is_the_wait() -> None:
    step = plan.plan(_cj(), [], _at("2026-01-01T10:04:00Z"))
    assert step.create is None and step.requeue_after == 60 and step.status == {}


def test_missed_times_run_once_the_most_recent() -> None:
    step = plan.plan(_cj(), [], _at("2026-01-01T10:31:00Z"))
    assert step.status["lastScheduleTime"] == "2026-01-01T10:30:00Z"
    assert not any(reason == "TooManyMissedTimes" for _, reason, _ in step.events)
    far = plan.plan(_cj("* * * * *"), [], _at("2026-01-02T10:31:30Z"))
    assert far.status["lastScheduleTime"] == "2026-01-02T10:31:00Z"
    assert any(reason == "TooManyMissedTimes" for _, reason, _ in far.events)


def test_starting_deadline_skips_a_time_too_late_to_start() -> None:
    late = plan.plan(_cj(startingDeadlineSeconds=30), [], _at("2026-01-01T10:06:00Z"))
    assert late.create is None and late.requeue_after == 240
    on_time = plan.plan(_cj(startingDeadlineSeconds=90), [], _at("2026-01-01T10:06:00Z"))
    assert on_time.create is not None
    # the deadline also bounds how far back missed times are counted: no TooManyMissedTimes
    far = plan.plan(_cj("* * * * *", startingDeadlineSeconds=120), [], _at("2026-03-01T00:00:30Z"))
    assert far.create is not None and not any(r == "TooManyMissedTimes" for _, r, _ in far.events)


def test_a_time_that_already_ran_is_not_run_again() -> None:
    now = _at("2026-01-01T10:05:07Z")
    name = plan.job_name("tick", _at("2026-01-01T10:05:00Z"))
    assert plan.plan(_cj(), [_job(name)], now).create is None


def test_concurrency_policies() -> None:
    running = _job("tick-old", uid="old")
    status = {"active": [{"name": "tick-old", "uid": "old"}], "lastScheduleTime": "2026-01-01T10:00:00Z"}
    now = _at("2026-01-01T10:05:01Z")
    allow = plan.plan(_cj(status=status), [running], now)
    assert allow.create is not None and allow.status["active"] == status["active"] and allow.delete == []
    forbid = plan.plan(_cj(status=status, concurrencyPolicy="Forbid"), [running], now)
    assert forbid.create is None and forbid.status["active"] == status["active"]
    assert any(r == "JobAlreadyActive" for _, r, _ in forbid.events)
    replace = plan.plan(_cj(status=status, concurrencyPolicy="Replace"), [running], now)
    assert replace.create is not None and replace.delete == ["tick-old"] and "active" not in replace.status


def test_suspend_creates_nothing() -> None:
    assert plan.plan(_cj(suspend=True), [], _at("2026-01-01T10:05:07Z")).create is None


def test_finished_jobs_leave_the_active_list_and_set_last_successful_time() -> None:
    done = _job("tick-a", "Complete", uid="a", completion="2026-01-01T10:06:00Z")
    status = {"active": [{"name": "tick-a", "uid": "a"}, {"name": "tick-gone", "uid": "gone"}]}
    step = plan.plan(_cj(status=status), [done], _at("2026-01-01T10:07:00Z"))
    assert "active" not in step.status and step.status["lastSuccessfulTime"] == "2026-01-01T10:06:00Z"
    reasons = {r for _, r, _ in step.events}
    assert {"SawCompletedJob", "MissingJob"} <= reasons


def test_history_limits_delete_the_oldest_finished_jobs() -> None:
    jobs = [_job(f"ok-{i}", "Complete", start=f"2026-01-01T10:0{i}:00Z") for i in range(5)] + \
        [_job(f"bad-{i}", "Failed", start=f"2026-01-01T10:0{i}:00Z") for i in range(3)] + [_job("running")]
    assert plan.history_to_delete({}, jobs) == ["ok-0", "ok-1", "bad-0", "bad-1"]
    assert plan.history_to_delete({"successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 3}, jobs) == [
        f"ok-{i}" for i in range(5)]


def test_time_zones_shift_the_schedule_and_the_annotation() -> None:
    # 09:00 in Paris is 08:00 UTC in winter
    step = plan.plan(_cj("0 9 * * *", timeZone="Europe/Paris"), [], _at("2026-01-02T08:00:10Z"))
    assert step.status["lastScheduleTime"] == "2026-01-02T08:00:00Z"
    assert step.create is not None
    assert step.create["metadata"]["annotations"][plan.SCHEDULED_TIMESTAMP] == "2026-01-02T09:00:00+01:00"


def test_a_bad_time_zone_or_schedule_stored_anyway_is_an_event_not_a_crash() -> None:
    step = plan.plan(_cj(timeZone="Nowhere/Land"), [], _at("2026-01-01T10:05:07Z"))
    assert step.create is None and any(r == "UnknownTimeZone" for _, r, _ in step.events)
    step = plan.plan(_cj("nope"), [], _at("2026-01-01T10:05:07Z"))
    assert step.create is None and any(r == "UnparseableSchedule" for _, r, _ in step.events)


def test_most_recent_counts_missed_times() -> None:
    latest, count, following = plan.most_recent("0 * * * *", UTC, _at("2026-01-01T00:30:00Z"),
                                                _at("2026-01-01T03:10:00Z"))
    assert (latest, count, following) == (_at("2026-01-01T03:00:00Z"), 3, _at("2026-01-01T04:00:00Z"))
    assert plan.most_recent("0 0 30 2 *", UTC, _at("2026-01-01T00:00:00Z"),
                            _at("2026-01-01T00:00:00Z") + timedelta(days=1)) == (None, 0, None)
