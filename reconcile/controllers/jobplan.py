"""The pure decisions of the Job controller (upstream pkg/controller/job: syncJob and manageJob).

No I/O here: given the Job's settings, its previous status and what each of its pods looks like,
`plan` says which pods to create (and, for Indexed Jobs, with which completion index), which to
delete, and the status to write. Kept apart so the counting rules (completions, parallelism,
backoffLimit, activeDeadlineSeconds, suspend, the two-step SuccessCriteriaMet -> Complete and
FailureTarget -> Failed conditions of upstream 1.32) are unit-tested without an API server.

Counting (upstream's tracking with finalizers): pods are created with the `batch.kubernetes.io/job-tracking`
finalizer, so a finished pod cannot vanish before it was counted. A finished pod still holding it is first
recorded by uid in `status.uncountedTerminatedPods` (`Plan.record`), then its finalizer is removed
(`Plan.untrack`), then the recorded uids move into `succeeded`/`failed` (`Plan.status`); a crash between
two steps leaves the uids recorded, so each pod is counted exactly once. A pod deleted while it runs
counts as failed (upstream: unless podReplacementPolicy is Failed, which waits for the Failed phase).
Pods the controller deletes itself (suspend, deadline, surplus) are untracked first and not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconcile.core import meta

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # annotation and label on Indexed pods
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
BACKOFF_BASE = 10.0  # seconds before the first replacement of a failed pod (upstream DefaultJobPodFailureBackOff)
BACKOFF_MAX = 360.0  # upstream MaxJobPodFailureBackOff

COMPLETE, FAILED, SUSPENDED = "Complete", "Failed", "Suspended"
SUCCESS_CRITERIA_MET, FAILURE_TARGET = "SuccessCriteriaMet", "FailureTarget"
REASONS = {  # reason -> message, as upstream writes them
    "CompletionsReached": "Reached expected number of succeeded pods",
    "BackoffLimitExceeded": "Job has reached the specified backoff limit",
    "DeadlineExceeded": "Job was active longer than specified deadline",
}


@dataclass(frozen=True)
class PodView:
    """What the planner needs of one pod the Job controls."""

    name: str
    phase: str = "Pending"
    uid: str = ""  # "" (tests): the name stands in
    tracked: bool = True  # holds the job-tracking finalizer (every pod this controller made, until counted)

    @property
    def key(self) -> str:
        return self.uid or self.name
    deleting: bool = False  # deletionTimestamp set
    ready: bool = False
    index: int | None = None  # Indexed Jobs: the completion index it runs (None: unreadable)
    created: float = 0.0  # creationTimestamp, seconds since the epoch
    finished_at: float | None = None  # when its last container terminated (Failed pods: the backoff clock)
    restarts: int = 0  # container restarts (restartPolicy OnFailure: they count toward backoffLimit)

    @property
    def active(self) -> bool:
        return self.phase not in ("Succeeded", "Failed") and not self.deleting

    @property
    def terminating(self) -> bool:
        return self.phase not in ("Succeeded", "Failed") and self.deleting


@dataclass(frozen=True)
class Settings:
    parallelism: int = 1
    completions: int | None = 1
    indexed: bool = False
    backoff_limit: int = 6
    active_deadline: int | None = None  # spec.activeDeadlineSeconds
    suspend: bool = False
    replace_only_failed: bool = False  # podReplacementPolicy Failed: terminating pods still hold their slot
    restart_on_failure: bool = False  # the template's restartPolicy is OnFailure
    backoff_base: float = BACKOFF_BASE

    @classmethod
    def of(cls, job: dict[str, Any], *, backoff_base: float = BACKOFF_BASE) -> Settings:
        spec = job.get("spec") or {}
        completions = spec.get("completions")
        return cls(parallelism=int(spec.get("parallelism") if spec.get("parallelism") is not None else 1),
                   completions=None if completions is None else int(completions),
                   indexed=spec.get("completionMode") == "Indexed",
                   backoff_limit=int(spec.get("backoffLimit") if spec.get("backoffLimit") is not None else 6),
                   active_deadline=spec.get("activeDeadlineSeconds"), suspend=bool(spec.get("suspend")),
                   replace_only_failed=spec.get("podReplacementPolicy") == "Failed", backoff_base=backoff_base,
                   restart_on_failure=((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
                   == "OnFailure")


@dataclass
class Plan:
    """What to do next: pods to create (one entry each: its completion index, None when NonIndexed),
    pod names to delete, the status to write, and when to look again (a deadline or a backoff)."""

    create: list[int | None] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] | None = None  # the status that records newly finished pods before `untrack`
    untrack: list[str] = field(default_factory=list)  # pods whose tracking finalizer is to be removed
    requeue_after: float | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


# --- completed indexes: upstream's interval strings ("1,3-5,7") -----------------------------------------


def parse_indexes(text: Any, completions: int) -> set[int]:
    """The indexes of an interval string below `completions`; unreadable parts are ignored."""
    found: set[int] = set()
    if not isinstance(text, str):
        return found
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            continue
        found.update(i for i in range(max(low, 0), min(high, completions - 1) + 1))
    return found


def format_indexes(indexes: set[int]) -> str:
    """Sorted indexes as intervals: {0, 1, 2, 5} -> "0-2,5" (upstream's completedIndexes)."""
    parts: list[str] = []
    for i in sorted(indexes):
        if parts and parts[-1][1] == i - 1:
            parts[-1] = (parts[-1][0], i)
        else:
            parts.append((i, i))
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in parts)  # type: ignore[misc]


