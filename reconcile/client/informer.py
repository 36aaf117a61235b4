"""Informer: a list + watch cache of one resource, with indexes and event handlers.

Controllers read from the informer's `store` instead of asking the API server, and are
woken by its handlers. The wire work (paging, resume, relist on 410 with a diff, capped
exponential backoff) is the sans-I/O `listwatch` core run by `AsyncClient.watch_resilient`;
this module keeps the cache and dispatches. Handlers run one event at a time, in
resourceVersion order, on the informer's task.

One bad object is that object's problem, never the stream's: an object that does not decode
(`decoding.problems`, plus the informer's own `check`) is skipped, logged once per
resourceVersion and reported to the `add_invalid_handler` callbacks (which count it and post
an Event); an exception in a handler is logged (once per object version) and the informer
goes on. Only a fatal API error (400/401/403) or a bug ends the informer's task; `stopped`
then says so, and `restart()` resumes from where it was (see `engine/supervision.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from reconcile.client import aio, decoding, listwatch, watching
from reconcile.client import options as options_mod

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace or "", name)
IndexFunc = Callable[[dict[str, Any]], Iterable[str]]

INDEX_NAMESPACE = "namespace"  # value: the namespace ("" for cluster-scoped objects)
INDEX_LABEL = "label"  # value: "key=value", one entry per label
INDEX_OWNER = "owner"  # value: an ownerReferences[].uid


def _by_namespace(obj: dict[str, Any]) -> Iterable[str]:
    return [watching.object_key(obj)[0]]


def _by_label(obj: dict[str, Any]) -> Iterable[str]:
    labels = (obj.get("metadata") or {}).get("labels")
    return [f"{k}={v}" for k, v in labels.items()] if isinstance(labels, dict) else []


def _by_owner(obj: dict[str, Any]) -> Iterable[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences")
    if not isinstance(refs, list):
        return []
    return [ref["uid"] for ref in refs if isinstance(ref, dict) and isinstance(ref.get("uid"), str) and ref["uid"]]


DEFAULT_INDEXERS: dict[str, IndexFunc] = {
    INDEX_NAMESPACE: _by_namespace,
    INDEX_LABEL: _by_label,
    INDEX_OWNER: _by_owner,
}


class Store:
    """The informer's cache: objects by (namespace, name), plus secondary indexes.

    Objects are shared, not copied: callers must treat what they get as read-only (copy
    before modifying), exactly as with client-go's listers.
    """

    def __init__(self, indexers: dict[str, IndexFunc] | None = None) -> None:
        # Invariant: exactly the objects of the last list plus every watch event applied
        # since, i.e. the server's state at the informer's resourceVersion.
        self._objects: dict[Key, dict[str, Any]] = {}
        self._indexers: dict[str, IndexFunc] = dict(DEFAULT_INDEXERS if indexers is None else indexers)
        # Invariant: key in _indexes[n][v] iff v in _indexers[n](_objects[key]); empty
        # value sets are removed, so the index never grows with objects that left.
        self._indexes: dict[str, dict[str, set[Key]]] = {name: {} for name in self._indexers}
        # Invariant: _values[n][key] is what _indexers[n] returned when _objects[key] was put,
        # so removal never calls an index function again (it might raise, or answer differently).
        self._values: dict[str, dict[Key, list[str]]] = {name: {} for name in self._indexers}

    def get(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._objects.get((namespace or "", name))

    def list(self) -> list[dict[str, Any]]:
        return list(self._objects.values())

    def keys(self) -> list[Key]:
        return list(self._objects)

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, key: object) -> bool:
        return key in self._objects

    def by_index(self, index: str, value: str) -> list[dict[str, Any]]:
        """Objects whose index function yields `value` (e.g. ("label", "app=web"), ("owner", uid))."""
        if index not in self._indexes:
            raise KeyError(f"no index named {index!r}; have {sorted(self._indexes)}")
        return [self._objects[key] for key in self._indexes[index].get(value, ())]

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        """Add an index; it is built from the objects already cached (one it fails on is left out)."""
        self._indexers[name] = func
        self._indexes[name] = {}
        self._values.setdefault(name, {})
        for key, obj in self._objects.items():
            try:
                values = list(func(obj))
            except Exception:  # noqa: BLE001 - the object's problem: it is simply not in this index
                log.warning("index %r failed for %s; left out of it", name, decoding.describe(obj), exc_info=True)
                values = []
            self._values[name][key] = values
            for value in values:
                self._indexes[name].setdefault(value, set()).add(key)

    def put(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Insert or replace; returns the previous state.

        All-or-nothing: every index value is computed before anything changes, so an index
        function that raises on `obj` leaves the store as it was (the error propagates).
        """
        key = watching.object_key(obj)
        values = {name: list(func(obj)) for name, func in self._indexers.items()}
        old = self._objects.get(key)
        if old is not None:
            self._unindex(key)
        self._objects[key] = obj
        for name, found in values.items():
            self._values[name][key] = found
            for value in found:
                self._indexes[name].setdefault(value, set()).add(key)
        return old

    def remove(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Remove by the object's key; returns the cached state, if any."""
        key = watching.object_key(obj)
        old = self._objects.pop(key, None)
        if old is not None:
            self._unindex(key)
        return old

    def _unindex(self, key: Key) -> None:
        for name, index in self._indexes.items():
            for value in self._values[name].pop(key, ()):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]


