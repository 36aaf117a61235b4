"""The operator runtime: runs a registry's handlers against an API server.

`Operator` is a manager runnable (`start()` returns once every informer has synced and the
controllers run; `stop()` is graceful), so the CLI can put it behind leader election, and
tests can run it in their own event loop on a `FakeClock`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
from dataclasses import dataclass
from typing import Any

from reconcile.client import aio, discovery
from reconcile.core import errors
from reconcile.engine import badobjects, events, supervision
from reconcile.engine import clock as clock_mod
from reconcile.engine import metrics as metrics_mod
from reconcile.engine.sdk import errors as sdk_errors
from reconcile.engine.sdk import invocation, posting, worker
from reconcile.engine.sdk import registry as registry_mod

log = logging.getLogger(__name__)


@dataclass
class Settings:
    """Knobs of one operator process."""

    workers: int = 32  # objects of one resource reconciled concurrently
    threads: int = 32  # thread pool for sync handlers
    shutdown_timeout: float = 30.0  # graceful stop: in-flight handlers may finish within this
    component: str = "reconcile-operator"  # Events' source component
    resolve_backoff: float = 1.0  # seconds between discovery attempts while a resource is not served


def _matches(api: discovery.ApiResource, ref: registry_mod.ResourceRef) -> bool:
    if api.group != ref.group or (ref.version is not None and api.version != ref.version):
        return False
    name = ref.name.lower()
    return name in (api.plural, api.singular, api.kind.lower(), *api.short_names)


class Operator:
    """Handlers of one registry, for all their resources, in one namespace set (None = all)."""

    def __init__(
        self,
        client: aio.AsyncClient,
        *,
        registry: registry_mod.Registry | None = None,
        namespaces: list[str] | None = None,
        clock: clock_mod.Clock | None = None,
        settings: Settings | None = None,
        memo: invocation.Memo | dict[str, Any] | None = None,
        metrics: metrics_mod.Metrics | None = None,
    ) -> None:
        self.client = client
        self.registry = registry or registry_mod.current()
        self.namespaces = namespaces
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        self.settings = settings or Settings()
        self.memo = invocation.Memo(memo or {})
        self.metrics = metrics
        self.workers: list[worker.ResourceWorker] = []
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._poster: posting.Poster | None = None
        self._context: contextvars.Context | None = None
        self._reporter: badobjects.Reporter | None = None
        # Restarts informers whose task ended; a Manager's /readyz and /healthz report through it.
        # Real time, as the informers' own reconnect backoff (the operator's clock drives handlers only).
        self.supervisor = supervision.InformerSupervisor(self._informers, name="operator", metrics=metrics)
        self.started = False

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Run startup handlers, sync every informer, then start the controllers."""
        loop = asyncio.get_running_loop()
        self._executor = concurrent.futures.ThreadPoolExecutor(self.settings.threads, thread_name_prefix="rc-handler")
        recorder = events.EventRecorder(self.client, component=self.settings.component, clock=self.clock)
        self._poster = posting.Poster(recorder, loop)
        self._reporter = badobjects.Reporter(component=self.settings.component, metrics=self.metrics,
                                             recorder=recorder)
        # Our own context: handlers (and their threads) see this operator's registry and poster.
        self._context = contextvars.copy_context()
        self._context.run(posting.install, self._poster)
        self._context.run(registry_mod.activate, self.registry)
        try:
            await loop.create_task(self._start(), context=self._context)
        except BaseException:
            await self.stop(timeout=0, cleanup=False)  # release what did start: informers, threads
            raise
        self.started = True

    async def _start(self) -> None:
        for handler in self.registry.operator_handlers("startup"):
            await self._run_operator_handler(handler, retry_temporary=True)
        runtime = worker.Runtime(
            client=self.client,
            registry=self.registry,
            clock=self.clock,
            executor=self._executor,  # type: ignore[arg-type]
            memo=self.memo,
            workers=self.settings.workers,
            metrics=self.metrics,
            reporter=self._reporter,
        )
        apis = [await self._resolve(ref) for ref in self.registry.resources()]
        self.workers = [
            worker.ResourceWorker(runtime, ref, api, namespaces=self.namespaces)
            for ref, api in zip(self.registry.resources(), apis, strict=True)
        ]
        for w in self.workers:
            await w.start_informers()
        await self.supervisor.start()
        for w in self.workers:
            await w.wait_synced()  # indexes are complete before any handler runs
        for w in self.workers:
            w.start_controller()
        log.info("operator started: %s", ", ".join(w.api.group_resource for w in self.workers) or "no resources")

    async def stop(self, *, timeout: float | None = None, cleanup: bool = True) -> None:
        """Finish in-flight handlers (capped), stop daemons and timers, run cleanup handlers."""
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        await self.supervisor.stop()
        await asyncio.gather(*(w.stop(timeout=timeout) for w in self.workers))
        self.workers = []
        if self._reporter is not None:
            await self._reporter.drain(timeout=min(timeout, 2.0))
            self._reporter = None
        if self._context is not None and cleanup:
            for handler in self.registry.operator_handlers("cleanup"):
                await asyncio.get_running_loop().create_task(
                    self._run_operator_handler(handler, retry_temporary=False), context=self._context
                )
        if self._poster is not None:
            await self._poster.drain()
            posting.uninstall(self._poster)
            self._poster = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self.started = False

    async def serve(self, stop: asyncio.Event) -> None:
        """Start, run until `stop` is set, stop (standalone mode)."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    # --- helpers -------------------------------------------------------------------------------

    def _informers(self) -> list[Any]:
        return [inf for w in self.workers for inf in w.informers.values()]

    async def _run_operator_handler(self, handler: registry_mod.Handler, *, retry_temporary: bool) -> None:
        kwargs = {"memo": self.memo, "logger": logging.getLogger(f"reconcile.operator.{handler.id}"),
                  "settings": self.settings, "param": handler.param, "retry": 0}
        while True:
            try:
                await invocation.call(handler.fn, kwargs, executor=self._executor)
                return
            except sdk_errors.TemporaryError as exc:
                if not retry_temporary:
                    raise
                kwargs["retry"] += 1
                log.warning("%s handler %r asked to retry in %ss: %s", handler.kind, handler.id, exc.delay, exc)
                await self.clock.sleep(exc.delay)

    async def _resolve(self, ref: registry_mod.ResourceRef) -> discovery.ApiResource:
        """Find the served resource; wait (with a log line) while its definition is not installed."""
        refresh = False
        while True:
            try:
                if ref.group is None:
                    return await self.client.resolve(ref.name)
                for api in await self.client.discover(refresh=refresh):
                    if _matches(api, ref):
                        return api
            except errors.NotFound:
                pass
            log.warning("resource %s is not served (yet); waiting for its definition", ref)
            refresh = True
            await asyncio.sleep(self.settings.resolve_backoff)  # a retry interval, not synchronization

    def runtime_index(self, name: str) -> Any:
        """The live `@rc.index` named `name` (for tests and debugging)."""
        for w in self.workers:
            if name in w.runtime.indexes:
                return w.runtime.indexes[name]
        raise KeyError(name)

    def worker_for(self, plural: str) -> worker.ResourceWorker:
        for w in self.workers:
            if w.api.plural == plural:
                return w
        raise KeyError(plural)


@contextlib.asynccontextmanager
async def running(client: aio.AsyncClient, **options: Any) -> Any:
    """`async with running(client, registry=reg) as op:` — started on entry, stopped on exit."""
    op = Operator(client, **options)
    await op.start()
    try:
        yield op
    finally:
        await op.stop()
