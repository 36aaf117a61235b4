"""Job controller against a real API server and controller-manager (no node agents).

The tests stand in for the kubelet by patching pods' phase through /status (`_finish`), then check
what the controller does next: pods up to parallelism while completions remain, the conditions
upstream 1.32 writes (SuccessCriteriaMet then Complete, FailureTarget then Failed), deadlines,
suspend/resume, Indexed pods, ttlSecondsAfterFinished deleting the Job and (by GC) its pods, and the
job-tracking finalizer: held until a pod is counted, so a pod deleted while it runs counts as failed.
"""

from __future__ import annotations

from typing import Any

from reconcile.client import api
from reconcile.controllers import job as job_controller
from reconcile.core import errors, meta
from tests import support


def _job(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.36",
                                                           "command": ["true"]}],
                                           "restartPolicy": "Never"}}, **spec}}


def _pods(client: api.Client, ns: str, job: dict[str, Any], *, live: bool = True) -> list[dict[str, Any]]:
    uid = job["metadata"]["uid"]
    pods = [p for p in client.list("v1", "pods", namespace=ns).get("items") or []
            if (meta.controller_owner(p) or {}).get("uid") == uid]
    return [p for p in pods if not live or (p["status"].get("phase") not in ("Succeeded", "Failed")
                                            and not p["metadata"].get("deletionTimestamp"))]


def _status(client: api.Client, ns: str, name: str) -> dict[str, Any]:
    return client.get("batch/v1", "jobs", name, namespace=ns).get("status") or {}


def _conditions(client: api.Client, ns: str, name: str) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c.get("reason", "")) for c in _status(client, ns, name).get("conditions", [])]


def _finish(client: api.Client, ns: str, pod: dict[str, Any], phase: str) -> None:
    """Stand-in for a node agent: the pod's container exited (0 for Succeeded, 1 for Failed)."""
    now = meta.now_rfc3339()
    terminated = {"exitCode": 0 if phase == "Succeeded" else 1, "finishedAt": now, "startedAt": now,
                  "reason": "Completed" if phase == "Succeeded" else "Error"}
    status = {"phase": phase, "containerStatuses": [{"name": "main", "image": "busybox:1.36", "imageID": "",
                                                     "ready": False, "restartCount": 0,
                                                     "state": {"terminated": terminated}}]}
    client.patch("v1", "pods", pod["metadata"]["name"], {"status": status}, namespace=ns, subresource="status")


def _job_names(client: api.Client, ns: str) -> list[str]:
    return [j["metadata"]["name"] for j in client.list("batch/v1", "jobs", namespace=ns).get("items") or []]


def _live_count(client: api.Client, ns: str, job: dict[str, Any], count: int) -> list[dict[str, Any]]:
    support.wait_for(lambda: len(_pods(client, ns, job)) == count, timeout=20, what=f"{count} live pods")
    return _pods(client, ns, job)


