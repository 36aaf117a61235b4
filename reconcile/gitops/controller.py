"""The Sync controller: runs `syncs.sync_once` per Sync key, as Flux's kustomize-controller does.

A key is queued when a Sync is created or its spec (generation) or its
`gitops.reconcile.dev/requestedAt` annotation changes; when the artifact revision of the
GitRepository it names changes (a watch, not a poll); when a Sync it depends on becomes Ready; and
again after `spec.interval` (success) or `spec.retryInterval` (failure). Status writes by this
controller do not wake it (that would loop): only the changes above do.

Between intervals nothing is applied unless something changed: a Sync whose revision and
generation were applied and which is Ready is left alone, unless `spec.selfHeal` asks for drift to
be reverted at each interval (then it is applied again, which puts hand edits back).

`dependsOn` is Flux's: a Sync whose dependencies are not all Ready (for their current generation)
is Ready=False/DependencyNotReady and tried again after `dependency_requeue` or as soon as one of
them changes. With `impersonate`, a Sync naming `spec.serviceAccountName` (or, without one, the
`default_service_account`, Flux's --default-service-account) is applied as that ServiceAccount of
its own namespace (Impersonate-User), so it can do only what the account may; the controller's
own identity (system:gitops-controller) may only read Syncs and sources, write their status and
impersonate ServiceAccounts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
from typing import Any

from reconcile.client import aio, informer
from reconcile.core import errors, webhookreceiver
from reconcile.engine import controller as controller_mod
from reconcile.engine import events
from reconcile.gitops import artifacts, plan, render, syncs

log = logging.getLogger(__name__)

NAME = "gitops-sync"
FINALIZER = "finalizers.gitops.reconcile.dev"  # Flux's finalizers.fluxcd.io
DEPENDENCY_REQUEUE = 30.0  # Flux's --requeue-dependency default


def _meta(obj: dict[str, Any] | None) -> dict[str, Any]:
    return (obj or {}).get("metadata") or {}


def _requested_at(obj: dict[str, Any] | None) -> str | None:
    value = (_meta(obj).get("annotations") or {}).get(webhookreceiver.REQUESTED_AT)
    return value if isinstance(value, str) else None


def _revision(source: dict[str, Any] | None) -> str | None:
    artifact = artifacts.Artifact.from_status((source or {}).get("status") or {})
    return artifact.revision if artifact else None


def _ready(obj: dict[str, Any] | None) -> tuple[Any, ...]:
    cond = syncs.ready_condition(obj or {}) or {}
    return (cond.get("status"), (obj or {}).get("status", {}).get("observedGeneration"))


def dependencies(sync: dict[str, Any]) -> list[tuple[str, str]]:
    """(namespace, name) of each `spec.dependsOn` entry (namespace defaults to the Sync's)."""
    namespace = _meta(sync).get("namespace") or ""
    out = []
    for dep in (sync.get("spec") or {}).get("dependsOn") or []:
        if isinstance(dep, dict) and isinstance(dep.get("name"), str) and dep["name"]:
            out.append((str(dep.get("namespace") or namespace), dep["name"]))
    return out


def source_key(sync: dict[str, Any]) -> tuple[str, str]:
    settings = syncs.Settings.of(sync)
    return settings.source


class SyncController:
    """Owns the `gitops-sync` engine controller and its two informers (Syncs, GitRepositories)."""

    def __init__(self, client: aio.AsyncClient, store: artifacts.ArtifactStore, *,
                 renderer: render.ChartRenderer | None = None, workers: int = 2, impersonate: bool = True,
                 dependency_requeue: float = DEPENDENCY_REQUEUE, default_service_account: str | None = None,
                 cross_namespace_refs: bool = False) -> None:
        self.client = client
        self.store = store
        self.renderer = renderer
        self.impersonate = impersonate
        self.dependency_requeue = dependency_requeue
        # Flux's --default-service-account: the account a Sync without spec.serviceAccountName is
        # applied as (in its own namespace); None applies those as this controller's own identity.
        self.default_service_account = default_service_account
        self.cross_namespace_refs = cross_namespace_refs  # Flux's --no-cross-namespace-refs, inverted
        self.syncs = informer.Informer(client, syncs.API_VERSION, syncs.SYNCS)
        self.sources = informer.Informer(client, syncs.API_VERSION, syncs.GIT_REPOSITORIES)
        self.controller = controller_mod.Controller(NAME, self.reconcile, workers=workers,
                                                    lookup=lambda key: self.syncs.store.get(*key))
        self.syncs.add_handler(on_add=self._sync_added, on_update=self._sync_updated, on_delete=self._sync_added)
        self.sources.add_handler(on_add=self._source_added, on_update=self._source_updated,
                                 on_delete=self._source_added)
        # (namespace, service account) -> a client that impersonates it; closed by stop().
        self._clients: dict[tuple[str, str], aio.AsyncClient] = {}
        self._task: asyncio.Task[None] | None = None
        self.recorder = events.EventRecorder(client, component="gitops-controller")
        # key -> sync_once calls made (what a test of "nothing changed, nothing done" counts)
        self.runs: collections.Counter[tuple[str, str]] = collections.Counter()

    # --- what wakes a key ------------------------------------------------------------------------

    def _enqueue(self, key: tuple[str, str]) -> None:
        if key[1]:
            self.controller.enqueue(key)

    def _dependents(self, key: tuple[str, str]) -> list[tuple[str, str]]:
        return [controller_mod.own_key(s) for s in self.syncs.store.list() if key in dependencies(s)]

    def _sync_added(self, sync: dict[str, Any]) -> None:
        key = controller_mod.own_key(sync)
        self._enqueue(key)
        for dependent in self._dependents(key):
            self._enqueue(dependent)

    def _sync_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        key = controller_mod.own_key(new)
        if (_meta(old).get("generation") != _meta(new).get("generation") or _requested_at(old) != _requested_at(new)
                or _meta(old).get("deletionTimestamp") != _meta(new).get("deletionTimestamp")):
            self._enqueue(key)
        if _ready(old) != _ready(new):
            for dependent in self._dependents(key):
                self._enqueue(dependent)

    def _syncs_of(self, source: dict[str, Any]) -> list[tuple[str, str]]:
        key = controller_mod.own_key(source)
        return [controller_mod.own_key(s) for s in self.syncs.store.list() if source_key(s) == key]

    def _source_added(self, source: dict[str, Any]) -> None:
        for key in self._syncs_of(source):
            self._enqueue(key)

    def _source_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if _revision(old) != _revision(new):
            self._source_added(new)

    # --- running -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the informers, wait until they have listed, then run the workers in a task."""
        await self.syncs.start()
        await self.sources.start()
        await self.syncs.wait_synced(timeout=30)
        await self.sources.wait_synced(timeout=30)
        self._task = asyncio.get_running_loop().create_task(self.controller.run(), name=f"{NAME}:run")

    async def stop(self) -> None:
        await self.controller.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.syncs.stop()
        await self.sources.stop()
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    def apply_client(self, namespace: str, service_account: str | None) -> aio.AsyncClient:
        """The controller's client, or one impersonating `system:serviceaccount:NS:SA`."""
        service_account = service_account or self.default_service_account
        if not service_account or not self.impersonate:
            return self.client
        key = (namespace, service_account)
        if key not in self._clients:
            config = dataclasses.replace(self.client.config,
                                         impersonate=f"system:serviceaccount:{namespace}:{service_account}")
            self._clients[key] = aio.AsyncClient(config)
        return self._clients[key]

    # --- one key -------------------------------------------------------------------------------

    def _unchanged(self, sync: dict[str, Any], settings: syncs.Settings) -> bool:
        """Applied, Ready, same generation and revision, no new request, no selfHeal: nothing to do."""
        status = sync.get("status") or {}
        source = self.sources.store.get(*settings.source)
        return (syncs.is_ready(sync) and not (sync.get("spec") or {}).get("selfHeal")
                and status.get("lastAppliedRevision") == _revision(source)
                and _requested_at(sync) == status.get("lastHandledRequestedAt"))

    async def _wait_for_dependencies(self, sync: dict[str, Any], settings: syncs.Settings) -> str | None:
        for namespace, name in dependencies(sync):
            dep = self.syncs.store.get(namespace, name)
            if dep is None or not syncs.is_ready(dep):
                return f"dependency '{namespace}/{name}' is not ready"
        return None

    async def _set_finalizers(self, sync: dict[str, Any], finalizers: list[str]) -> None:
        """Merge-patch the finalizer list, guarded by resourceVersion (a concurrent edit: retried)."""
        meta = _meta(sync)
        await self.client.patch(syncs.API_VERSION, syncs.SYNCS, meta["name"], {"metadata": {
            "finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}}, namespace=meta["namespace"])

    async def _finalize(self, sync: dict[str, Any], settings: syncs.Settings) -> None:
        """A deleted Sync prunes its inventory (with `prune`, unless suspended), as Flux's
        finalizer does, then lets go. A failed prune (e.g. its ServiceAccount is gone with the
        namespace) is reported and the finalizer removed anyway: garbage collection is skipped
        rather than the namespace's deletion blocked forever (Flux does the same)."""
        try:  # the inventory as stored now (see reconcile)
            sync = await self.client.get(syncs.API_VERSION, syncs.SYNCS, settings.name, namespace=settings.namespace)
        except errors.NotFound:
            return
        finalizers = _meta(sync).get("finalizers") or []
        if FINALIZER not in finalizers:
            return
        if settings.prune and not settings.suspend:
            inventory = plan.inventory_of(sync.get("status") or {})
            try:
                pruned = await syncs.prune(self.apply_client(settings.namespace, settings.service_account),
                                           inventory, [], settings)
                log.info("sync %s/%s deleted: pruned %d objects", settings.namespace, settings.name, len(pruned))
            except syncs.SyncFailed as failure:
                log.warning("sync %s/%s deleted: garbage collection skipped: %s", settings.namespace,
                            settings.name, failure.message)
                await self.recorder.record(sync, reason=failure.reason, type="Warning",
                                           message=f"garbage collection skipped: {failure.message}")
        with contextlib.suppress(errors.NotFound):
            await self._set_finalizers(sync, [f for f in finalizers if f != FINALIZER])

    async def _record(self, sync: dict[str, Any], outcome: syncs.Outcome) -> None:
        """An Event when something happened, as Flux's: a new revision applied, objects pruned, a
        failure (Warning; aggregated by the recorder, so a retried failure bumps one Event's count)."""
        if not outcome.ready:
            await self.recorder.record(sync, reason=outcome.reason, message=outcome.message, type="Warning")
            return
        previous = (sync.get("status") or {}).get("lastAppliedRevision")
        if outcome.revision != previous or outcome.pruned:
            lines = [outcome.message, *(f"{entry.ref()} pruned" for entry in outcome.pruned)]
            await self.recorder.record(sync, reason=outcome.reason, message="\n".join(lines))

    async def reconcile(self, key: controller_mod.Key) -> controller_mod.Result | None:
        sync = self.syncs.store.get(*key)
        if sync is None:
            return None
        settings = syncs.Settings.of(sync)
        if _meta(sync).get("deletionTimestamp"):
            await self._finalize(sync, settings)
            return None
        if settings.suspend:
            return None
        if FINALIZER not in (_meta(sync).get("finalizers") or []):
            await self._set_finalizers(sync, [*(_meta(sync).get("finalizers") or []), FINALIZER])
        if self._unchanged(sync, settings):
            return controller_mod.Result(requeue_after=settings.interval)
        waiting = await self._wait_for_dependencies(sync, settings)
        if waiting is not None:
            cond = syncs.ready_condition(sync) or {}
            if cond.get("reason") != syncs.DEPENDENCY_NOT_READY or cond.get("message") != waiting:
                await syncs.write_status(self.client, settings, {
                    "observedGeneration": settings.generation,
                    "conditions": syncs.conditions((sync.get("status") or {}).get("conditions") or [],
                                                   [("Ready", "False", syncs.DEPENDENCY_NOT_READY, waiting)],
                                                   settings.generation)})
            return controller_mod.Result(requeue_after=min(self.dependency_requeue, settings.retry_interval))
        self.runs[key] += 1
        # the Sync as stored now, not the informer's copy: its inventory must include the last run's
        # (a stale inventory would leave what that run created and this render drops unpruned)
        try:
            sync = await self.client.get(syncs.API_VERSION, syncs.SYNCS, key[1], namespace=key[0])
        except errors.NotFound:
            return None
        outcome = await syncs.sync_once(self.client, self.store, sync,
                                        apply_client=self.apply_client(settings.namespace, settings.service_account),
                                        renderer=self.renderer, cross_namespace_refs=self.cross_namespace_refs)
        await self._record(sync, outcome)
        requested = _requested_at(sync)
        if requested is not None and requested != (sync.get("status") or {}).get("lastHandledRequestedAt"):
            await syncs.write_status(self.client, settings, {"lastHandledRequestedAt": requested})
        log.info("sync %s/%s: %s %s", *key, outcome.reason, outcome.message)
        return controller_mod.Result(requeue_after=settings.interval if outcome.ready else settings.retry_interval)