# --- conditions ---------------------------------------------------------------------------------------


def condition(conditions: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == kind and c.get("status") == "True"), None)


def _set_condition(conditions: list[dict[str, Any]], kind: str, status: str, reason: str, message: str,
                   now: str) -> bool:
    """Add or change a condition (its times move only when its status changes); True if it changed."""
    for c in conditions:
        if c.get("type") == kind:
            if c.get("status") == status and c.get("reason") == reason:
                return False
            c.update(status=status, reason=reason, message=message, lastProbeTime=now,
                     **({"lastTransitionTime": now} if c.get("status") != status else {}))
            return True
    conditions.append({"type": kind, "status": status, "lastProbeTime": now, "lastTransitionTime": now,
                       "reason": reason, "message": message})
    return True


def finished(status: dict[str, Any]) -> dict[str, Any] | None:
    """The Complete or Failed condition a finished Job carries (then nothing more happens to it)."""
    conditions = status.get("conditions") or []
    return condition(conditions, COMPLETE) or condition(conditions, FAILED)


# --- the plan -------------------------------------------------------------------------------------------


def backoff_remaining(settings: Settings, failed: int, pods: list[PodView], now: float) -> float:
    """Seconds before a failed pod may be replaced: base * 2^(failures-1), capped, from the last failure."""
    if failed <= 0 or settings.backoff_base <= 0:
        return 0.0
    last = max((p.finished_at or p.created for p in pods if p.phase == "Failed"), default=None)
    if last is None:
        return 0.0
    delay = min(settings.backoff_base * math.pow(2, min(failed - 1, 30)), BACKOFF_MAX)
    return max(0.0, last + delay - now)


