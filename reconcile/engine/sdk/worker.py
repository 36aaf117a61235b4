"""One watched resource of an operator: informers, a controller, and the per-object reconcile.

Level-triggered: each run reads the object from the informer cache and works out what is due
(finalizer, timers and daemons, resume, create, update, delete) from the object alone (its
annotations carry the progress), so restarts and missed events cost nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from dataclasses import dataclass, field
from typing import Any

from reconcile.client import aio, discovery, informer
from reconcile.core import errors
from reconcile.engine import badobjects
from reconcile.engine import clock as clock_mod
from reconcile.engine import controller as controller_mod
from reconcile.engine import metrics as metrics_mod
from reconcile.engine.sdk import background, filters, handling, indexing, invocation, state
from reconcile.engine.sdk import registry as registry_mod

log = logging.getLogger(__name__)

Key = tuple[str, str]


@dataclass
class Runtime:
    """What all resources of one operator share."""

    client: aio.AsyncClient
    registry: registry_mod.Registry
    clock: clock_mod.Clock
    executor: concurrent.futures.Executor
    memo: invocation.Memo
    indexes: dict[str, indexing.Index] = field(default_factory=dict)
    workers: int = 32
    metrics: metrics_mod.Metrics | None = None
    reporter: badobjects.Reporter | None = None  # objects that do not decode, or that handling fails on


class _Gone(Exception):
    """The object disappeared while we were writing to it."""


class ResourceWorker:
    """Handlers of one resource, run per object through a work queue."""

    def __init__(
        self,
        runtime: Runtime,
        ref: registry_mod.ResourceRef,
        api: discovery.ApiResource,
        *,
        namespaces: list[str] | None,
    ) -> None:
        self.runtime = runtime
        self.ref = ref
        self.api = api
        self.has_status = "status" in api.subresources
        reg = runtime.registry
        self.handlers = {cause: handling.handlers_for(reg, ref, cause) for cause in ("create", "update", "resume", "delete")}
        self.needs_essence = bool(reg.for_resource(ref, "create", "update", "field"))
        self.finalizing = [h for h in reg.for_resource(ref, "delete", "timer", "daemon") if h.requires_finalizer]
        self.event_handlers = reg.for_resource(ref, "event")
        self.indexers = [indexing.Indexer(h, {"memo": runtime.memo}) for h in reg.for_resource(ref, "index")]
        for indexer in self.indexers:
            runtime.indexes[indexer.handler.id] = indexer.index
        host = background.Host(get=self.get, changed_at=self._changed_at, write_status=self._write_any,
                               context=self._context)
        self.background = background.Background(host, reg.for_resource(ref, "timer", "daemon"))
        scopes: list[str | None] = [None] if not api.namespaced or not namespaces else list(namespaces)
        self.informers = {
            scope: informer.Informer(runtime.client, api.api_version, api.plural, namespace=scope) for scope in scopes
        }
        if runtime.reporter is not None:
            for inf in self.informers.values():
                runtime.reporter.watch(inf)
        self.controller = controller_mod.Controller(
            f"sdk:{api.group_resource}", self.reconcile, workers=runtime.workers, clock=runtime.clock,
            metrics=runtime.metrics, reporter=runtime.reporter, lookup=self.get,
        )
        for inf in self.informers.values():
            inf.add_handler(on_add=self._on_add, on_update=self._on_update, on_delete=self._on_delete)
            self.controller.watch(inf)
        # Invariant: _written[key] is the resourceVersion of our newest write not yet seen in the
        # cache; while the cache is older, a reconcile would act on stale progress, so it waits.
        self._written: dict[Key, int] = {}
        self._changed: dict[Key, float] = {}
        self._memos: dict[str, invocation.Memo] = {}
        self._resumed: set[str] = set()  # uids whose resume handlers ran in this operator's lifetime
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    async def start_informers(self) -> None:
        for inf in self.informers.values():
            await inf.start()

    async def wait_synced(self) -> None:
        for inf in self.informers.values():
            await inf.wait_synced()

    def start_controller(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.controller.run(), name=self.controller.name)

    async def stop(self, *, timeout: float) -> None:
        if self._task is not None:
            await self.controller.stop(timeout=timeout)
            self._task.cancel()
        await self.background.stop_all()
        for inf in self.informers.values():
            await inf.stop()

    # --- cache and informer hooks --------------------------------------------------------------

    def get(self, key: Key) -> dict[str, Any] | None:
        inf = self.informers.get(None) or self.informers.get(key[0])
        return inf.store.get(key[0], key[1]) if inf is not None else None

    def _changed_at(self, key: Key) -> float:
        return self._changed.get(key, self.runtime.clock.now())

    async def _on_add(self, obj: dict[str, Any]) -> None:
        await self._observed("ADDED", obj)

    async def _on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        await self._observed("MODIFIED", new)

    async def _on_delete(self, obj: dict[str, Any]) -> None:
        key = controller_mod.own_key(obj)
        self._changed.pop(key, None)
        uid = (obj.get("metadata") or {}).get("uid", "")
        self._memos.pop(uid, None)
        self._resumed.discard(uid)
        for indexer in self.indexers:
            indexer.remove(key)
        await self._dispatch_event("DELETED", obj)

    async def _observed(self, kind: str, obj: dict[str, Any]) -> None:
        key = controller_mod.own_key(obj)
        self._changed[key] = self.runtime.clock.now()
        for indexer in self.indexers:
            indexer.update(key, obj)
        await self._dispatch_event(kind, obj)

    async def _dispatch_event(self, kind: str, obj: dict[str, Any]) -> None:
        """Raw events go to `on.event` handlers at once: no progress, no retries (as kopf)."""
        for handler in self.event_handlers:
            ctx = self._context(obj)
            kwargs = {**invocation.object_kwargs(obj), **ctx.kwargs, "event": {"type": kind, "object": obj},
                      "type": kind, "param": handler.param, "patch": invocation.Patch(),
                      "logger": invocation.object_logger(ctx.logger_name, obj)}
            if not background.wanted(handler, obj, kwargs):
                continue
            try:
                await invocation.call(handler.fn, kwargs, executor=self.runtime.executor)
            except Exception:
                log.exception("event handler %r failed", handler.id)

    def _context(self, body: dict[str, Any]) -> handling.Invocation:
        uid = (body.get("metadata") or {}).get("uid")
        memo = self.runtime.memo
        if uid:
            memo = self._memos.get(uid) or self._memos.setdefault(uid, invocation.Memo(self.runtime.memo))
        return handling.Invocation(
            kwargs={"memo": memo, **self.runtime.indexes, "resource": self.api, "client": self.runtime.client},
            executor=self.runtime.executor,
            clock=self.runtime.clock,
            logger_name=f"reconcile.operator.{self.api.plural}",
        )

    # --- reconcile -----------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> controller_mod.Result | None:
        body = self.get(key)
        if body is None:
            await self.background.stop_object(key)
            self._written.pop(key, None)
            return None
        if self._stale(key, body):
            return None
        try:
            if (body.get("metadata") or {}).get("deletionTimestamp"):
                return await self._deleting(key, body)
            return await self._living(key, body)
        except _Gone:
            return None
        except (errors.Conflict, errors.Invalid) as exc:  # our resourceVersion test lost a race
            log.debug("%s/%s changed under us (%s); waiting for the newer version", *key, exc)
            return controller_mod.Result(requeue_after=1.0)

    def _stale(self, key: Key, body: dict[str, Any]) -> bool:
        written = self._written.get(key)
        if written is None:
            return False
        try:
            seen = int((body.get("metadata") or {}).get("resourceVersion") or 0)
        except ValueError:
            return False
        if seen < written:
            return True
        del self._written[key]
        return False

    async def _living(self, key: Key, body: dict[str, Any]) -> controller_mod.Result | None:
        body = await self._sync_finalizer(key, body)
        stops = self.background.sync(key, body)
        if stops:
            await asyncio.gather(*stops)
        uid = body["metadata"].get("uid", "")
        ctx = self._context(body)
        last = state.last_handled(body) if self.needs_essence else None
        if self.needs_essence and last is None:
            self._resumed.add(uid)
            outcome = await handling.run_cause(body, "create", self.handlers["create"], old=None, ctx=ctx,
                                               write=self._writer(key), record_essence=True)
            return self._result(outcome)
        if uid not in self._resumed:
            if self.handlers["resume"]:
                outcome = await handling.run_cause(body, "resume", self.handlers["resume"], old=None, ctx=ctx,
                                                   write=self._writer(key), record_essence=False)
                if not outcome.done:
                    return self._result(outcome)
                body = outcome.body
            self._resumed.add(uid)
        if last is not None and state.essence(body) != last:
            outcome = await handling.run_cause(body, "update", self.handlers["update"], old=last, ctx=ctx,
                                               write=self._writer(key), record_essence=True)
            return self._result(outcome)
        return None

    async def _deleting(self, key: Key, body: dict[str, Any]) -> controller_mod.Result | None:
        await self.background.stop_object(key)
        self._resumed.discard(body["metadata"].get("uid", ""))
        if state.FINALIZER not in (body["metadata"].get("finalizers") or []):
            return None
        outcome = await handling.run_cause(body, "delete", self.handlers["delete"], old=state.last_handled(body),
                                           ctx=self._context(body), write=self._writer(key), record_essence=False)
        if not outcome.done:
            return self._result(outcome)
        await self._finalizer_patch(key, outcome.body, add=False)
        self._memos.pop(body["metadata"].get("uid", ""), None)
        return None

    @staticmethod
    def _result(outcome: handling.CauseOutcome) -> controller_mod.Result | None:
        return None if outcome.done else controller_mod.Result(requeue_after=outcome.requeue_after)

    # --- writes --------------------------------------------------------------------------------

    def _needs_finalizer(self, body: dict[str, Any]) -> bool:
        meta = body.get("metadata") or {}
        return any(
            filters.matches(meta.get("labels"), h.labels) and filters.matches(meta.get("annotations"), h.annotations)
            for h in self.finalizing
        )

    async def _sync_finalizer(self, key: Key, body: dict[str, Any]) -> dict[str, Any]:
        has = state.FINALIZER in (body["metadata"].get("finalizers") or [])
        need = self._needs_finalizer(body)
        if need == has:
            return body
        return await self._finalizer_patch(key, body, add=need)

    async def _finalizer_patch(self, key: Key, body: dict[str, Any], *, add: bool) -> dict[str, Any]:
        """A JSON patch guarded by a resourceVersion test, so it never clobbers someone else's list."""
        meta = body["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]}]
        if add:
            ops.append({"op": "add", "path": "/metadata/finalizers", "value": [*finalizers, state.FINALIZER]})
        elif state.FINALIZER in finalizers:
            ops.append({"op": "remove", "path": f"/metadata/finalizers/{finalizers.index(state.FINALIZER)}"})
        else:
            return body
        try:
            result = await self.runtime.client.patch(self.api.api_version, self.api.plural, key[1], ops,
                                                     namespace=key[0] or None, patch_type="json")
        except errors.NotFound:
            raise _Gone() from None
        self._mark_written(key, result)
        return result

    def _writer(self, key: Key) -> handling.Writer:
        async def write(body: dict[str, Any], main: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
            return await self._write(key, body, main, status)

        return write

    async def _write_any(self, body: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
        main = {k: v for k, v in patch.items() if k != "status"}
        try:
            return await self._write(controller_mod.own_key(body), body, main, dict(patch.get("status") or {}))
        except _Gone:
            return body

    async def _write(self, key: Key, body: dict[str, Any], main: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Main fields first (progress lives there), then status through /status if the kind has one."""
        if status and not self.has_status:
            main, status = state.combine(main, {"status": status}), {}
        client = self.runtime.client
        result = body
        try:
            if main:
                result = await client.patch(self.api.api_version, self.api.plural, key[1], main,
                                            namespace=key[0] or None)
            if status:
                result = await client.patch(self.api.api_version, self.api.plural, key[1], {"status": status},
                                            namespace=key[0] or None, subresource="status")
        except errors.NotFound:
            raise _Gone() from None
        self._mark_written(key, result)
        return result

    def _mark_written(self, key: Key, body: dict[str, Any]) -> None:
        try:
            rv = int(body["metadata"]["resourceVersion"])
        except (KeyError, ValueError, TypeError):
            return
        self._written[key] = max(rv, self._written.get(key, 0))
