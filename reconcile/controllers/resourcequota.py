"""ResourceQuota controller: each quota's `status.hard` is its `spec.hard`, and `status.used` is
recounted from what the namespace holds (upstream's resource quota controller).

Admission charges a quota before an object is stored; this controller is what gives usage back:
it recounts when an object is deleted, when a pod finishes (a finished pod uses no compute quota),
when a pod terminating past its grace period stops counting, when a quota's spec changes, and
every `resync` seconds for each quota (a charge whose object was never stored is released then).
It does not recount on creates: admission already charged those, and a recount racing a create
could give its slot away (upstream's choice too).

Objects are read from shared informers. Pods' informer always runs; the informer of any other
resource a quota names (`count/deployments.apps`, `configmaps`, `services`, ...) starts the first
time a quota needs it, so resources nobody limits cost nothing.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from reconcile.client import informer as informer_mod
from reconcile.controllers import context
from reconcile.core import errors, meta
from reconcile.core import quota as quota_math
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

RESYNC = 300.0  # seconds between full recounts of one quota (upstream's --resource-quota-sync-period)
CONFLICT_RETRY = 0.2  # a status write lost to an admission charge: recount soon, from the newer quota
SYNC_TIMEOUT = 60.0
DISCOVERY_TTL = 30.0  # a resource a quota names but the server does not serve is looked for again after this


class ResourceQuotaController:
    """Owns the `resourcequota` engine controller."""

    def __init__(self, ctx: context.ControllerContext, *, resync: float = RESYNC) -> None:
        self.ctx = ctx
        self.resync = resync
        self.quotas = ctx.informers.get("v1", "resourcequotas")
        self.controller = ctx.controller("resourcequota", self.reconcile,
                                         lookup=lambda key: self.quotas.store.get(*key))
        self.quotas.add_handler(on_add=self._quota_added, on_update=self._quota_updated)
        self._monitors: dict[tuple[str, str], informer_mod.Informer] = {}
        self._discovered_at: float | None = None
        self._monitor(("", "pods"), ctx.informers.get("v1", "pods"))

    # --- what wakes a quota ---------------------------------------------------------------------

    def _quota_added(self, quota: dict[str, Any]) -> None:
        self.controller.queue.add(controller_mod.own_key(quota))

    def _quota_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Only spec changes: status changes are this controller's and admission's own writes."""
        if (old.get("spec") or {}).get("hard") != (new.get("spec") or {}).get("hard") or \
                (old.get("spec") or {}).get("scopes") != (new.get("spec") or {}).get("scopes"):
            self.controller.queue.add(controller_mod.own_key(new))

    def _monitor(self, kind: tuple[str, str], informer: informer_mod.Informer) -> None:
        """Recount the namespace's quotas when an object of `kind` goes, or changes what it uses."""
        evaluator = quota_math.evaluator_for(*kind)
        if evaluator is None:
            return
        self._monitors[kind] = informer

        def changed(old: dict[str, Any], new: dict[str, Any]) -> None:
            if _same_charge_inputs(old, new):
                return  # most updates (pod status) change nothing usage depends on
            now = self._now()
            if not quota_math.equal(evaluator.usage(old, now), evaluator.usage(new, now)):
                self._wake_namespace(new)

        informer.add_handler(on_update=changed, on_delete=self._wake_namespace)

    def _wake_namespace(self, obj: dict[str, Any]) -> None:
        namespace = (obj.get("metadata") or {}).get("namespace")
        if not namespace:
            return
        for quota in self.quotas.store.by_index(informer_mod.INDEX_NAMESPACE, namespace):
            self.controller.queue.add(controller_mod.own_key(quota))

    def _now(self) -> datetime.datetime:
        return self.ctx.clock.wall()

    async def _informer(self, kind: tuple[str, str]) -> informer_mod.Informer | None:
        """The informer for a resource a quota limits, started on first need (None: not served)."""
        found = self._monitors.get(kind)
        if found is not None:
            return found
        group, plural = kind
        served = [r for r in await self.ctx.client.discover() if r.group == group and r.plural == plural]
        now = self.ctx.clock.now()
        if not served and (self._discovered_at is None or now - self._discovered_at > DISCOVERY_TTL):
            self._discovered_at = now  # a CRD created since the last look: ask again, now and then
            served = [r for r in await self.ctx.client.discover(refresh=True)
                      if r.group == group and r.plural == plural]
        if not served:
            return None
        informer = self.ctx.informers.get(served[0].api_version, plural)
        self._monitor(kind, informer)
        await self.ctx.informers.start()
        await informer.wait_synced(timeout=SYNC_TIMEOUT)
        return informer

    # --- the recount ----------------------------------------------------------------------------

    async def reconcile(self, key: controller_mod.Key) -> controller_mod.Result | None:
        namespace, name = key
        quota = self.quotas.store.get(namespace, name)
        if quota is None:
            return None
        spec_hard = (quota.get("spec") or {}).get("hard") or {}
        hard = quota_math.parse_list(spec_hard)
        now = self._now()
        used: quota_math.ResourceList = {}
        kinds = sorted({kind for name_ in hard if (kind := quota_math.resource_of(name_)) is not None})
        next_expiry: float | None = None
        for kind in kinds:
            evaluator = quota_math.evaluator_for(*kind)
            informer = await self._informer(kind) if evaluator is not None else None
            if evaluator is None or informer is None:
                continue  # a resource nobody serves (yet): no usage to report, as upstream
            objects = informer.store.by_index(informer_mod.INDEX_NAMESPACE, namespace)
            used.update(quota_math.usage_of(evaluator, quota, hard, objects, now))
            if kind == ("", "pods"):
                next_expiry = _earliest_grace_end(objects, now)
        status = quota.get("status") or {}
        if not (quota_math.equal(quota_math.parse_list(status.get("hard")), hard)
                and quota_math.equal(quota_math.parse_list(status.get("used")), used)):
            updated = dict(quota, status={**status, "hard": quota_math.format_list(hard),
                                          "used": quota_math.format_list(used)})
            try:
                await self.ctx.client.replace("v1", "resourcequotas", updated, namespace=namespace,
                                              subresource="status")
            except errors.Conflict:
                return controller_mod.Result(requeue_after=CONFLICT_RETRY)
            except errors.NotFound:
                return None
        after = self.resync if next_expiry is None else min(self.resync, next_expiry)
        return controller_mod.Result(requeue_after=after)