def plan(settings: Settings, pods: list[PodView], old_status: dict[str, Any], now: datetime) -> Plan:
    """The next step of one Job; `old_status` is what the Job's status says now."""
    stamp = meta.format_time(now)
    epoch = now.timestamp()
    result = Plan()
    conditions = [dict(c) for c in old_status.get("conditions") or [] if isinstance(c, dict)]
    status: dict[str, Any] = {k: v for k, v in old_status.items() if k != "conditions"}
    active = [p for p in pods if p.active]
    terminating = [p for p in pods if p.terminating]
    succeeded_pods = [p for p in pods if p.phase == "Succeeded"]
    recorded = _uncounted(old_status)
    fresh: dict[str, set[str]] = {"succeeded": set(), "failed": set()}
    for pod in pods:
        outcome = _outcome(pod, settings)
        if pod.tracked and outcome and pod.key not in recorded["succeeded"] | recorded["failed"]:
            fresh[outcome].add(pod.key)
    uncounted = {k: recorded[k] | fresh[k] for k in recorded}
    failed = int(old_status.get("failed") or 0) + len(uncounted["failed"])
    done_indexes: set[int] = set()
    if settings.indexed and settings.completions is not None:
        done_indexes = parse_indexes(old_status.get("completedIndexes"), settings.completions)
        done_indexes.update(p.index for p in succeeded_pods if p.index is not None and p.index < settings.completions)
        succeeded = len(done_indexes)
    else:
        succeeded = int(old_status.get("succeeded") or 0) + len(uncounted["succeeded"])
    result.untrack = [p.name for p in pods if p.tracked and p.key in uncounted["succeeded"] | uncounted["failed"]]
    if fresh["succeeded"] or fresh["failed"]:
        result.record = {**old_status, "uncountedTerminatedPods": {
            k: sorted(v) for k, v in uncounted.items() if v}}
        if settings.indexed and done_indexes:
            result.record["completedIndexes"] = format_indexes(done_indexes)
    status["uncountedTerminatedPods"] = {}

    if finished(old_status) is not None:  # finished: only leftovers go
        result.delete = [p.name for p in active]
        result.status = _counts(status, conditions, active, terminating, succeeded, failed, done_indexes, settings)
        return result

    target = condition(conditions, SUCCESS_CRITERIA_MET) or condition(conditions, FAILURE_TARGET)
    if target is None and not settings.suspend:
        if "startTime" not in status:
            status["startTime"] = stamp
        start = meta.epoch_seconds(status.get("startTime"))
        complete = (succeeded >= settings.completions if settings.completions is not None
                    else succeeded > 0 and not active)
        if complete:
            _set_condition(conditions, SUCCESS_CRITERIA_MET, "True", "CompletionsReached",
                           REASONS["CompletionsReached"], stamp)
            target = condition(conditions, SUCCESS_CRITERIA_MET)
        elif failed + (sum(p.restarts for p in active) if settings.restart_on_failure else 0) > settings.backoff_limit:
            # upstream pastBackoffLimitOnFailure: with OnFailure, restarts in place count as failures
            target = _fail(conditions, "BackoffLimitExceeded", stamp, result)
        elif settings.active_deadline is not None and start is not None:
            left = start + settings.active_deadline - epoch
            if left <= 0:
                target = _fail(conditions, "DeadlineExceeded", stamp, result)
            else:
                result.requeue_after = left

    if target is not None:  # the Job's outcome is known: stop what runs, then finish
        result.delete = [p.name for p in active]
        if not active and not terminating:
            final = COMPLETE if target["type"] == SUCCESS_CRITERIA_MET else FAILED
            _set_condition(conditions, final, "True", target.get("reason") or "", target.get("message") or "", stamp)
            if final == COMPLETE:
                status["completionTime"] = stamp
                result.events.append(("Normal", "Completed", "Job completed"))
        result.status = _counts(status, conditions, [], terminating + [p for p in active], succeeded, failed,
                                done_indexes, settings)
        return result

    if settings.suspend:
        result.delete = [p.name for p in active]
        if _set_condition(conditions, SUSPENDED, "True", "JobSuspended", "Job suspended", stamp):
            result.events.append(("Normal", "Suspended", "Job suspended"))
        status.pop("startTime", None)  # upstream resets it when the Job resumes
        result.status = _counts(status, conditions, [], terminating + active, succeeded, failed, done_indexes,
                                settings)
        return result
    if condition(conditions, SUSPENDED) is not None:
        _set_condition(conditions, SUSPENDED, "False", "JobResumed", "Job resumed", stamp)
        result.events.append(("Normal", "Resumed", "Job resumed"))

    wait = backoff_remaining(settings, failed, pods, epoch)
    slots = settings.parallelism - len(active) - (len(terminating) if settings.replace_only_failed else 0)
    if settings.indexed and settings.completions is not None:
        _manage_indexed(settings, active, terminating, done_indexes, slots, wait, result)
    else:
        if settings.completions is None:
            wanted = len(active) if succeeded > 0 else settings.parallelism  # the rest finish; none start
        else:
            wanted = max(0, min(settings.parallelism, settings.completions - succeeded))
        if len(active) > wanted:
            newest_first = sorted(active, key=lambda p: (p.ready, -p.created, p.name))
            result.delete = [p.name for p in newest_first[: len(active) - wanted]]
        elif slots > 0 and len(active) < wanted:
            if wait > 0:
                result.requeue_after = _sooner(result.requeue_after, wait)
            else:
                result.create = [None] * min(slots, wanted - len(active))
    kept = [p for p in active if p.name not in result.delete]
    gone = [p for p in active if p.name in result.delete]
    result.status = _counts(status, conditions, kept, terminating + gone, succeeded, failed, done_indexes, settings)
    result.status["active"] = len(kept) + len(result.create)
    if not result.status["active"]:
        result.status.pop("active")
    return result