def test_completions_run_parallelism_pods_at_a_time_to_complete(controller_manager, client: api.Client,
                                                                 ns: str) -> None:
    job = client.create("batch/v1", "jobs", _job("pi", completions=3, parallelism=2), namespace=ns)
    first = _live_count(client, ns, job, 2)
    pod = first[0]
    assert pod["metadata"]["generateName"] == "pi-"
    assert pod["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "pi",
                                                   "uid": job["metadata"]["uid"], "controller": True,
                                                   "blockOwnerDeletion": True}]
    assert pod["metadata"]["finalizers"] == ["batch.kubernetes.io/job-tracking"]
    assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "pi"
    assert pod["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == job["metadata"]["uid"]
    support.wait_for(lambda: _status(client, ns, "pi").get("active") == 2, timeout=10, what="active 2")
    assert "startTime" in _status(client, ns, "pi")
    for pod in first:
        _finish(client, ns, pod, "Succeeded")
    last = _live_count(client, ns, job, 1)  # one completion left: one pod, not two
    _finish(client, ns, last[0], "Succeeded")
    support.wait_for(lambda: ("Complete", "True", "CompletionsReached") in _conditions(client, ns, "pi"),
                     timeout=20, what="Complete")
    status = _status(client, ns, "pi")
    assert [c for c, _, _ in _conditions(client, ns, "pi")] == ["SuccessCriteriaMet", "Complete"]
    assert status["succeeded"] == 3 and "active" not in status and status["ready"] == 0
    assert status["completionTime"] >= status["startTime"]
    assert status["uncountedTerminatedPods"] == {}
    assert all(not p["metadata"].get("finalizers") for p in _pods(client, ns, job, live=False))  # counted: released
    events = client.list("v1", "events", namespace=ns).get("items") or []
    assert {"SuccessfulCreate", "Completed"} <= {e["reason"] for e in events if e["involvedObject"]["name"] == "pi"}


def test_backoff_limit_exceeded_fails_the_job(controller_manager, client: api.Client, ns: str) -> None:
    job = client.create("batch/v1", "jobs", _job("fail", backoffLimit=0), namespace=ns)
    (pod,) = _live_count(client, ns, job, 1)
    _finish(client, ns, pod, "Failed")
    support.wait_for(lambda: ("Failed", "True", "BackoffLimitExceeded") in _conditions(client, ns, "fail"),
                     timeout=20, what="Failed")
    assert _conditions(client, ns, "fail") == [("FailureTarget", "True", "BackoffLimitExceeded"),
                                               ("Failed", "True", "BackoffLimitExceeded")]
    status = _status(client, ns, "fail")
    assert status["failed"] == 1 and "completionTime" not in status
    assert _pods(client, ns, job) == []  # no replacement


def test_active_deadline_stops_the_pods_and_fails_the_job(controller_manager, client: api.Client,
                                                          ns: str) -> None:
    job = client.create("batch/v1", "jobs", _job("slow", activeDeadlineSeconds=2, parallelism=2, completions=2),
                        namespace=ns)
    _live_count(client, ns, job, 2)
    support.wait_for(lambda: ("Failed", "True", "DeadlineExceeded") in _conditions(client, ns, "slow"),
                     timeout=20, what="DeadlineExceeded")
    assert _pods(client, ns, job, live=False) == []  # unscheduled pods go at once


def test_suspend_deletes_pods_and_resume_starts_them_again(controller_manager, client: api.Client,
                                                           ns: str) -> None:
    job = client.create("batch/v1", "jobs", _job("later", suspend=True), namespace=ns)
    support.wait_for(lambda: ("Suspended", "True", "JobSuspended") in _conditions(client, ns, "later"),
                     timeout=20, what="Suspended")
    assert _pods(client, ns, job) == [] and "startTime" not in _status(client, ns, "later")
    client.patch("batch/v1", "jobs", "later", {"spec": {"suspend": False}}, namespace=ns)
    _live_count(client, ns, job, 1)
    support.wait_for(lambda: ("Suspended", "False", "JobResumed") in _conditions(client, ns, "later"),
                     timeout=20, what="resumed")
    client.patch("batch/v1", "jobs", "later", {"spec": {"suspend": True}}, namespace=ns)
    support.wait_for(lambda: _pods(client, ns, job, live=False) == [], timeout=20, what="pod deleted on suspend")
    support.wait_for(lambda: ("Suspended", "True", "JobSuspended") in _conditions(client, ns, "later"),
                     timeout=20, what="suspended again")


def test_indexed_pods_carry_their_completion_index(controller_manager, client: api.Client, ns: str) -> None:
    job = client.create("batch/v1", "jobs", _job("ix", completions=3, parallelism=3, completionMode="Indexed"),
                        namespace=ns)
    pods = _live_count(client, ns, job, 3)
    by_index = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p for p in pods}
    assert sorted(by_index) == ["0", "1", "2"]
    zero = by_index["0"]
    assert zero["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "0"
    assert zero["metadata"]["name"].startswith("ix-0-") and zero["spec"]["hostname"] == "ix-0"
    (env,) = [e for e in zero["spec"]["containers"][0]["env"] if e["name"] == "JOB_COMPLETION_INDEX"]
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    _finish(client, ns, by_index["1"], "Succeeded")
    support.wait_for(lambda: _status(client, ns, "ix").get("completedIndexes") == "1", timeout=20,
                     what="index 1 completed")
    _finish(client, ns, by_index["0"], "Failed")  # index 0 again, under its own index
    support.wait_for(lambda: any(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "0"
                                 for p in _pods(client, ns, job)), timeout=40, what="index 0 replaced")
    for pod in _pods(client, ns, job):
        _finish(client, ns, pod, "Succeeded")
    support.wait_for(lambda: ("Complete", "True", "CompletionsReached") in _conditions(client, ns, "ix"),
                     timeout=20, what="Complete")
    status = _status(client, ns, "ix")
    assert (status["completedIndexes"], status["succeeded"], status["failed"]) == ("0-2", 3, 1)


def test_ttl_after_finished_deletes_the_job_and_its_pods(controller_manager, client: api.Client, ns: str) -> None:
    job = client.create("batch/v1", "jobs", _job("brief", ttlSecondsAfterFinished=1), namespace=ns)
    (pod,) = _live_count(client, ns, job, 1)
    _finish(client, ns, pod, "Succeeded")

    def gone() -> bool:
        try:
            client.get("batch/v1", "jobs", "brief", namespace=ns)
        except errors.NotFound:
            return True
        return False

    support.wait_for(gone, timeout=30, what="job deleted after its TTL")
    assert "brief" not in _job_names(client, ns)
    support.wait_for(lambda: _pods(client, ns, job, live=False) == [], timeout=30, what="pods collected")
    assert [p["metadata"]["name"] for p in _pods(client, ns, job, live=False)] == []


def test_a_pod_deleted_while_it_runs_counts_as_failed_and_is_replaced(controller_manager, client: api.Client,
                                                                      ns: str) -> None:
    """The tracking finalizer holds the deleted pod until it is counted; then it goes."""
    job = client.create("batch/v1", "jobs", _job("kept", backoffLimit=3), namespace=ns)
    (pod,) = _live_count(client, ns, job, 1)
    client.delete("v1", "pods", pod["metadata"]["name"], namespace=ns)
    support.wait_for(lambda: _status(client, ns, "kept").get("failed") == 1, timeout=20, what="counted as failed")
    support.wait_for(lambda: pod["metadata"]["uid"] not in {p["metadata"]["uid"] for p in
                                                         _pods(client, ns, job, live=False)},
                     timeout=20, what="the deleted pod released and gone")
    (replacement,) = _live_count(client, ns, job, 1)  # after the 10 s failure backoff
    assert replacement["metadata"]["uid"] != pod["metadata"]["uid"]
    assert _status(client, ns, "kept")["uncountedTerminatedPods"] == {}


def test_status_patches_clear_nested_lists() -> None:
    old = {"uncountedTerminatedPods": {"succeeded": ["a"]}, "succeeded": 1, "startTime": "t"}
    new = {"uncountedTerminatedPods": {}, "succeeded": 2}
    assert job_controller.merge_patch(old, new) == {"uncountedTerminatedPods": {"succeeded": None}, "succeeded": 2,
                                                    "startTime": None}


def test_deleting_a_running_job_releases_and_collects_its_pods(controller_manager, client: api.Client,
                                                               ns: str) -> None:
    """Background deletion (kubectl's default): the Job goes first, the controller takes the tracking
    finalizers off its orphans, the garbage collector deletes them."""
    job = client.create("batch/v1", "jobs", _job("bye", parallelism=2, completions=4), namespace=ns)
    running = _live_count(client, ns, job, 2)
    assert [p["metadata"]["finalizers"] for p in running] == [["batch.kubernetes.io/job-tracking"]] * 2
    client.delete("batch/v1", "jobs", "bye", namespace=ns, propagation_policy="Background")
    support.wait_for(lambda: _pods(client, ns, job, live=False) == [], timeout=30, what="pods released and collected")
    assert "bye" not in _job_names(client, ns)
    assert [p["metadata"]["name"] for p in _pods(client, ns, job, live=False)] == []


def test_pod_views_tolerate_odd_field_types() -> None:
    pod = {"metadata": {"name": "a", "uid": "u", "finalizers": ["batch.kubernetes.io/job-tracking"],
                        "annotations": {"batch.kubernetes.io/job-completion-index": "2"}},
           "status": {"phase": "Running", "containerStatuses": [
               {"restartCount": 2}, {"restartCount": True}, "x",
               {"restartCount": 1, "state": {"terminated": {"finishedAt": "2026-01-01T00:00:00Z"}}}]}}
    view = job_controller.pod_view(pod)
    assert (view.index, view.restarts, view.tracked, view.finished_at) == (2, 3, True, 1767225600.0)
    odd = job_controller.pod_view({"metadata": {"name": "b", "annotations": {
        "batch.kubernetes.io/job-completion-index": "-1"}}, "status": "x"})
    assert (odd.phase, odd.index, odd.tracked, odd.restarts) == ("Pending", None, False, 0)


def test_deleting_a_cronjob_collects_its_jobs_and_their_pods(controller_manager, client: api.Client,
                                                             ns: str) -> None:
    """Owner references all the way down: CronJob -> Job (as `kubectl create job --from` makes it) -> pods."""
    cronjob = client.create("batch/v1", "cronjobs", {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "yearly"},
        "spec": {"schedule": "0 0 1 1 *", "jobTemplate": {"spec": _job("x")["spec"]}}}, namespace=ns)
    body = _job("yearly-manual")
    body["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "yearly",
                                            "uid": cronjob["metadata"]["uid"], "controller": True}]
    job = client.create("batch/v1", "jobs", body, namespace=ns)
    _live_count(client, ns, job, 1)
    client.delete("batch/v1", "cronjobs", "yearly", namespace=ns, propagation_policy="Foreground")
    support.wait_for(lambda: _job_names(client, ns) == [], timeout=30, what="the job collected")
    assert _job_names(client, ns) == []
    support.wait_for(lambda: _pods(client, ns, job, live=False) == [], timeout=30, what="its pods collected")
    assert [p["metadata"]["name"] for p in _pods(client, ns, job, live=False)] == []


def test_a_pod_released_by_a_label_change_loses_the_tracking_finalizer(controller_manager, client: api.Client,
                                                                       ns: str) -> None:
    job = client.create("batch/v1", "jobs", _job("relabel"), namespace=ns)
    (pod,) = _live_count(client, ns, job, 1)
    client.patch("v1", "pods", pod["metadata"]["name"], {"metadata": {"labels": {
        "batch.kubernetes.io/controller-uid": "someone-else"}}}, namespace=ns)

    def released() -> dict[str, Any] | None:
        found = client.get("v1", "pods", pod["metadata"]["name"], namespace=ns)
        metadata = found["metadata"]
        return found if not metadata.get("ownerReferences") and not metadata.get("finalizers") else None

    orphan = support.wait_for(released, timeout=20, what="released without the finalizer")
    assert orphan["metadata"]["uid"] == pod["metadata"]["uid"]
    assert not orphan["metadata"].get("finalizers") and not orphan["metadata"].get("ownerReferences")
    (replacement,) = _live_count(client, ns, job, 1)  # and replaced
    assert replacement["metadata"]["uid"] != pod["metadata"]["uid"]
    client.delete("v1", "pods", pod["metadata"]["name"], namespace=ns)