def _earliest_grace_end(pods: list[dict[str, Any]], now: datetime.datetime) -> float | None:
    """Seconds until the first charged terminating pod passes its grace period (and stops counting)."""
    soonest: float | None = None
    for pod in pods:
        metadata = pod.get("metadata") or {}
        if not metadata.get("deletionTimestamp") or metadata.get("deletionGracePeriodSeconds") is None:
            continue
        if not quota_math.pod_is_charged(pod, now):
            continue
        try:
            end = meta.parse_time(metadata["deletionTimestamp"]) + datetime.timedelta(
                seconds=int(metadata["deletionGracePeriodSeconds"]))
        except (ValueError, TypeError):
            continue
        left = max(0.0, (end - now).total_seconds()) + 0.5
        soonest = left if soonest is None else min(soonest, left)
    return soonest


def _same_charge_inputs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Usage depends on the spec, a pod's phase and deletion, and (claims) a storage class annotation."""
    def inputs(obj: dict[str, Any]) -> tuple[Any, ...]:
        metadata = obj.get("metadata") or {}
        return (obj.get("spec"), (obj.get("status") or {}).get("phase"), metadata.get("deletionTimestamp"),
                metadata.get("deletionGracePeriodSeconds"), metadata.get("annotations"))
    return inputs(old) == inputs(new)
