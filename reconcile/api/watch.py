"""Serving `?watch=true`: newline-delimited JSON events from the watch cache, one flush each.

Selectors apply to watches as upstream's cacher does: an object that starts matching arrives
as ADDED, one that stops matching leaves as DELETED. Errors after the response started (a
too-old resourceVersion) are sent in-stream as an ERROR event, then the stream ends.

A streaming list (`sendInitialEvents=true`, KEP-3157's WatchList, kopf's `initial_streaming`): the
state as ADDED events, then a BOOKMARK annotated `k8s.io/initial-events-end` at the revision of that
state, which is where a client resumes from. Without that bookmark a client only has the
resourceVersions of the objects, any of which may be older than the cache's history (a 410 on
every resume). `sendInitialEvents=false` starts at the resourceVersion given, or now, with no state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from reconcile.api import registry, rest, tables, watchcache
from reconcile.core import errors


@dataclass(slots=True)
class WatchOptions:
    resource_version: str | None = None
    timeout_seconds: float | None = None
    bookmarks: bool = False
    bookmark_interval: float = 30.0
    table: bool = False
    include_object: str = "Metadata"
    # sendInitialEvents: None when absent (the state only for an unset or "0" resourceVersion)
    send_initial_events: bool | None = None
    # a served version that is not the stored one: each object as that version shows it (`converted`)
    convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None


INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def event_line(kind: str, raw_object: bytes) -> bytes:
    return b'{"type":"' + kind.encode() + b'","object":' + raw_object + b"}\n"


def error_line(error: errors.ApiError) -> bytes:
    return event_line("ERROR", orjson.dumps(error.to_status()))


def translate(event: watchcache.CacheEvent, selection: rest.Selection) -> tuple[str, watchcache.Entry] | None:
    """The event this watcher should see, given its selectors (None: nothing)."""
    if not selection.filters:
        return event.type, event.entry
    if event.type == watchcache.ADDED:
        return (event.type, event.entry) if selection.matches(event.entry.obj) else None
    if event.type == watchcache.DELETED:
        return (event.type, event.entry) if selection.matches(event.entry.obj) else None
    was = event.prev is not None and event.prev.decodable and selection.matches(event.prev.obj)
    now = selection.matches(event.entry.obj)
    if was and now:
        return watchcache.MODIFIED, event.entry
    if now:
        return watchcache.ADDED, event.entry
    if was:
        return watchcache.DELETED, event.entry
    return None


async def stream(api: rest.Rest, resource: registry.Resource, selection: rest.Selection,
                 options: WatchOptions) -> AsyncIterator[bytes]:
    """The body of a watch response."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + options.timeout_seconds if options.timeout_seconds else None
    rv = options.resource_version
    try:
        try:
            cache = await api.cache(resource, resource_version=rv)
        except watchcache.CacheBehind:
            cache = await api.caches.ensure(resource)  # slightly behind: the events that follow catch up
        from_revision = None if rv in (None, "", "0") else int(rv)
        if options.send_initial_events:
            from_revision = None  # the state (at least as new as rv: `api.cache` waited for it), then changes
        elif options.send_initial_events is False and from_revision is None:
            from_revision = cache.revision  # changes from now on, no state
        watcher, backlog = cache.watch(api.prefix(resource, selection.namespace), from_revision)
        # Every event at or below `processed` has been sent (or filtered out): a bookmark may never claim more,
        # or a client resuming from it would skip events still queued for it.
        processed = max(cache.revision, from_revision or 0)
    except errors.ApiError as error:
        yield error_line(error)
        return
    except ValueError:
        yield error_line(errors.BadRequest(f"invalid resource version: {rv!r}"))
        return
    encoder = _Encoder(resource, options)
    getter: asyncio.Future[watchcache.CacheEvent | None] | None = None
    try:
        for event in backlog:
            line = encoder.line(event, selection)
            if line:
                yield line
        if options.send_initial_events:
            yield encoder.bookmark(processed, initial_events_end=True)
        next_bookmark = loop.time() + options.bookmark_interval
        while True:
            now = loop.time()
            waits = [next_bookmark - now] if options.bookmarks else []
            if deadline is not None:
                waits.append(deadline - now)
            wait = min(waits) if waits else None
            if wait is not None and wait <= 0:
                if deadline is not None and now >= deadline:
                    return
                idle = watcher.queue.empty() and (getter is None or not getter.done())
                yield encoder.bookmark(max(cache.revision, processed) if idle else processed)
                next_bookmark = loop.time() + options.bookmark_interval
                continue
            # The getter survives timeouts (never cancelled mid-get), so no event can be lost.
            if getter is None:
                getter = asyncio.ensure_future(watcher.queue.get())
            done, _ = await asyncio.wait({getter}, timeout=wait)
            if not done:
                continue
            event, getter = getter.result(), None
            if event is None:
                return  # the cache stopped, or this watcher fell too far behind: the client re-watches
            processed = event.revision
            line = encoder.line(event, selection)
            if line:
                yield line
                # Drain whatever else is queued without waking the loop once per event.
                while not watcher.queue.empty():
                    queued = watcher.queue.get_nowait()
                    if queued is None:
                        return
                    processed = queued.revision
                    more = encoder.line(queued, selection)
                    if more:
                        yield more
    finally:
        if getter is not None:
            getter.cancel()
        with contextlib.suppress(Exception):
            cache.unwatch(watcher)


class _Encoder:
    """Turns cache events into wire lines: plain objects, or one-row Tables (headers only first)."""

    def __init__(self, resource: registry.Resource, options: WatchOptions) -> None:
        self.resource = resource
        self.options = options
        self.headers_sent = False

    def line(self, event: watchcache.CacheEvent, selection: rest.Selection) -> bytes | None:
        if not event.entry.decodable:
            return None  # a corrupt stored object (logged by the cache): never the stream's end
        translated = translate(event, selection)
        if translated is None:
            return None
        kind, entry = translated
        if not self.options.table:
            if self.options.convert is not None:
                return event_line(kind, orjson.dumps(self.options.convert(entry.obj)))
            return event_line(kind, entry.raw)
        table = tables.to_table(self.resource, [entry.obj], include_object=self.options.include_object,
                                with_headers=not self.headers_sent)
        table.setdefault("metadata", {})["resourceVersion"] = entry.obj["metadata"].get("resourceVersion", "")
        self.headers_sent = True
        return event_line(kind, orjson.dumps(table))

    def bookmark(self, revision: int, *, initial_events_end: bool = False) -> bytes:
        body: dict[str, Any] = {
            "kind": self.resource.kind,
            "apiVersion": self.resource.api_version,
            "metadata": {"resourceVersion": str(revision)},
        }
        if initial_events_end:
            body["metadata"]["annotations"] = {INITIAL_EVENTS_END: "true"}
        return event_line("BOOKMARK", orjson.dumps(body))
