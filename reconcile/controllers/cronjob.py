"""CronJob controller: create a Job at each schedule time (upstream's cronjob controller v2).

`cronjobplan.plan` decides from the CronJob, the Jobs it controls and the context's clock (a
FakeClock in tests, so no test waits for a minute to pass); this module creates and deletes Jobs,
writes the status and requeues itself for the next schedule time.
"""

from __future__ import annotations

import logging
from typing import Any

from reconcile.controllers import context, cronjobplan
from reconcile.core import errors, meta
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

API_VERSION = "batch/v1"
KIND = "CronJob"

Key = controller_mod.Key


def cronjob_key_of_job(job: dict[str, Any]) -> Key | None:
    ref = meta.controller_owner(job)
    if ref is None or ref.get("kind") != KIND or not str(ref.get("apiVersion", "")).startswith("batch/"):
        return None
    return ((job.get("metadata") or {}).get("namespace") or "", ref.get("name") or "")


class CronJobController:
    """Owns the `cronjob` engine controller and its informer handlers."""

    def __init__(self, ctx: context.ControllerContext) -> None:
        self.ctx = ctx
        self.cronjobs = ctx.informers.get(API_VERSION, "cronjobs")
        self.jobs = ctx.informers.get(API_VERSION, "jobs")
        self.controller = ctx.controller("cronjob", self.reconcile)
        self.controller.watch(self.cronjobs)
        self.jobs.add_handler(on_add=self._job_changed, on_update=lambda old, new: self._job_changed(new),
                              on_delete=self._job_changed)

    def _job_changed(self, job: dict[str, Any]) -> None:
        key = cronjob_key_of_job(job)
        if key is not None:
            self.controller.enqueue(key)

    async def reconcile(self, key: Key) -> controller_mod.Result | None:
        namespace, name = key
        cronjob = self.cronjobs.store.get(namespace, name)
        if cronjob is None:
            return None
        uid = cronjob["metadata"].get("uid")
        owned = [j for j in self.jobs.store.by_index("namespace", namespace)
                 if (meta.controller_owner(j) or {}).get("uid") == uid]
        decided = cronjobplan.plan(cronjob, owned, self.ctx.clock.wall())
        for job_name in decided.delete:
            await self._delete_job(cronjob, job_name)
        active = list(decided.status.get("active") or [])
        if decided.create is not None:
            created = await self._create_job(cronjob, decided.create)
            if created is None:
                decided.status.pop("lastScheduleTime", None)
                if (cronjob.get("status") or {}).get("lastScheduleTime"):
                    decided.status["lastScheduleTime"] = cronjob["status"]["lastScheduleTime"]
            else:
                active.append(cronjobplan.reference(created))
        if active:
            decided.status["active"] = active
        else:
            decided.status.pop("active", None)
        await self._write_status(cronjob, decided.status)
        for kind, reason, message in decided.events:
            await self.ctx.event(cronjob, reason=reason, message=message, type=kind)
        if decided.requeue_after is not None:
            return controller_mod.Result(requeue_after=decided.requeue_after + 0.1)
        return None

    async def _create_job(self, cronjob: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
        name = body["metadata"]["name"]
        try:
            created = await self.ctx.client.create(API_VERSION, "jobs", body, namespace=cronjob["metadata"]["namespace"])
        except errors.AlreadyExists:
            # this schedule time already ran: ours (a restart between the create and the status write)
            # is listed as active again; someone else's Job of that name is left alone
            try:
                found: dict[str, Any] = await self.ctx.client.get(API_VERSION, "jobs", name,
                                                                  namespace=cronjob["metadata"]["namespace"])
            except errors.NotFound:
                return None
            ours = (meta.controller_owner(found) or {}).get("uid") == cronjob["metadata"].get("uid")
            return found if ours and not cronjobplan.finished_as(found) else None
        except errors.ApiError as exc:
            await self.ctx.event(cronjob, reason="FailedCreate", message=f"Error creating job: {exc}", type="Warning")
            raise
        await self.ctx.event(cronjob, reason="SuccessfulCreate", message=f"Created job {name}")
        return created

    async def _delete_job(self, cronjob: dict[str, Any], name: str) -> None:
        try:
            await self.ctx.client.delete(API_VERSION, "jobs", name, namespace=cronjob["metadata"]["namespace"],
                                         propagation_policy="Background")
        except errors.NotFound:
            return
        await self.ctx.event(cronjob, reason="SuccessfulDelete", message=f"Deleted job {name}")

    async def _write_status(self, cronjob: dict[str, Any], status: dict[str, Any]) -> None:
        old = cronjob.get("status") or {}
        if old == status:
            return
        patch = {"metadata": {"resourceVersion": cronjob["metadata"]["resourceVersion"]},
                 "status": {**{k: None for k in old if k not in status}, **status}}
        try:
            await self.ctx.client.patch(API_VERSION, "cronjobs", cronjob["metadata"]["name"], patch,
                                        namespace=cronjob["metadata"]["namespace"], subresource="status")
        except errors.NotFound:
            pass
