"""Job controller: run a Job's pods to completion and report them (upstream's job controller, with
its TTL-after-finished controller folded in).

`jobplan.plan` decides; this module reads the informers, claims pods by the Job's selector,
creates and deletes pods (expected until the informer shows them, as the ReplicaSet controller
does), writes the status, records Events, and deletes a finished Job once its
ttlSecondsAfterFinished is up (Foreground, as upstream, so the garbage collector takes its pods first).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from typing import Any

from reconcile.controllers import batching, context, expectations, jobplan, ownership, podutil
from reconcile.controllers import informers as informers_mod
from reconcile.core import errors, meta, selectors
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

API_VERSION = "batch/v1"
KIND = "Job"
JOB_NAME = "batch.kubernetes.io/job-name"
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"

Key = controller_mod.Key


def pod_from_template(job: dict[str, Any], index: int | None) -> dict[str, Any]:
    """A new pod of `job`: the template, generateName `<job>-` (Indexed: `<job>-<index>-`, hostname
    `<job>-<index>`, the completion-index annotation and label, JOB_COMPLETION_INDEX from it)."""
    template = (job.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    name = job["metadata"]["name"]
    metadata: dict[str, Any] = {
        "generateName": f"{name}-" if index is None else f"{name}-{index}-",
        "namespace": job["metadata"]["namespace"],
        "labels": dict(tmeta.get("labels") or {}),
        "ownerReferences": [ownership.controller_ref(job)],
    }
    annotations = dict(tmeta.get("annotations") or {})
    metadata["finalizers"] = [*(f for f in tmeta.get("finalizers") or [] if f != jobplan.TRACKING_FINALIZER),
                              jobplan.TRACKING_FINALIZER]
    spec = copy.deepcopy(template.get("spec") or {})
    if index is not None:
        annotations[jobplan.COMPLETION_INDEX] = str(index)
        metadata["labels"][jobplan.COMPLETION_INDEX] = str(index)
        spec.setdefault("hostname", f"{name}-{index}")
        env = {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{jobplan.COMPLETION_INDEX}']"}}}
        for key in ("initContainers", "containers"):
            for container in spec.get(key) or []:
                if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in container.get("env") or []):
                    container["env"] = [*(container.get("env") or []), env]
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def pod_view(pod: dict[str, Any]) -> jobplan.PodView:
    """What the planner reads of a pod (tolerant of odd field types, as podutil is)."""
    md = pod.get("metadata") or {}
    status = pod.get("status") if isinstance(pod.get("status"), dict) else {}
    index_text = (md.get("annotations") or {}).get(jobplan.COMPLETION_INDEX)
    try:
        index = int(index_text) if index_text is not None and str(index_text).isdigit() else None
    except ValueError:
        index = None
    finished = [meta.epoch_seconds(((s.get("state") or {}).get("terminated") or {}).get("finishedAt"))
                for s in status.get("containerStatuses") or [] if isinstance(s, dict)]
    phase = status.get("phase")
    return jobplan.PodView(name=md.get("name") or "", phase=phase if isinstance(phase, str) else "Pending",
                           uid=md.get("uid") or "", tracked=tracked(pod),
                           deleting=bool(md.get("deletionTimestamp")), ready=podutil.is_ready(pod), index=index,
                           created=meta.epoch_seconds(md.get("creationTimestamp")) or 0.0,
                           finished_at=max((f for f in finished if f is not None), default=None),
                           restarts=sum(c for s in status.get("containerStatuses") or [] if isinstance(s, dict)
                                        if isinstance(c := s.get("restartCount"), int) and not isinstance(c, bool)))


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) from `old` to `new`: a key that went is null, nested objects
    are diffed (`{}` alone would leave `uncountedTerminatedPods`' lists in place), the rest replaced."""
    patch: dict[str, Any] = {k: None for k in old if k not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            if value != before:
                patch[key] = merge_patch(before, value)
        elif value != before:
            patch[key] = value
    return patch


def tracked(pod: dict[str, Any]) -> bool:
    finalizers = (pod.get("metadata") or {}).get("finalizers")
    return isinstance(finalizers, list) and jobplan.TRACKING_FINALIZER in finalizers


def job_key_of_pod(pod: dict[str, Any]) -> Key | None:
    ref = meta.controller_owner(pod)
    if ref is None or ref.get("kind") != KIND or not str(ref.get("apiVersion", "")).startswith("batch/"):
        return None
    return ((pod.get("metadata") or {}).get("namespace") or "", ref.get("name") or "")


class JobController:
    """Owns the `job` engine controller and its informer handlers."""

    def __init__(self, ctx: context.ControllerContext, *, backoff_base: float = jobplan.BACKOFF_BASE) -> None:
        self.ctx = ctx
        self.backoff_base = backoff_base
        self.jobs = ctx.informers.get(API_VERSION, "jobs")
        self.pods = ctx.informers.get("v1", "pods")
        self.expectations = expectations.Expectations(clock=ctx.clock)
        # uids of pods whose tracking finalizer this controller removed and the informer may not show
        # gone yet (upstream's expected finalizer removals): they count as untracked, never twice
        self.untracked: set[str] = set()
        self.controller = ctx.controller("job", self.reconcile)
        self.controller.watch(self.jobs)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)

    # --- events -> keys -----------------------------------------------------------------------

    def _pod_added(self, pod: dict[str, Any]) -> None:
        key = job_key_of_pod(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.controller.enqueue(key)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        for key in {job_key_of_pod(old), job_key_of_pod(new)} - {None}:
            self.controller.enqueue(key)  # type: ignore[arg-type]

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        key = job_key_of_pod(pod)
        if key is None:
            return
        uid = (pod.get("metadata") or {}).get("uid")
        if uid:
            self.expectations.deletion_observed(key, uid)
        self.controller.enqueue(key)

    # --- reconcile ----------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> controller_mod.Result | None:
        namespace, name = key
        job = self.jobs.store.get(namespace, name)
        await self._release_orphans(key, job)
        if job is None:
            self.expectations.forget(key)
            return None
        if job["metadata"].get("deletionTimestamp"):
            return None  # the garbage collector takes its pods (their finalizers are gone: above)
        now = self.ctx.clock.wall()
        left = jobplan.ttl_remaining(job, now)
        if left is not None:
            if left <= 0:
                await self._expire(job)
                return None
        if not self.expectations.satisfied(key):
            return None  # the informer has not shown our last creates/deletes yet: they will requeue us
        try:
            selector = selectors.LabelSelector.from_match((job.get("spec") or {}).get("selector"))
        except errors.ApiError as exc:
            await self.ctx.event(job, reason="SelectorParsingFailed", message=str(exc), type="Warning")
            return None
        candidates = list(self.pods.store.by_index("namespace", namespace))
        pods, raced = await ownership.claim(self.ctx.client, "v1", "pods", job, selector, candidates)
        self._forget_untracked()
        views = [pod_view(p) for p in pods]
        views = [dataclasses.replace(v, tracked=False) if v.uid in self.untracked else v for v in views]
        decided = jobplan.plan(jobplan.Settings.of(job, backoff_base=self.backoff_base), views,
                               job.get("status") or {}, now)
        error = await self._act(key, job, pods, decided)
        error = await self._count(job, pods, decided) or error
        for kind, reason, message in decided.events:
            await self.ctx.event(job, reason=reason, message=message, type=kind)
        if error is not None:
            raise error
        if raced:
            return controller_mod.Result(requeue_after=0.05)
        waits = [w for w in (decided.requeue_after, left) if w is not None]
        if jobplan.finished(decided.status) is not None and (job.get("spec") or {}).get(
                "ttlSecondsAfterFinished") is not None:
            waits.append(float((job.get("spec") or {})["ttlSecondsAfterFinished"]))
        return controller_mod.Result(requeue_after=min(waits) + 0.05) if waits else None

    async def _act(self, key: Key, job: dict[str, Any], pods: list[dict[str, Any]],
                   decided: jobplan.Plan) -> BaseException | None:
        """Delete, then create, what the plan says; the first error, if any."""
        error: BaseException | None = None
        by_name = {p["metadata"]["name"]: p for p in pods}
        victims = [by_name[n] for n in decided.delete if n in by_name]
        if victims:
            self.expectations.expect_deletions(key, [p["metadata"]["uid"] for p in victims])
            for victim in victims:
                try:
                    await self._delete_pod(key, victim)
                except Exception as exc:  # noqa: BLE001 - first error raised after the status is written
                    error = error or exc
            await self.ctx.event(job, reason="SuccessfulDelete", message=(
                f"Deleted pod: {victims[0]['metadata']['name']}" if len(victims) == 1
                else f"Deleted {len(victims)} pods"))
        if decided.create and error is None:
            indexes = decided.create[: batching.per_sync(len(decided.create), burst=self.ctx.burst_replicas)]
            self.expectations.expect_creations(key, len(indexes))
            queue = list(indexes)
            created: list[str] = []

            async def create_one() -> None:
                body = pod_from_template(job, queue.pop(0))
                made = await self.ctx.client.create("v1", "pods", body, namespace=job["metadata"]["namespace"])
                created.append(made["metadata"]["name"])

            done, create_error = await batching.slow_start(len(indexes), create_one)
            if done < len(indexes):
                self.expectations.creation_observed(key, count=len(indexes) - done)
            if created:
                await self.ctx.event(job, reason="SuccessfulCreate", message=f"Created pod: {created[0]}"
                                     if len(created) == 1 else f"Created {len(created)} pods")
            if create_error is not None:
                await self.ctx.event(job, reason="FailedCreate", message=f"Error creating: {create_error}",
                                     type="Warning")
                error = create_error
        return error

    async def _count(self, job: dict[str, Any], pods: list[dict[str, Any]], decided: jobplan.Plan,
                     ) -> BaseException | None:
        """Record newly finished pods, remove their tracking finalizers, then write the counted status;
        a failure stops at the step it hit (the next sync resumes from what the status recorded)."""
        written = job
        if decided.record is not None:
            written = await self._write_status(job, decided.record)
            if written is None:
                return None
        by_name = {p["metadata"]["name"]: p for p in pods}
        try:
            for name in decided.untrack:
                if name in by_name:
                    await self._untrack(by_name[name])
        except Exception as exc:  # noqa: BLE001 - the status keeps the uids recorded; retried
            return exc
        await self._write_status(written, decided.status)
        return None

    def _forget_untracked(self) -> None:
        """Drop the expected removals the informer now shows (the pod without the finalizer, or gone)."""
        for uid in list(self.untracked):
            found = list(self.pods.store.by_index(informers_mod.INDEX_UID, uid))
            if not found or not tracked(found[0]):
                self.untracked.discard(uid)

    async def _release_orphans(self, key: Key, job: dict[str, Any] | None) -> None:
        """Tracking finalizers off the pods of a Job that is gone, being deleted, or another one by that
        name, and off pods no Job controls any more (released by a label change): upstream's orphan-pod
        cleanup, so nothing waits on a controller that will not count them."""
        uid = None if job is None or job["metadata"].get("deletionTimestamp") else job["metadata"].get("uid")
        for pod in self.pods.store.by_index("namespace", key[0]):
            if not tracked(pod):
                continue
            owner = job_key_of_pod(pod)
            if owner is None or (owner == key and (meta.controller_owner(pod) or {}).get("uid") != uid):
                await self._untrack(pod)

    async def _untrack(self, pod: dict[str, Any]) -> None:
        """Remove the tracking finalizer (only it) from `pod`, under the version read; re-read on a conflict."""
        md = pod["metadata"]
        for _attempt in range(3):
            rest = [f for f in md.get("finalizers") or [] if f != jobplan.TRACKING_FINALIZER]
            if len(rest) == len(md.get("finalizers") or []):
                return
            try:
                await self.ctx.client.patch("v1", "pods", md["name"], {"metadata": {
                    "finalizers": rest or None, "resourceVersion": md["resourceVersion"]}}, namespace=md["namespace"])
                self.untracked.add(md["uid"])
                return
            except errors.NotFound:
                return
            except errors.Conflict:
                try:
                    md = (await self.ctx.client.get("v1", "pods", md["name"], namespace=md["namespace"]))["metadata"]
                except errors.NotFound:
                    return
        raise errors.Conflict(f"pod {md['name']} kept changing while its tracking finalizer was removed")

    async def _delete_pod(self, key: Key, pod: dict[str, Any]) -> None:
        md = pod["metadata"]
        await self._untrack(pod)  # a pod the controller stops itself is not counted (as upstream)
        try:
            await self.ctx.client.delete("v1", "pods", md["name"], namespace=md["namespace"],
                                         preconditions={"uid": md["uid"]})
        except (errors.NotFound, errors.Conflict):
            self.expectations.deletion_observed(key, md["uid"])
        except Exception:
            self.expectations.deletion_observed(key, md["uid"])
            raise

    async def _write_status(self, job: dict[str, Any], status: dict[str, Any]) -> dict[str, Any] | None:
        """Patch the status under the version read; the Job as written (None: it is gone)."""
        old = job.get("status") or {}
        if old == status:
            return job
        patch = {"metadata": {"resourceVersion": job["metadata"]["resourceVersion"]}, "status": merge_patch(old, status)}
        try:
            written: dict[str, Any] = await self.ctx.client.patch(
                API_VERSION, "jobs", job["metadata"]["name"], patch, namespace=job["metadata"]["namespace"],
                subresource="status")
        except errors.NotFound:
            return None
        return written

    async def _expire(self, job: dict[str, Any]) -> None:
        """ttlSecondsAfterFinished is up: delete the Job (only the one whose uid we read), pods first."""
        md = job["metadata"]
        try:
            await self.ctx.client.delete(API_VERSION, "jobs", md["name"], namespace=md["namespace"],
                                         preconditions={"uid": md["uid"], "resourceVersion": md["resourceVersion"]},
                                         propagation_policy="Foreground")
        except (errors.NotFound, errors.Conflict):
            pass
