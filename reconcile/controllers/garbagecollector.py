"""Garbage collector: ownerReferences made real (Background, Foreground and Orphan deletion).

Design: one shared informer per served resource (discovered, and refreshed when CRDs change)
instead of upstream's separate metadata graph. The informers' `owner` and `uid` indexes are
the graph: "dependents of X" is `by_index("owner", uid)` over every store, "does owner X
exist" is `by_index("uid", uid)`, confirmed with a live GET before anything is deleted (a
cache that has not caught up must not kill a live dependent). Informers are shared with the
other controllers, so pods and ReplicaSets are cached once. Events are not watched (they
are never owners and upstream ignores them too).

Work items are keys ("item", "<apiVersion>|<plural>|<namespace>|<name>"): an object whose
owners must be checked, or an owner being deleted with the `orphan` / `foregroundDeletion`
finalizer whose dependents must be handled first.
"""

from __future__ import annotations

import logging
from typing import Any

from reconcile.client import discovery, informer
from reconcile.controllers import context
from reconcile.controllers import informers as informers_mod
from reconcile.core import errors, meta
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
IGNORED = frozenset({("", "events"), ("events.k8s.io", "events")})
DISCOVERY_KEY = ("discovery", "")
NOT_SYNCED_RETRY = 0.5

Key = tuple[str, str]


def _item_key(api_version: str, plural: str, obj: dict[str, Any]) -> Key:
    md = obj.get("metadata") or {}
    return ("item", f"{api_version}|{plural}|{md.get('namespace') or ''}|{md.get('name') or ''}")


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def _refs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list((obj.get("metadata") or {}).get("ownerReferences") or [])


