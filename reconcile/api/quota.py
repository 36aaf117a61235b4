"""ResourceQuota admission: a write that would take a namespace past a quota is refused, and an
admitted one is charged to the quota before it is stored (upstream's ResourceQuota plugin).

Charging is a compare-and-swap of each affected quota's `status.used` at the resourceVersion the
check was made against, through the server's own storage. Of two requests racing for the last
slot, one swap wins; the loser reads the quotas again (consistently), sees the slot taken, and is
refused. Within one API server, requests of one namespace also take turns on a lock, so they
rarely lose a swap to each other; the swap is what keeps several servers honest.

As upstream: a quota is enforced once the quota controller has filled in `status.hard` (until
then it matches nothing); a request is never charged twice for what an update does not add; dry
runs are checked but not charged; an object stored after a charge that then fails to be stored
stays charged until the controller recounts (it releases it).
"""

from __future__ import annotations

import asyncio
import copy
import datetime
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from reconcile.api import admission
from reconcile.core import errors
from reconcile.core import quota as quota_math

CHARGE_ATTEMPTS = 10  # swaps lost in a row (to other servers or the controller) before giving up


@dataclass
class QuotaAccess:
    """How the plugin reads and writes quotas (the server wires these to its caches and storage)."""

    list: Callable[[str], Awaitable[list[dict[str, Any]]]]  # namespace -> quotas, from the cache
    list_fresh: Callable[[str], Awaitable[list[dict[str, Any]]]]  # namespace -> quotas, a consistent read
    write_status: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]  # CAS on resourceVersion; Conflict
    now: Callable[[], datetime.datetime] = field(default=lambda: datetime.datetime.now(datetime.UTC))


def _rv(quota: dict[str, Any]) -> int:
    try:
        return int((quota.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class ResourceQuota(admission.Plugin):
    name = "ResourceQuota"

    def __init__(self, access: QuotaAccess) -> None:
        self.access = access
        self._locks: dict[str, asyncio.Lock] = {}
        # The quotas this server wrote last, by (namespace, name): newer than a cache that has not
        # seen the write yet (upstream's look-aside of updated quotas).
        self._written: dict[tuple[str, str], dict[str, Any]] = {}

    async def validate(self, attributes: admission.Attributes) -> None:
        resource = attributes.resource
        if (resource.group, resource.plural) == ("", "resourcequotas") and not attributes.subresource and \
                attributes.operation in (admission.CREATE, admission.UPDATE):
            causes = quota_math.validate_quota(attributes.obj or {})
            if causes:
                raise errors.Invalid.for_object("ResourceQuota", attributes.object_name(), causes)
        if not attributes.namespace or not resource.namespaced:
            return
        evaluator = quota_math.evaluator_for(resource.group, resource.plural)
        if evaluator is None or not evaluator.charges(attributes.operation, attributes.subresource):
            return
        quotas = await self.access.list(attributes.namespace)
        if not quotas:
            return
        lock = self._locks.setdefault(attributes.namespace, asyncio.Lock())
        async with lock:
            await self._admit(attributes, evaluator, self._newest(quotas))

    def _newest(self, quotas: list[dict[str, Any]]) -> list[dict[str, Any]]:
        result = []
        for quota in quotas:
            metadata = quota.get("metadata") or {}
            mine = self._written.get((metadata.get("namespace") or "", metadata.get("name") or ""))
            result.append(mine if mine is not None and _rv(mine) > _rv(quota) else quota)
        return result

    async def _admit(self, attributes: admission.Attributes, evaluator: quota_math.Evaluator,
                     quotas: list[dict[str, Any]]) -> None:
        pending = quotas
        last: errors.ApiError | None = None
        for attempt in range(CHARGE_ATTEMPTS):
            if attempt:
                wanted = {(q.get("metadata") or {}).get("name") for q in pending}
                pending = [q for q in await self.access.list_fresh(attributes.namespace or "")
                           if (q.get("metadata") or {}).get("name") in wanted]
            charges = self.check(attributes, evaluator, pending)
            if attributes.dry_run:
                return
            failed = []
            for updated in charges:
                try:
                    written = await self.access.write_status(updated)
                except errors.Conflict as exc:
                    failed.append(updated)
                    last = exc
                except errors.NotFound:
                    continue  # deleted meanwhile: nothing left to charge
                else:
                    metadata = written["metadata"]
                    self._written[(metadata.get("namespace") or "", metadata["name"])] = written
            if not failed:
                return
            pending = failed
        assert last is not None
        raise last

    def check(self, attributes: admission.Attributes, evaluator: quota_math.Evaluator,
              quotas: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Upstream's checkRequest: refuse (403) what a matching quota cannot take; return the quotas
        with their new `status.used` (only those whose usage changes)."""
        obj = attributes.obj or {}
        now = self.access.now()
        interesting: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []
        for quota in quotas:
            status = quota.get("status") or {}
            hard = quota_math.parse_list(status.get("hard"))
            if not quota_math.quota_matches(evaluator, quota, hard, obj):
                continue
            name = (quota.get("metadata") or {}).get("name")
            restricted = evaluator.matching(hard)
            problem = evaluator.constraints(restricted, obj)
            if problem:
                raise admission.forbidden(attributes, f"failed quota: {name}: {problem}")
            used = quota_math.parse_list(status.get("used"))
            unknown = [r for r in restricted if r not in used]
            if unknown:
                raise admission.forbidden(attributes, f"status unknown for quota: {name}, resources: "
                                                      f"{','.join(sorted(unknown))}")
            interesting.append((quota, hard, used))
        if not interesting:
            return []
        delta = evaluator.usage(obj, now)
        negative = sorted(r for r, q in delta.items() if q.value < 0)
        if negative:
            raise admission.forbidden(attributes, f"quota usage is negative for resource(s): {','.join(negative)}")
        old = attributes.old
        if attributes.operation == admission.UPDATE and old is not None and \
                (old.get("metadata") or {}).get("resourceVersion"):
            delta = quota_math.subtract_non_negative(delta, evaluator.usage(old, now))
        delta = quota_math.remove_zeros(delta)
        if not delta:
            return []
        charged = []
        for quota, hard, used in interesting:
            requested = quota_math.mask(delta, hard)
            if not requested:
                continue
            new_used = quota_math.add(used, requested)
            over = quota_math.exceeded(quota_math.mask(new_used, requested), hard)
            if over:
                raise admission.forbidden(attributes, (
                    f"exceeded quota: {(quota.get('metadata') or {}).get('name')}, "
                    f"requested: {quota_math.pretty(quota_math.mask(requested, over))}, "
                    f"used: {quota_math.pretty(quota_math.mask(used, over))}, "
                    f"limited: {quota_math.pretty(quota_math.mask(hard, over))}"))
            updated = copy.deepcopy(quota)
            updated.setdefault("status", {})["used"] = {
                **(quota.get("status") or {}).get("used", {}),
                **quota_math.format_list(quota_math.mask(new_used, requested))}
            charged.append(updated)
        return charged
