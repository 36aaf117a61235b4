"""The watch cache: every resource type's objects in memory, kept current by one etcd watch over the
whole cluster (`SharedFeed`), and fanned out to every API watcher.

Reads are served from memory; etcd sees writes and one watch. A read that must be
consistent (no resourceVersion given) first proves the cache is current as of the etcd head
revision (`ensure_current`), with one etcd request shared by every reader waiting at that moment.

Invariants (kept by `_apply`, the only writer of the fields below):
- `revision` is the highest etcd revision whose effects on this prefix are all in `entries`;
  it never goes backwards.
- `entries` holds exactly the keys that exist at `revision`, each with its own `mod_revision`.
- `history` holds every event with `history_start < event.revision <= revision`, in order (after a
  compaction `history_start` may be ahead of `revision`); a watch from N is served from it iff
  `N >= history_start`, else it gets 410 Expired.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from reconcile.core import errors
from reconcile.store import etcd

log = logging.getLogger(__name__)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
# How long a consistent read waits for the watch to reach etcd's head before proving it by a range
# read instead (the head was written outside this cluster's keys, so no event will bring it).
FEED_GRACE = 0.025


class Entry:
    """One stored object as served: its stored bytes, decoded and re-encoded (with
    resourceVersion set) only when first needed, then kept."""

    __slots__ = ("key", "value", "mod_revision", "create_revision", "version", "unreadable", "_obj", "_raw")

    def __init__(self, key: str, value: bytes, mod_revision: int, *, create_revision: int = 0, version: int = 1,
                 obj: dict[str, Any] | None = None, unreadable: str = "") -> None:
        self.key = key
        self.value = value  # as stored (no resourceVersion), decrypted by the store
        self.mod_revision = mod_revision
        self.create_revision = create_revision
        self.version = version
        self.unreadable = unreadable  # why the store could not read the value back (decryption); "" if it could
        self._obj = obj
        self._raw: bytes | None = None

    @classmethod
    def decode(cls, key: str, value: bytes, mod_revision: int, *, create_revision: int = 0, version: int = 1,
               unreadable: str = "") -> Entry:
        return cls(key, value, mod_revision, create_revision=create_revision, version=version, unreadable=unreadable)

    @property
    def obj(self) -> dict[str, Any]:
        """The object with metadata.resourceVersion set; shared, so callers must not mutate it.

        Raises `errors.InternalError` for a stored value that is not an object with object metadata
        (written around the API, straight into etcd): that one object is corrupt, see `decodable`.
        """
        if self._obj is None:
            self._obj = orjson.loads(self._raw) if self._raw is not None else self._decode()
        return self._obj

    def _decode(self) -> dict[str, Any]:
        if self.unreadable:
            raise errors.InternalError(f"the stored object {self.key} cannot be read: {self.unreadable}")
        try:
            obj = orjson.loads(self.value)
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.mod_revision)
        except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            raise errors.InternalError(f"the stored object {self.key} cannot be decoded: {exc}") from None
        return obj

    @property
    def decodable(self) -> bool:
        """Whether `obj` can be served. Lists and watches leave out (and log, once) what cannot."""
        if self._obj is not None or self._raw is not None:
            return True
        try:
            _ = self.raw  # what a plain list serves anyway; the object itself is kept only once asked for
        except errors.InternalError as exc:
            _log_corrupt(self.key, self.mod_revision, exc)
            return False
        return True

    @property
    def raw(self) -> bytes:
        """The object's JSON as served."""
        if self._raw is None:
            # Copied: orjson's result keeps its whole growth buffer (~8-16 KB for a 2 KB object) for as
            # long as it lives, which for a cache entry is forever. The copy is exact-size. The decoded
            # object is not kept unless it already was: GETs and plain lists (most reads) need only these
            # bytes, and a decoded 2 KB object costs ~3.7 KB more for as long as the entry lives.
            obj = self._obj if self._obj is not None else self._decode()
            self._raw = bytes(memoryview(orjson.dumps(obj)))
        return self._raw

    @property
    def namespace(self) -> str:
        return self.obj["metadata"].get("namespace", "")


