"""The controller loop: informers feed keys (never objects) into a work queue; workers reconcile them.

Level-triggered: `reconcile(key)` reads the current object from a cache and makes the world
match; the event that woke it is not passed on, so a missed event or a restart costs nothing.
Done -> forget the key's backoff; `Result(requeue_after=s)` -> forget, then come back in s;
an exception -> retry with per-key exponential backoff; an exception that says the object itself
is malformed (`badobjects.OBJECT_ERRORS`: a wrong type read somewhere) -> the key is skipped
until the object changes, reported once per resourceVersion (log, metric, Event). Either way one
key's failure never holds up the other keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from reconcile.client import informer as informer_mod
from reconcile.client import watching
from reconcile.core import meta
from reconcile.engine import badobjects, workqueue
from reconcile.engine import clock as clock_mod
from reconcile.engine import metrics as metrics_mod

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace or "", name)


@dataclass(frozen=True)
class Result:
    """What a reconcile asks for next; `None` or `Result()` means done."""

    requeue_after: float | None = None


Reconciler = Callable[[Key], Awaitable[Result | None]]


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


class Controller:
    """A work queue plus `workers` tasks running `reconcile` on its keys."""

    def __init__(
        self,
        name: str,
        reconcile: Reconciler,
        *,
        workers: int = 1,
        clock: clock_mod.Clock | None = None,
        queue: workqueue.WorkQueue | None = None,
        metrics: metrics_mod.Metrics | None = None,
        reporter: badobjects.Reporter | None = None,
        lookup: Callable[[Key], dict[str, Any] | None] | None = None,
    ) -> None:
        self.name = name
        self.reconcile = reconcile
        self.workers = workers
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        self.queue = queue or workqueue.WorkQueue(clock=self.clock, name=name)
        self.metrics = metrics
        # Where a skipped key's object is reported (an Event needs the component's recorder).
        self.reporter = reporter or badobjects.Reporter(component=name, metrics=metrics)
        # The object behind a key, for reports: given, else the first informer watched by own key.
        self.lookup = lookup
        if metrics is not None:
            metrics.track_queue(name, lambda: float(self.queue.depth))
        # Invariant: once set, no worker takes a new key; set by stop() only.
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    # --- sources -------------------------------------------------------------------------------

    def watch(
        self,
        informer: informer_mod.Informer,
        *,
        to_keys: Callable[[dict], Iterable[Key]] | None = None,
    ) -> None:
        """Enqueue keys for every add/update/delete the informer sees (default: the object's own key)."""
        mapper = to_keys or (lambda obj: [watching.object_key(obj)])
        if to_keys is None and self.lookup is None:
            self.lookup = lambda key: informer.store.get(*key)
        self._register(informer, mapper)

    def watch_owned(self, informer: informer_mod.Informer, *, owner_kind: str, owner_api_version: str) -> None:
        """Enqueue the controller owner (of that kind and API group) of each object seen."""
        group = _group(owner_api_version)

        def owner_keys(obj: dict) -> Iterable[Key]:
            ref = meta.controller_owner(obj)
            if ref is None or ref.get("kind") != owner_kind or _group(ref.get("apiVersion") or "") != group:
                return []
            return [((obj.get("metadata") or {}).get("namespace") or "", ref.get("name") or "")]

        self._register(informer, owner_keys)

    def _register(self, informer: informer_mod.Informer, mapper: Callable[[dict], Iterable[Key]]) -> None:
        def on_add(obj: dict) -> None:
            self._enqueue_all(mapper(obj))

        def on_update(old: dict, new: dict) -> None:
            # both sides: an object that changed owner (or mapping) wakes the old and the new key
            self._enqueue_all([*mapper(old), *mapper(new)])

        informer.add_handler(on_add=on_add, on_update=on_update, on_delete=on_add)

    def _enqueue_all(self, keys: Iterable[Key]) -> None:
        for key in keys:
            if key[1]:
                self.queue.add(key)

    def enqueue(self, key: Key, *, after: float = 0.0) -> None:
        self.queue.add_after(key, after)

    # --- running -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the workers until stop() (or cancellation)."""
        if self._tasks:
            raise RuntimeError(f"controller {self.name} is already running")
        self._tasks = [
            asyncio.get_running_loop().create_task(self._worker(), name=f"controller:{self.name}:{i}")
            for i in range(self.workers)
        ]
        try:
            await asyncio.wait(self._tasks)  # workers end on shutdown (or are cancelled by stop's cap)
        finally:
            for task in self._tasks:
                task.cancel()

    async def stop(self, *, timeout: float = 30.0) -> None:
        """Stop taking keys and let in-flight reconciles finish; cancel what is still running at `timeout`."""
        self._stopping = True
        self.queue.shut_down()
        tasks = [t for t in self._tasks if not t.done()]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            log.warning("controller %s: a reconcile did not finish within %.0fs; cancelling it", self.name, timeout)
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _worker(self) -> None:
        while not self._stopping:
            try:
                key = await self.queue.get()
            except workqueue.ShutDown:
                return
            try:
                if self._stopping:
                    return
                await self._process(key)  # type: ignore[arg-type]
            finally:
                self.queue.done(key)

    async def _process(self, key: Key) -> None:
        started = self.clock.now()
        error = False
        try:
            result = await self.reconcile(key)
        except asyncio.CancelledError:
            raise
        except badobjects.OBJECT_ERRORS as exc:
            error = True
            self.queue.forget(key)  # the same version fails the same way: wait for it to change
            self.reporter.skipped(self.name, key, self._object(key), exc)
        except Exception:
            error = True
            log.exception("controller %s: reconcile %s/%s failed; retrying with backoff", self.name, *key)
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)
            self.reporter.recovered(self.name, key)
            if result is not None and result.requeue_after is not None:
                self.queue.add_after(key, result.requeue_after)
        finally:
            if self.metrics is not None:
                self.metrics.observe(self.name, self.clock.now() - started, error=error)

    def _object(self, key: Key) -> dict[str, Any] | None:
        if self.lookup is None:
            return None
        try:
            return self.lookup(key)
        except Exception:  # noqa: BLE001 - a report without its object is still a report
            return None


def own_key(obj: dict[str, Any]) -> Key:
    """The (namespace, name) key of an object."""
    return watching.object_key(obj)
