"""Namespace controller: a deleted namespace is emptied, then goes.

The API server keeps a namespace that still has content in `Terminating` (deletionTimestamp
set, no finalizers) and refuses new content in it. This controller deletes everything in
every namespaced resource, and once nothing is left sends DELETE again: an empty namespace
with no finalizers is then removed by the server.
"""

from __future__ import annotations

import logging

from reconcile.client import discovery
from reconcile.controllers import context
from reconcile.core import errors
from reconcile.engine import controller as controller_mod

log = logging.getLogger(__name__)

CONTENT_RETRY = 1.0  # seconds between checks while objects with finalizers or grace periods remain
DISCOVERY_TTL = 30.0


class NamespaceController:
    """Owns the `namespace` engine controller."""

    def __init__(self, ctx: context.ControllerContext) -> None:
        self.ctx = ctx
        self.namespaces = ctx.informers.get("v1", "namespaces")
        self.controller = ctx.controller("namespace", self.reconcile)
        self.controller.watch(self.namespaces)
        self._resources: list[discovery.ApiResource] = []
        self._discovered_at: float | None = None

    async def _namespaced(self) -> list[discovery.ApiResource]:
        now = self.ctx.clock.now()
        if self._discovered_at is None or now - self._discovered_at > DISCOVERY_TTL:
            found = await self.ctx.client.discover(refresh=True)
            self._resources = [r for r in found if r.namespaced and "/" not in r.plural
                               and {"list", "delete"} <= set(r.verbs or ())]
            self._discovered_at = now
        return self._resources

    async def reconcile(self, key: controller_mod.Key) -> controller_mod.Result | None:
        _, name = key
        ns = self.namespaces.store.get(None, name)
        if ns is None or not (ns.get("metadata") or {}).get("deletionTimestamp"):
            return None
        remaining = 0
        for res in await self._namespaced():
            try:
                await self.ctx.client.delete_collection(res.api_version, res.plural, namespace=name)
                left = await self.ctx.client.list(res.api_version, res.plural, namespace=name, limit=1)
            except (errors.NotFound, errors.MethodNotAllowed):
                continue
            if left.get("items"):
                remaining += 1
        if remaining:
            log.info("namespace %s: %d resources still have objects; waiting", name, remaining)
            return controller_mod.Result(requeue_after=CONTENT_RETRY)
        try:
            result = await self.ctx.client.delete("v1", "namespaces", name,
                                                  preconditions={"uid": ns["metadata"]["uid"]})
        except (errors.NotFound, errors.Conflict):
            return None
        if result.get("kind") == "Namespace":  # still there: the server saw content we did not
            return controller_mod.Result(requeue_after=CONTENT_RETRY / 4)
        log.info("namespace %s deleted", name)
        return None