class GarbageCollector:
    """Owns the `garbagecollector` engine controller and one informer per served resource."""

    def __init__(self, ctx: context.ControllerContext) -> None:
        self.ctx = ctx
        self.controller = ctx.controller("garbagecollector", self.reconcile, lookup=self._lookup)
        # Invariant: every resource in `_resources` has an informer in ctx.informers with our handlers.
        self._resources: dict[tuple[str, str], discovery.ApiResource] = {}  # (api_version, plural)
        self._kinds: dict[tuple[str, str], discovery.ApiResource] = {}  # (group, kind)

    # --- discovery --------------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Discover the served resources and register informers (before the informers start)."""
        await self._refresh()
        crds = self.ctx.informers.get("apiextensions.k8s.io/v1", "customresourcedefinitions")
        wake = lambda *_: self.controller.enqueue(DISCOVERY_KEY, after=0.2)  # noqa: E731
        crds.add_handler(on_add=wake, on_update=wake, on_delete=wake)

    async def _refresh(self) -> None:
        served = {}
        for res in await self.ctx.client.discover(refresh=True):
            if "/" in res.plural or (res.group, res.plural) in IGNORED:
                continue
            if not {"list", "watch", "delete"} <= set(res.verbs or ()):
                continue
            served[(res.api_version, res.plural)] = res
        for key in list(self._resources):
            if key not in served:
                del self._resources[key]
                await self.ctx.informers.drop(*key)
        for key, res in served.items():
            if key not in self._resources:
                self._resources[key] = res
                self._watch(res)
        self._kinds = {(res.group, res.kind): res for res in served.values()}

    def _watch(self, res: discovery.ApiResource) -> None:
        inf = self.ctx.informers.get(res.api_version, res.plural)
        api_version, plural = res.api_version, res.plural

        def on_add(obj: dict[str, Any]) -> None:
            if _refs(obj) or self._deleting_with_policy(obj):
                self.controller.enqueue(_item_key(api_version, plural, obj))

        def on_update(old: dict[str, Any], new: dict[str, Any]) -> None:
            old_md, new_md = old.get("metadata") or {}, new.get("metadata") or {}
            if (old_md.get("ownerReferences") != new_md.get("ownerReferences")
                    or old_md.get("finalizers") != new_md.get("finalizers")
                    or (new_md.get("deletionTimestamp") and not old_md.get("deletionTimestamp"))):
                on_add(new)

        def on_delete(obj: dict[str, Any]) -> None:
            uid = (obj.get("metadata") or {}).get("uid")
            if uid:
                for dep_res, dep in self._dependents(uid):
                    self.controller.enqueue(_item_key(dep_res[0], dep_res[1], dep))
            for ref in _refs(obj):  # an owner waiting in foreground deletion may now be free
                owner = self._cached_owner(ref)
                if owner is not None:
                    self.controller.enqueue(_item_key(owner[0], owner[1], owner[2]))

        inf.add_handler(on_add=on_add, on_update=on_update, on_delete=on_delete)

    # --- the graph, from the informers' indexes ---------------------------------------------------

    def _stores(self) -> list[tuple[tuple[str, str], informer.Informer]]:
        known = self.ctx.informers.known()
        return [(key, known[key]) for key in self._resources if key in known]

    def _dependents(self, uid: str) -> list[tuple[tuple[str, str], dict[str, Any]]]:
        return [(key, obj) for key, inf in self._stores() for obj in inf.store.by_index(informer.INDEX_OWNER, uid)]

    def _cached_owner(self, ref: dict[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
        res = self._kinds.get((_group(str(ref.get("apiVersion") or "")), str(ref.get("kind") or "")))
        if res is None:
            return None
        inf = self.ctx.informers.known().get((res.api_version, res.plural))
        if inf is None:
            return None
        found = inf.store.by_index(informers_mod.INDEX_UID, str(ref.get("uid") or ""))
        return (res.api_version, res.plural, found[0]) if found else None

    def _lookup(self, key: Key) -> dict[str, Any] | None:
        """The cached object behind a work item key (for reports about it)."""
        if key[0] != "item":
            return None
        api_version, plural, namespace, name = key[1].split("|", 3)
        inf = self.ctx.informers.known().get((api_version, plural))
        return inf.store.get(namespace, name) if inf is not None else None

    @staticmethod
    def _deleting_with_policy(obj: dict[str, Any]) -> bool:
        md = obj.get("metadata") or {}
        return bool(md.get("deletionTimestamp")) and bool({ORPHAN, FOREGROUND} & set(md.get("finalizers") or []))

    # --- reconcile ----------------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> controller_mod.Result | None:
        if key == DISCOVERY_KEY:
            await self._refresh()
            await self.ctx.informers.start()
            return None
        if not all(inf.has_synced for _, inf in self._stores()):
            return controller_mod.Result(requeue_after=NOT_SYNCED_RETRY)
        api_version, plural, namespace, name = key[1].split("|", 3)
        inf = self.ctx.informers.known().get((api_version, plural))
        obj = inf.store.get(namespace, name) if inf is not None else None
        if obj is None:
            return None
        res = self._resources.get((api_version, plural))
        if res is None:
            return None
        try:
            if self._deleting_with_policy(obj):
                return await self._finish_owner(res, obj)
            if _refs(obj):
                await self._check_owners(res, obj)
        except errors.Conflict:
            return controller_mod.Result(requeue_after=0.05)  # the cache was behind: look again
        return None

    async def _owner_state(self, res: discovery.ApiResource, obj: dict[str, Any], ref: dict[str, Any]) -> str:
        """"solid", "dangling", "waiting" (owner in foreground deletion), or "unknown" (kind not served)."""
        owner_res = self._kinds.get((_group(str(ref.get("apiVersion") or "")), str(ref.get("kind") or "")))
        if owner_res is None:
            return "unknown"
        if owner_res.namespaced and not res.namespaced:
            return "dangling"  # a cluster-scoped object cannot be owned by a namespaced one
        namespace = (obj.get("metadata") or {}).get("namespace") if owner_res.namespaced else None
        cached = self._cached_owner(ref)
        owner = cached[2] if cached else None
        if owner is None:
            try:
                owner = await self.ctx.client.get(owner_res.api_version, owner_res.plural, ref.get("name") or "",
                                                  namespace=namespace)
            except errors.NotFound:
                return "dangling"
            if (owner.get("metadata") or {}).get("uid") != ref.get("uid"):
                return "dangling"
        md = owner.get("metadata") or {}
        if md.get("deletionTimestamp") and FOREGROUND in (md.get("finalizers") or []):
            return "waiting"
        return "solid"

    async def _check_owners(self, res: discovery.ApiResource, obj: dict[str, Any]) -> None:
        states = {ref.get("uid"): await self._owner_state(res, obj, ref) for ref in _refs(obj)}
        values = set(states.values())
        md = obj["metadata"]
        if "solid" in values or "unknown" in values:
            if "dangling" in values or "waiting" in values:
                refs = []
                for ref in _refs(obj):
                    state = states.get(ref.get("uid"))
                    if state == "dangling":
                        continue
                    if state == "waiting":
                        ref = {**ref, "blockOwnerDeletion": False}
                    refs.append(ref)
                await self._patch_meta(res, obj, {"ownerReferences": refs or None})
            return
        if md.get("deletionTimestamp"):
            return
        policy = "Foreground" if "waiting" in values and self._dependents(md["uid"]) else "Background"
        try:
            await self.ctx.client.delete(res.api_version, res.plural, md["name"], namespace=md.get("namespace"),
                                         propagation_policy=policy, preconditions={"uid": md["uid"]})
        except (errors.NotFound, errors.Conflict):
            pass
        log.info("garbage collected %s %s/%s (%s)", res.kind, md.get("namespace") or "", md["name"], policy)

    async def _finish_owner(self, res: discovery.ApiResource, obj: dict[str, Any]) -> controller_mod.Result | None:
        """Orphan: strip our ownerReference from dependents; Foreground: delete dependents; then the finalizer."""
        md = obj["metadata"]
        uid = md["uid"]
        finalizers = list(md.get("finalizers") or [])
        dependents = self._dependents(uid)
        if ORPHAN in finalizers:
            for dep_key, dep in dependents:
                dep_res = self._resources.get(dep_key)
                if dep_res is not None:
                    refs = [r for r in _refs(dep) if r.get("uid") != uid]
                    await self._patch_meta(dep_res, dep, {"ownerReferences": refs or None})
            await self._patch_meta(res, obj, {"finalizers": [f for f in finalizers if f != ORPHAN] or None})
            return None
        blocking = 0
        for dep_key, dep in dependents:
            dep_res = self._resources.get(dep_key)
            ref = next((r for r in _refs(dep) if r.get("uid") == uid), {})
            if ref.get("blockOwnerDeletion"):
                blocking += 1
            dep_md = dep["metadata"]
            if dep_res is None or dep_md.get("deletionTimestamp"):
                continue
            policy = "Foreground" if self._dependents(dep_md["uid"]) else "Background"
            try:
                await self.ctx.client.delete(dep_res.api_version, dep_res.plural, dep_md["name"],
                                             namespace=dep_md.get("namespace"), propagation_policy=policy,
                                             preconditions={"uid": dep_md["uid"]})
            except (errors.NotFound, errors.Conflict):
                pass
        if blocking:
            return None  # each dependent's deletion wakes this owner again
        await self._patch_meta(res, obj, {"finalizers": [f for f in finalizers if f != FOREGROUND] or None})
        return None

    async def _patch_meta(self, res: discovery.ApiResource, obj: dict[str, Any], changes: dict[str, Any]) -> None:
        """Merge-patch metadata under the object's resourceVersion; a lost race raises Conflict (retry)."""
        md = obj["metadata"]
        patch = {"metadata": {**changes, "resourceVersion": md["resourceVersion"]}}
        try:
            await self.ctx.client.patch(res.api_version, res.plural, md["name"], patch, namespace=md.get("namespace"))
        except errors.NotFound:
            return
        log.debug("garbage collector patched %s %s", res.kind, meta.key_of(obj))