class CacheBehind(Exception):
    """The cache could not prove itself current in time; the caller reads etcd instead."""


@dataclass(slots=True)
class CacheEvent:
    type: str
    entry: Entry  # for DELETED: the last state, with resourceVersion = the deletion revision
    prev: Entry | None
    revision: int


@dataclass(eq=False)
class Watcher:
    """One API watch: a queue the cache pushes matching events into."""

    prefix: str
    queue: asyncio.Queue[CacheEvent | None] = field(default_factory=asyncio.Queue)
    overflowed: bool = False


class WatchCache:
    """Everything under one key prefix (one resource type), kept current from the shared feed (or,
    used on its own, from a watch of its own)."""

    max_history = 20_000
    max_watcher_backlog = 50_000

    def __init__(self, store: etcd.EtcdStore, prefix: str, *, on_event: Callable[[CacheEvent], None] | None = None,
                 feed_grace: float = FEED_GRACE):
        self.store = store
        self.prefix = prefix
        self.feed_grace = feed_grace
        self.on_event = on_event
        self.entries: dict[str, Entry] = {}
        self.revision = 0
        self.history: collections.deque[CacheEvent] = collections.deque()
        self.history_start = 0
        self._sorted_keys: list[str] | None = None
        self._watchers: set[Watcher] = set()
        self._task: asyncio.Task[None] | None = None
        self._advanced: asyncio.Event | None = None  # made by the first waiter, set and dropped on progress
        self._ready = asyncio.Event()
        # A check scheduled but not yet begun: every caller arriving before it begins may share it.
        # Invariant: once a check has begun (sent its etcd request) it is no longer `_next_check`.
        self._next_check: asyncio.Task[None] | None = None
        self.failed: BaseException | None = None
        self._feed: SharedFeed | None = None
        # While the first list of a fed cache is read: the feed's deliveries, applied after it.
        self._pending: list[tuple[list[etcd.Event], int]] | None = None

    # --- life cycle ---

    async def start(self, *, feed: SharedFeed | None = None) -> None:
        """Load the prefix and keep it current: from `feed` (the server's one watch over every
        resource) when given, else from a watch of this cache's own (a cache used on its own)."""
        if feed is None:
            await self._load()
            self._task = asyncio.create_task(self._run(), name=f"watchcache {self.prefix}")
            return
        self._feed = feed
        self._pending = []  # what the feed delivers while the first list is read
        feed.register(self)
        try:
            await self._load()
        except BaseException:
            feed.unregister(self)
            raise
        pending, self._pending = self._pending, None
        for events, revision in pending:
            self.deliver(events, revision)

    async def stop(self) -> None:
        if self._feed is not None:
            self._feed.unregister(self)
            self._feed = None
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for watcher in list(self._watchers):
            watcher.queue.put_nowait(None)
        self._watchers.clear()

    async def _load(self) -> None:
        result = await self.store.list(self.prefix)
        entries: dict[str, Entry] = {}
        for kv in result.items:
            entries[kv.key] = Entry.decode(kv.key, kv.value, kv.mod_revision, create_revision=kv.create_revision,
                                           version=kv.version, unreadable=kv.unreadable)
        # A relist replaces the state: tell watchers about what vanished or changed meanwhile.
        if self.entries:
            self._diff_into_history(entries, result.revision)
        self.entries = entries
        self._sorted_keys = None
        self.revision = max(self.revision, result.revision)
        if not self.history:
            self.history_start = self.revision
        self._ready.set()
        self._wake()

    async def relist(self) -> None:
        """The watch fell behind etcd's compaction point: read the prefix again; watches from
        before now get 410 Expired and relist too."""
        log.warning("watch cache %s: compacted, relisting", self.prefix)
        self._expire_history()
        await self._load()

    def _diff_into_history(self, fresh: dict[str, Entry], revision: int) -> None:
        for key, old in self.entries.items():
            if key not in fresh:
                self._publish(CacheEvent(DELETED, _deleted(old, revision), old, revision))
        for key, new in fresh.items():
            old = self.entries.get(key)
            if old is None:
                self._publish(CacheEvent(ADDED, new, None, revision))
            elif old.mod_revision != new.mod_revision:
                self._publish(CacheEvent(MODIFIED, new, old, revision))

    def deliver(self, events: list[etcd.Event], revision: int) -> None:
        """One watch response: `events` under this prefix, and the revision up to which every
        change under the prefix has now been delivered (progress, even with no events)."""
        if self._pending is not None:
            self._pending.append((events, revision))
            return
        for event in events:
            self._apply(event)
        if revision > self.revision:
            self.revision = revision
            self._wake()

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                # The cache holds every previous value itself: etcd need not read and send them.
                async for batch in self.store.watch(self.prefix, start_revision=self.revision + 1, prev_values=False):
                    self.deliver(batch.events, batch.revision)
                    backoff = 0.05
            except asyncio.CancelledError:
                raise
            except errors.Compacted:
                await self.relist()
            except Exception as exc:  # keep serving what we have; retry the watch
                self.failed = exc
                log.warning("watch cache %s: watch failed (%s); retrying", self.prefix, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    # --- applying events (the only writer of entries/revision/history) ---

    def _apply(self, event: etcd.Event) -> None:
        if event.mod_revision <= self.revision:
            return  # already reflected (e.g. after a relist)
        old = self.entries.get(event.key)
        if event.type == "PUT":
            new = Entry.decode(event.key, event.value, event.mod_revision, create_revision=event.create_revision,
                               version=old.version + 1 if old is not None else 1, unreadable=event.unreadable)
            if old is None:
                self._sorted_keys = None
            self.entries[event.key] = new
            cache_event = CacheEvent(ADDED if old is None else MODIFIED, new, old, event.mod_revision)
        else:
            if old is None and (event.value or event.unreadable):
                old = Entry.decode(event.key, event.value, event.mod_revision, create_revision=event.create_revision,
                                   unreadable=event.unreadable)
            self.entries.pop(event.key, None)
            self._sorted_keys = None
            if old is None:
                self.revision = event.mod_revision
                return
            cache_event = CacheEvent(DELETED, _deleted(old, event.mod_revision), old, event.mod_revision)
        self.revision = event.mod_revision
        self._publish(cache_event)
        self._wake()

    def _publish(self, event: CacheEvent) -> None:
        self.history.append(event)
        if len(self.history) > self.max_history:
            dropped = self.history.popleft()
            self.history_start = dropped.revision
        for watcher in self._watchers:
            if event.entry.key.startswith(watcher.prefix):
                if watcher.queue.qsize() > self.max_watcher_backlog:
                    watcher.overflowed = True
                    watcher.queue.put_nowait(None)
                else:
                    watcher.queue.put_nowait(event)
        if self.on_event is not None:
            self.on_event(event)

    def _expire_history(self) -> None:
        self.history.clear()
        self.history_start = self.revision

    def compacted(self, revision: int) -> None:
        """etcd was compacted at `revision`: history at or below it can no longer be served."""
        while self.history and self.history[0].revision <= revision:
            self.history.popleft()
        # May run ahead of `revision` when the cache lags: events at or below it still arrive, but a
        # watch from below it is refused, and a backlog only ever holds events after its start.
        self.history_start = max(self.history_start, revision)

    def _wake(self) -> None:
        if self._advanced is not None:
            self._advanced.set()
            self._advanced = None

    # --- reads ---

    async def wait_for_revision(self, revision: int, *, timeout: float = 3.0) -> bool:
        """Wait until the cache reflects `revision`; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.revision < revision:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if self._advanced is None:
                self._advanced = asyncio.Event()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._advanced.wait(), remaining)
        return True

    async def ensure_current(self, *, timeout: float = 3.0) -> None:
        """Prove the cache holds everything etcd had when this call began (a consistent read).

        Callers share checks: each waits for one check that begins after it arrived (so its read
        is never older than its arrival), and every caller arriving before that check begins joins
        it. Checks may overlap, so no caller waits for an older check to finish first.
        """
        await self._ready.wait()
        check = self._next_check
        if check is None:
            deadline = asyncio.get_running_loop().time() + timeout
            check = self._next_check = asyncio.ensure_future(self._begin_check(deadline))
            check.add_done_callback(_consume_exception)
        await asyncio.shield(check)

    async def _begin_check(self, deadline: float) -> None:
        self._next_check = None  # from here on, arrivals need a later check
        await self._verify_once(deadline)

    async def _verify_once(self, deadline: float) -> None:
        """Prove the cache current as of etcd's head revision read now, `head`.

        The target is fixed when the check begins, as upstream's consistent reads from cache do: the
        cache must reflect every change under its prefix up to `head`, and what is written after
        that is not this read's business. (Chasing a moving head instead would wait for a quiet
        moment that a steady writer never gives.) Two proofs, whichever comes first: the watch
        delivers an event at or past `head`, or a keys-only range at `head` shows that nothing
        under the prefix changed between what the cache holds and `head`.
        """
        loop = asyncio.get_running_loop()
        head = await self.store.current_revision_shared()  # read by a request sent after this check began
        if self.revision >= head:
            return
        # Usually the watch is about to bring `head` (the shared feed sees every write of the cluster).
        if await self.wait_for_revision(head, timeout=min(self.feed_grace, max(0.0, deadline - loop.time()))):
            return
        while self.revision < head:
            seen = self.revision
            changed, total, _, latest = await self.store.prefix_changes(self.prefix, since_revision=seen,
                                                                        revision=head)
            if self.revision >= head:
                return  # the watch got there meanwhile
            if changed == 0 and total == len(self.entries) and self.revision == seen:
                # At `head` the prefix holds exactly the keys the cache holds, none changed after
                # `seen`: the cache's state is the state at `head`. (A key created and deleted in
                # between whose events the watch has not delivered yet, which would also pass, is
                # dropped when its events arrive: watchers miss an object that never appeared in
                # any read. The `self.revision == seen` test makes that a rare race.)
                self.revision = head
                self._wake()
                return
            # Changes in (seen, head] are on their way down the watch: wait for the last one (or, if
            # only deletions happened, for any progress), then look again from there.
            target = max(latest, seen + 1)
            if not await self.wait_for_revision(target, timeout=max(0.0, deadline - loop.time())):
                raise CacheBehind(self.prefix)

    def get(self, key: str) -> Entry | None:
        return self.entries.get(key)

    def sorted_keys(self) -> list[str]:
        if self._sorted_keys is None:
            self._sorted_keys = sorted(self.entries)
        return self._sorted_keys

    def list(self, prefix: str = "") -> tuple[list[Entry], int]:
        """Entries under `prefix` in key order, and the revision they are current at."""
        revision = self.revision
        if not prefix or prefix == self.prefix:
            return [self.entries[k] for k in self.sorted_keys()], revision
        return [self.entries[k] for k in self.sorted_keys() if k.startswith(prefix)], revision

    # --- watches ---

    def watch(self, prefix: str, from_revision: int | None) -> tuple[Watcher, list[CacheEvent]]:
        """Register a watcher; returns it and the backlog to send first.

        `from_revision` None means "current state then changes": synthetic ADDED events for
        what exists. A number means every change strictly after it (410 if too old).
        """
        watcher = Watcher(prefix=prefix)
        if from_revision is None:
            backlog = [
                CacheEvent(ADDED, self.entries[k], None, self.entries[k].mod_revision)
                for k in self.sorted_keys()
                if k.startswith(prefix)
            ]
        else:
            if from_revision < self.history_start:
                raise errors.Gone(f"too old resource version: {from_revision} ({self.history_start + 1})")
            backlog = [e for e in self.history if e.revision > from_revision and e.entry.key.startswith(prefix)]
        self._watchers.add(watcher)
        return watcher, backlog

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    async def events(self, watcher: Watcher) -> AsyncIterator[CacheEvent]:
        while True:
            event = await watcher.queue.get()
            if event is None:
                return
            yield event

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)


class SharedFeed:
    """One etcd watch over every resource of the cluster, delivered to each resource's cache.

    Why one: a cache's revision advances only with what its watch tells it. With a watch per
    resource, a write to Secrets does not move the ConfigMap cache, so a consistent ConfigMap read
    (which must reflect etcd's head revision) could only be proven with a range read over every
    ConfigMap key, under any steady writer anywhere. One watch over the cluster's whole prefix sees
    every revision of that keyspace in order: after each response every cache is current up to its
    revision, whatever was written. (Writes outside the cluster's prefix, by another cluster sharing
    the etcd, still need the range proof; see `WatchCache._verify_once`.)

    Invariant: every response with revision R is delivered to every registered cache (with the
    events under its prefix, possibly none) before the next one, so each cache may claim R.
    """

    def __init__(self, store: etcd.EtcdStore) -> None:
        self.store = store
        self.revision = 0  # the last revision delivered
        self._caches: dict[str, WatchCache] = {}  # prefix ("group/plural/") -> cache
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        """Watch from etcd's head: every cache registered later lists at or after it."""
        async with self._starting:
            if self._task is None:
                self.revision = await self.store.current_revision()
                self._task = asyncio.create_task(self._run(), name="watchcache feed")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def register(self, cache: WatchCache) -> None:
        self._caches[cache.prefix] = cache

    def unregister(self, cache: WatchCache) -> None:
        if self._caches.get(cache.prefix) is cache:
            del self._caches[cache.prefix]

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                async for batch in self.store.watch("", start_revision=self.revision + 1, prev_values=False):
                    self._deliver(batch)
                    backoff = 0.05
            except asyncio.CancelledError:
                raise
            except errors.Compacted:
                await self._relist_all()
            except Exception as exc:  # keep serving what the caches hold; retry the watch
                log.warning("watch cache feed: watch failed (%s); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _deliver(self, batch: etcd.WatchBatch) -> None:
        by_prefix: dict[str, list[etcd.Event]] = {}
        for event in batch.events:
            by_prefix.setdefault(_resource_prefix(event.key), []).append(event)
        for prefix, cache in list(self._caches.items()):
            cache.deliver(by_prefix.get(prefix, []), batch.revision)
        self.revision = batch.revision

    async def _relist_all(self) -> None:
        """Fallen behind the compaction point: every cache relists; the watch resumes from before."""
        head = await self.store.current_revision()
        for cache in list(self._caches.values()):
            await cache.relist()
        self.revision = head


def _resource_prefix(key: str) -> str:
    """`core/configmaps/default/x` -> `core/configmaps/` (the key layout of `store.keys`)."""
    group, _, rest = key.partition("/")
    plural = rest.partition("/")[0]
    return f"{group}/{plural}/"


_reported_corrupt: set[tuple[str, int]] = set()


def _log_corrupt(key: str, revision: int, exc: Exception) -> None:
    """Once per stored version: a corrupt object is reported, not logged at every list."""
    if (key, revision) not in _reported_corrupt:
        if len(_reported_corrupt) > 10_000:
            _reported_corrupt.clear()
        _reported_corrupt.add((key, revision))
        log.error("%s (left out of lists and watches)", exc)


def _consume_exception(task: asyncio.Task[None]) -> None:
    """Waiters get a failed check's exception; nobody needs to be told again that it was never read."""
    if not task.cancelled():
        task.exception()


def _deleted(entry: Entry, revision: int) -> Entry:
    """The last state of a deleted object, stamped with the deletion's revision (as upstream)."""
    return Entry(entry.key, entry.value, revision, create_revision=entry.create_revision, version=entry.version,
                 unreadable=entry.unreadable)
