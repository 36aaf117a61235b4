"""The pure decisions of the CronJob controller (upstream pkg/controller/cronjob, its v2 controller).

No I/O and no clock of its own: given a CronJob, the Jobs it controls and `now`, `plan` says which
Job to create (named `<cronjob>-<scheduled minutes since the epoch>`, so a schedule time is run at
most once whatever happens to the controller), which Jobs to delete (concurrencyPolicy Replace,
then the history limits), the status to write and when the next schedule time comes. Missed
times: only the most recent one since lastScheduleTime (or creation) is run, and not at all if
startingDeadlineSeconds has passed since it; more than 100 missed times gets a warning, as upstream.
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field
from typing import Any

from reconcile.core import cronschedule, meta

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MAX_MISSED = 100


@dataclass
class Plan:
    create: dict[str, Any] | None = None  # the Job to create
    delete: list[str] = field(default_factory=list)  # Job names to delete (Background)
    status: dict[str, Any] = field(default_factory=dict)
    requeue_after: float | None = None  # seconds until the next schedule time
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


def _time(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return meta.parse_time(value)
    except ValueError:
        return None


def finished_as(job: dict[str, Any]) -> str | None:
    """"Complete" or "Failed" once a Job has finished, else None."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


def job_name(cronjob_name: str, scheduled: datetime.datetime) -> str:
    """Upstream getJobName: the scheduled time in minutes since the epoch."""
    return f"{cronjob_name}-{int(scheduled.timestamp()) // 60}"


def most_recent(schedule: str, tz: datetime.tzinfo, earliest: datetime.datetime,
                now: datetime.datetime) -> tuple[datetime.datetime | None, int, datetime.datetime | None]:
    """(the latest schedule time in (earliest, now], how many there were (counting stops past
    MAX_MISSED + 1), the first schedule time after now)."""
    latest: datetime.datetime | None = None
    count = 0
    for when in cronschedule.times_after(schedule, tz, earliest):
        if when > now:
            return latest, count, when
        latest, count = when, count + 1
        if count > MAX_MISSED:  # stop walking (a minutely schedule a year behind); jump to now
            tail_latest, _, following = most_recent(schedule, tz, now - datetime.timedelta(minutes=1), now)
            return tail_latest or latest, count, following
    return latest, count, None