Handler = Callable[..., Any]  # sync function or coroutine function


@dataclass
class _Handlers:
    on_add: Handler | None = None
    on_update: Handler | None = None
    on_delete: Handler | None = None


class Informer:
    """List + watch of one resource (optionally one namespace / selection) into a `Store`."""

    def __init__(
        self,
        client: aio.AsyncClient,
        api_version: str,
        plural: str,
        *,
        namespace: str | None = None,
        options: options_mod.ListOptions | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = listwatch.DEFAULT_PAGE_SIZE,
        indexers: dict[str, IndexFunc] | None = None,
        backoff: watching.Backoff | None = None,
        check: decoding.Check | None = None,
    ) -> None:
        self.client = client
        self.api_version = api_version
        self.plural = plural
        self.namespace = namespace
        # What is cached: the selection of every list and watch (the keywords are a shorthand).
        self.options = options_mod.ListOptions.of(options, label_selector=label_selector,
                                                  field_selector=field_selector)
        self.page_size = page_size
        # Kind-specific decoding on top of the ObjectMeta rules (e.g. the scheduler's pod parser).
        self.check = check
        # Invariant: holds the decodable objects of the last list plus every event applied since;
        # an object whose newest version does not decode keeps its last decodable version (a
        # skipped update, as a missed event would be), or is absent if it never had one.
        self.store = Store(indexers)
        # Invariant: the cursor's resourceVersion never goes backwards, and its `known` map holds
        # every identifiable object the server reported (decodable or not), so relists diff right.
        self._cursor = watching.WatchCursor()
        self._backoff = backoff or watching.Backoff(initial=0.1, cap=30.0)
        # Invariant: every handler sees every event applied to `store` after it was
        # registered; one registered after start first gets on_add for what is cached.
        self._handlers: list[_Handlers] = []
        self._invalid_handlers: list[Handler] = []
        # Invariant: key -> resourceVersion of the newest version of that object, present iff that
        # version did not decode and was reported; so a relist or a storm of identical events
        # reports an object once per version. Cleared when a decodable version or a delete comes.
        self._reported: dict[Key, str] = {}
        # key -> resourceVersion whose handler failure was logged with its traceback (same rule).
        self._handler_failures: dict[Key, str] = {}
        self._malformed_logged = 0
        self.invalid_objects = 0  # object versions skipped because they did not decode
        self.restarts = 0  # times restart() brought a stopped informer back
        # Held while an event is applied and dispatched, so a late handler's replay and live
        # events never interleave.
        self._lock = asyncio.Lock()
        # Invariant: None before start() and after stop(); otherwise the task that lists and watches
        # (done iff the informer stopped by itself: see `stopped`).
        self._task: asyncio.Task[None] | None = None
        self._late: set[asyncio.Task[None]] = set()
        # Invariant: set after the first complete list has been applied and dispatched;
        # never cleared (a relist after 410 keeps serving the old cache until it is replaced).
        self._synced = asyncio.Event()
        self.error: BaseException | None = None  # why the task ended, if it ended on an error

    @property
    def label_selector(self) -> str | None:
        return self.options.label_selector

    @property
    def field_selector(self) -> str | None:
        return self.options.field_selector

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    @property
    def resource_version(self) -> str | None:
        """The newest resourceVersion applied to the store."""
        return self._cursor.resource_version

    @property
    def stopped(self) -> bool:
        """Started and not stopped by `stop()`, yet its task ended: a fatal error, a bug, a cancellation.

        A stopped informer serves a cache that no longer changes: the component is not ready
        until `restart()` brings it back.
        """
        return self._task is not None and self._task.done()

    def add_handler(
        self,
        *,
        on_add: Handler | None = None,
        on_update: Handler | None = None,
        on_delete: Handler | None = None,
    ) -> None:
        """Register callbacks `on_add(obj)`, `on_update(old, new)`, `on_delete(obj)`; sync or async."""
        handlers = _Handlers(on_add, on_update, on_delete)
        if self._task is None:
            self._handlers.append(handlers)
            return
        task = asyncio.get_running_loop().create_task(self._register_late(handlers))
        self._late.add(task)  # keep a reference until done, or the loop may drop the task
        task.add_done_callback(self._late.discard)

    def add_invalid_handler(self, handler: Handler) -> None:
        """`handler(obj, problems)` (sync or async) for each object version that does not decode."""
        self._invalid_handlers.append(handler)

    async def _register_late(self, handlers: _Handlers) -> None:
        async with self._lock:
            self._handlers.append(handlers)
            for obj in self.store.list():
                await self._call(handlers.on_add, obj)

    async def start(self) -> None:
        """Begin listing and watching in a background task (returns at once; see `wait_synced`)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"informer:{self.plural}")

    async def restart(self) -> bool:
        """Run a stopped informer again, from its cache and resourceVersion; False if it was not stopped."""
        if not self.stopped:
            return False
        self.error = None
        self.restarts += 1
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"informer:{self.plural}")
        log.info("informer for %s restarted (restart %d)", self.plural, self.restarts)
        return True

    async def wait_synced(self, *, timeout: float | None = None) -> None:
        """Wait for the first list to be in the store.

        Raises the fatal error if the informer stopped on one (a 403 will not go away by waiting);
        an informer stopped without an error (cancelled) may be restarted, so that is waited out.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        waiter = asyncio.ensure_future(self._synced.wait())
        try:
            while not waiter.done():
                pending: set[asyncio.Future[Any]] = {waiter}
                if self._task is not None and not self._task.done():
                    pending.add(self._task)
                remaining = None if deadline is None else max(0.0, deadline - loop.time())
                # while stopped, look again now and then: a supervisor may restart the informer
                step = remaining if len(pending) > 1 else min(remaining if remaining is not None else 0.5, 0.5)
                await asyncio.wait(pending, timeout=step, return_when=asyncio.FIRST_COMPLETED)
                if waiter.done():
                    return
                if self.stopped and self.error is not None:
                    raise self.error
                if deadline is not None and loop.time() >= deadline:
                    raise TimeoutError(f"informer for {self.plural} did not sync within {timeout}s")
        finally:
            waiter.cancel()

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._late) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        stream = self.client.watch_resilient(
            self.api_version,
            self.plural,
            namespace=self.namespace,
            options=self.options,
            page_size=self.page_size,
            cursor=self._cursor,
            backoff=self._backoff,
        )
        try:
            async with contextlib.aclosing(stream):
                async for event in stream:
                    async with self._lock:
                        try:
                            await self._apply(event)
                        except Exception:  # a bug in applying one event must not end the stream
                            log.exception("informer for %s: event %s of %s skipped", self.plural,
                                          event.get("type"), decoding.describe(event.get("object")))
                    self._log_malformed()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # fatal (400/401/403): keep it for wait_synced, the logs and /readyz
            self.error = exc
            log.error("informer for %s stopped: %s", self.plural, exc)

    def _log_malformed(self) -> None:
        if self._cursor.malformed != self._malformed_logged:
            log.warning("informer for %s: %d events without a usable name or namespace skipped", self.plural,
                        self._cursor.malformed - self._malformed_logged)
            self._malformed_logged = self._cursor.malformed

    def problems(self, obj: Any) -> list[str]:
        """Why `obj` would not be cached ([] when it would): ObjectMeta's rules, then `check`."""
        found = decoding.problems(obj)
        if not found and self.check is not None:
            try:
                found = list(self.check(obj))
            except Exception as exc:  # noqa: BLE001 - a check that raises has found a problem
                found = [f"{type(exc).__name__}: {exc}"]
        return found

    async def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object")
        if not isinstance(obj, dict):  # the cursor passes only identifiable objects; bookmarks have one too
            return
        if kind in ("ADDED", "MODIFIED"):
            found = self.problems(obj)
            old: dict[str, Any] | None = None
            if not found:
                try:
                    old = self.store.put(obj)
                except Exception as exc:  # noqa: BLE001 - an index function that fails on this object
                    found = [f"index: {type(exc).__name__}: {exc}"]
            if found:
                await self._invalid(obj, found)
                return
            key = watching.object_key(obj)
            self._reported.pop(key, None)
            for handlers in list(self._handlers):
                if old is None:
                    await self._call(handlers.on_add, obj)
                else:
                    await self._call(handlers.on_update, old, obj)
        elif kind == "DELETED":
            key = watching.object_key(obj)
            old = self.store.remove(obj)
            self._reported.pop(key, None)
            self._handler_failures.pop(key, None)
            gone = obj if not self.problems(obj) else old  # handlers only ever see decodable objects
            if gone is None:
                return  # never cached: no handler heard of it
            for handlers in list(self._handlers):
                await self._call(handlers.on_delete, gone)
        elif watching.is_initial_events_end(event):
            self._synced.set()

    async def _invalid(self, obj: dict[str, Any], found: list[str]) -> None:
        """Skip one object version that does not decode: log and report it once per resourceVersion."""
        key = watching.object_key(obj)
        rv = watching.resource_version_of(obj) or ""
        if self._reported.get(key) == rv:
            return
        self._reported[key] = rv
        self.invalid_objects += 1
        kept = " (its last decodable version stays cached)" if key in self.store else ""
        log.warning("informer for %s: skipping %s, it does not decode%s: %s", self.plural, decoding.describe(obj),
                    kept, "; ".join(found[:5]))
        for handler in list(self._invalid_handlers):
            await self._call(handler, obj, found)

    async def _call(self, handler: Handler | None, *args: Any) -> None:
        if handler is None:
            return
        try:
            result = handler(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            obj = next((a for a in reversed(args) if isinstance(a, dict)), None)
            key, rv = watching.object_key(obj or {}), watching.resource_version_of(obj) or ""
            if self._handler_failures.get(key) == rv:
                log.debug("informer handler %r for %s failed again on %s", handler, self.plural,
                          decoding.describe(obj))
                return
            self._handler_failures[key] = rv
            log.exception("informer handler %r for %s failed on %s", handler, self.plural, decoding.describe(obj))
