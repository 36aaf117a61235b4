"""Informer: a list + watch cache of one resource, with indexes and event handlers.

Controllers read from the informer's `store` instead of asking the API server, and are
woken by its handlers. The wire work (paging, resume, relist on 410 with a diff, capped
exponential backoff) is `AsyncClient.watch_resilient`; this module keeps the cache and
dispatches. Handlers run one event at a time, in resourceVersion order, on the informer's
task; an exception in a handler is logged and does not stop the informer.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from reconcile.client import aio, listwatch, watching
from reconcile.client import options as options_mod

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace or "", name)
IndexFunc = Callable[[dict[str, Any]], Iterable[str]]

INDEX_NAMESPACE = "namespace"  # value: the namespace ("" for cluster-scoped objects)
INDEX_LABEL = "label"  # value: "key=value", one entry per label
INDEX_OWNER = "owner"  # value: an ownerReferences[].uid


def _by_namespace(obj: dict[str, Any]) -> Iterable[str]:
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def _by_label(obj: dict[str, Any]) -> Iterable[str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return [f"{k}={v}" for k, v in labels.items()]


def _by_owner(obj: dict[str, Any]) -> Iterable[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [ref["uid"] for ref in refs if ref.get("uid")]


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
        """Add an index; it is built from the objects already cached."""
        self._indexers[name] = func
        self._indexes[name] = {}
        for key, obj in self._objects.items():
            self._index(name, key, obj)

    def put(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Insert or replace; returns the previous state."""
        key = watching.object_key(obj)
        old = self._objects.get(key)
        if old is not None:
            self._unindex(key, old)
        self._objects[key] = obj
        for name in self._indexers:
            self._index(name, key, obj)
        return old

    def remove(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Remove by the object's key; returns the cached state, if any."""
        key = watching.object_key(obj)
        old = self._objects.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _index(self, name: str, key: Key, obj: dict[str, Any]) -> None:
        for value in self._indexers[name](obj):
            self._indexes[name].setdefault(value, set()).add(key)

    def _unindex(self, key: Key, obj: dict[str, Any]) -> None:
        for name, func in self._indexers.items():
            index = self._indexes[name]
            for value in func(obj):
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
    ) -> None:
        self.client = client
        self.api_version = api_version
        self.plural = plural
        self.namespace = namespace
        # What is cached: the selection of every list and watch (the keywords are a shorthand).
        self.options = options_mod.ListOptions.of(options, label_selector=label_selector,
                                                  field_selector=field_selector)
        self.page_size = page_size
        self.store = Store(indexers)
        # Invariant: the cursor's resourceVersion never goes backwards, and its `known` map
        # holds the same objects as `store` (both are fed the same events, in order).
        self._cursor = watching.WatchCursor()
        self._backoff = backoff or watching.Backoff(initial=0.1, cap=30.0)
        # Invariant: every handler sees every event applied to `store` after it was
        # registered; one registered after start first gets on_add for what is cached.
        self._handlers: list[_Handlers] = []
        # Held while an event is applied and dispatched, so a late handler's replay and live
        # events never interleave.
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._late: set[asyncio.Task[None]] = set()
        # Invariant: set after the first complete list has been applied and dispatched;
        # never cleared (a relist after 410 keeps serving the old cache until it is replaced).
        self._synced = asyncio.Event()
        self.error: BaseException | None = None  # set if the informer stopped on a fatal error

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

    async def _register_late(self, handlers: _Handlers) -> None:
        async with self._lock:
            self._handlers.append(handlers)
            for obj in self.store.list():
                await self._call(handlers.on_add, obj)

    async def start(self) -> None:
        """Begin listing and watching in a background task (returns at once; see `wait_synced`)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"informer:{self.plural}")

    async def wait_synced(self, *, timeout: float | None = None) -> None:
        """Wait for the first list to be in the store (raises the fatal error if the informer died)."""
        waiter = asyncio.ensure_future(self._synced.wait())
        pending = {waiter} | ({self._task} if self._task else set())
        done, _ = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            if self.error is not None:
                raise self.error
            raise TimeoutError(f"informer for {self.plural} did not sync within {timeout}s")

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
                        await self._apply(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # fatal (400/401/403): keep it for wait_synced and the logs
            self.error = exc
            log.error("informer for %s stopped: %s", self.plural, exc)

    async def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind in ("ADDED", "MODIFIED"):
            old = self.store.put(obj)
            for handlers in list(self._handlers):
                if old is None:
                    await self._call(handlers.on_add, obj)
                else:
                    await self._call(handlers.on_update, old, obj)
        elif kind == "DELETED":
            old = self.store.remove(obj)
            for handlers in list(self._handlers):
                await self._call(handlers.on_delete, obj if obj.get("metadata") else old)
        elif watching.is_initial_events_end(event):
            self._synced.set()

    async def _call(self, handler: Handler | None, *args: Any) -> None:
        if handler is None:
            return
        try:
            result = handler(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("informer handler %r for %s failed", handler, self.plural)