def job_from_template(cronjob: dict[str, Any], scheduled: datetime.datetime, tz: datetime.tzinfo) -> dict[str, Any]:
    """Upstream getJobFromTemplate2: the template's labels and annotations, the scheduled time
    annotation (RFC 3339 in the CronJob's zone), the CronJob as controller."""
    template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    local = scheduled.astimezone(tz)
    annotations[SCHEDULED_TIMESTAMP] = local.isoformat().replace("+00:00", "Z") if local.utcoffset() == \
        datetime.timedelta(0) else local.isoformat()
    md = cronjob["metadata"]
    metadata: dict[str, Any] = {
        "name": job_name(md["name"], scheduled), "namespace": md.get("namespace"),
        "annotations": annotations,
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": md["name"], "uid": md["uid"],
                             "controller": True, "blockOwnerDeletion": True}],
    }
    if tmeta.get("labels"):
        metadata["labels"] = dict(tmeta["labels"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata,
            "spec": copy.deepcopy(template.get("spec") or {})}


def reference(job: dict[str, Any]) -> dict[str, Any]:
    md = job["metadata"]
    return {"kind": "Job", "namespace": md.get("namespace"), "name": md["name"], "uid": md.get("uid"),
            "apiVersion": "batch/v1", "resourceVersion": md.get("resourceVersion")}


def plan(cronjob: dict[str, Any], jobs: list[dict[str, Any]], now: datetime.datetime) -> Plan:
    """The next step of one CronJob; `jobs` are the Jobs it controls."""
    result = Plan()
    spec = cronjob.get("spec") or {}
    old_status = cronjob.get("status") or {}
    status: dict[str, Any] = {k: v for k, v in old_status.items() if k != "active"}
    by_uid = {j["metadata"].get("uid"): j for j in jobs}
    active: list[dict[str, Any]] = []
    for ref in old_status.get("active") or []:
        job = by_uid.get(ref.get("uid"))
        if job is None:
            result.events.append(("Normal", "MissingJob", f"Active job went missing: {ref.get('name')}"))
        elif finished_as(job):
            result.events.append(("Normal", "SawCompletedJob",
                                  f"Saw completed job: {ref.get('name')}, condition: {finished_as(job)}"))
        else:
            active.append(ref)
    listed = {ref.get("uid") for ref in active}
    for job in jobs:
        if not finished_as(job) and job["metadata"].get("uid") not in listed:
            result.events.append(("Warning", "UnexpectedJob",
                                  f"Saw a job that the controller did not create or forgot: {job['metadata']['name']}"))
    completed = [t for j in jobs if finished_as(j) == "Complete"
                 if (t := _time((j.get("status") or {}).get("completionTime"))) is not None]
    last_success = _time(status.get("lastSuccessfulTime"))
    if completed and (last_success is None or max(completed) > last_success):
        status["lastSuccessfulTime"] = meta.format_time(max(completed))

    result.delete = history_to_delete(spec, jobs)
    gone = set(result.delete)
    if cronjob["metadata"].get("deletionTimestamp") or spec.get("suspend"):
        return _done(result, status, active)
    try:
        tz = cronschedule.zone(spec.get("timeZone"))
        cronschedule.check(spec.get("schedule"))
    except ValueError as exc:
        kind = "UnknownTimeZone" if "zone" in str(exc) else "UnparseableSchedule"
        result.events.append(("Warning", kind, str(exc)))
        return _done(result, status, active)
    earliest = _time(status.get("lastScheduleTime")) or _time(cronjob["metadata"].get("creationTimestamp")) or now
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        earliest = max(earliest, now - datetime.timedelta(seconds=int(deadline)))
    scheduled, missed, following = most_recent(spec["schedule"], tz, earliest, now)
    if following is not None:
        result.requeue_after = max(0.0, (following - now).total_seconds())
    if missed > MAX_MISSED:
        result.events.append(("Warning", "TooManyMissedTimes", "too many missed start times. Set or decrease "
                              ".spec.startingDeadlineSeconds or check clock skew"))
    if scheduled is None:
        return _done(result, status, active)
    if deadline is not None and scheduled + datetime.timedelta(seconds=int(deadline)) < now:
        result.events.append(("Warning", "MissedSchedule",
                              f"Missed scheduled time to start a job: {meta.format_time(scheduled)}"))
        return _done(result, status, active)
    name = job_name(cronjob["metadata"]["name"], scheduled)
    if any(ref.get("name") == name for ref in active) or any(j["metadata"]["name"] == name for j in jobs):
        return _done(result, status, active)  # this time already ran
    policy = spec.get("concurrencyPolicy") or "Allow"
    if policy == "Forbid" and active:
        result.events.append(("Normal", "JobAlreadyActive",
                              "Not starting job because prior execution is running and concurrency policy is Forbid"))
        return _done(result, status, active)
    if policy == "Replace":
        for ref in active:
            if ref.get("name") not in gone:
                result.delete.append(ref["name"])
        active = []
    result.create = job_from_template(cronjob, scheduled, tz)
    status["lastScheduleTime"] = meta.format_time(scheduled)
    return _done(result, status, active)


def _done(result: Plan, status: dict[str, Any], active: list[dict[str, Any]]) -> Plan:
    gone = set(result.delete)
    active = [ref for ref in active if ref.get("name") not in gone]
    if active:
        status["active"] = active
    result.status = status
    return result


def history_to_delete(spec: dict[str, Any], jobs: list[dict[str, Any]]) -> list[str]:
    """Finished Jobs past successfulJobsHistoryLimit (3) / failedJobsHistoryLimit (1), oldest first."""
    names: list[str] = []
    for outcome, key, default in (("Complete", "successfulJobsHistoryLimit", 3),
                                  ("Failed", "failedJobsHistoryLimit", 1)):
        limit = spec.get(key)
        limit = default if limit is None else int(limit)
        done = [j for j in jobs if finished_as(j) == outcome and not j["metadata"].get("deletionTimestamp")]
        done.sort(key=lambda j: (_time((j.get("status") or {}).get("startTime"))
                                 or _time(j["metadata"].get("creationTimestamp"))
                                 or datetime.datetime.min.replace(tzinfo=datetime.UTC), j["metadata"]["name"]))
        names += [j["metadata"]["name"] for j in done[: max(0, len(done) - limit)]]
    return names