def _uncounted(status: dict[str, Any]) -> dict[str, set[str]]:
    found = status.get("uncountedTerminatedPods") if isinstance(status.get("uncountedTerminatedPods"), dict) else {}
    return {k: {u for u in found.get(k) or [] if isinstance(u, str)} for k in ("succeeded", "failed")}


def _outcome(pod: PodView, settings: Settings) -> str | None:
    """"succeeded" / "failed" once a pod is done (upstream isPodFailed: a pod deleted before it
    succeeded counts as failed, unless only Failed pods are replaced)."""
    if pod.phase == "Succeeded":
        return "succeeded"
    if pod.phase == "Failed" or (pod.deleting and not settings.replace_only_failed):
        return "failed"
    return None


def _manage_indexed(settings: Settings, active: list[PodView], terminating: list[PodView], done: set[int],
                    slots: int, wait: float, result: Plan) -> None:
    """Indexed: one active pod per index not yet succeeded, lowest indexes first; extras and strays go."""
    completions = settings.completions or 0
    seen: set[int] = set()
    for pod in sorted(active, key=lambda p: (p.index is None, p.index, p.created, p.name)):
        if pod.index is None or pod.index >= completions or pod.index in done or pod.index in seen:
            result.delete.append(pod.name)
        else:
            seen.add(pod.index)
    held = seen | ({p.index for p in terminating if p.index is not None} if settings.replace_only_failed else set())
    missing = [i for i in range(completions) if i not in done and i not in held]
    room = slots + len(result.delete)
    if missing and room > 0:
        if wait > 0:
            result.requeue_after = _sooner(result.requeue_after, wait)
        else:
            result.create = list(missing[: min(room, settings.parallelism - len(seen))])


def _fail(conditions: list[dict[str, Any]], reason: str, stamp: str, result: Plan) -> dict[str, Any] | None:
    _set_condition(conditions, FAILURE_TARGET, "True", reason, REASONS[reason], stamp)
    result.events.append(("Warning", reason, REASONS[reason]))
    return condition(conditions, FAILURE_TARGET)


def _counts(status: dict[str, Any], conditions: list[dict[str, Any]], active: list[PodView],
            terminating: list[PodView], succeeded: int, failed: int, done: set[int], settings: Settings,
            ) -> dict[str, Any]:
    """The status counters as upstream writes them: zero counts left out, `ready` and `terminating`
    always present (they are pointers upstream, set once the controller has counted)."""
    out = dict(status)
    for key, value in (("active", len(active)), ("succeeded", succeeded), ("failed", failed)):
        if value:
            out[key] = value
        else:
            out.pop(key, None)
    out["ready"] = sum(1 for p in active if p.ready)
    out["terminating"] = len(terminating)
    if settings.indexed:
        if done:
            out["completedIndexes"] = format_indexes(done)
        else:
            out.pop("completedIndexes", None)
    if conditions:
        out["conditions"] = conditions
    return out


def _sooner(a: float | None, b: float) -> float:
    return b if a is None else min(a, b)


def ttl_remaining(job: dict[str, Any], now: datetime) -> float | None:
    """Seconds until a finished Job with ttlSecondsAfterFinished is to be deleted (<= 0: now); None when
    it is not finished or has no TTL (upstream's TTL-after-finished controller: from the finish time)."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    done = finished(job.get("status") or {})
    if ttl is None or done is None:
        return None
    status = job.get("status") or {}
    at = meta.epoch_seconds(status.get("completionTime")) or meta.epoch_seconds(done.get("lastTransitionTime"))
    if at is None:
        return 0.0
    return at + int(ttl) - now.timestamp()
