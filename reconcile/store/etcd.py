"""etcd as the single source of truth: revisions, compare-and-swap writes and watch streams.

This is the one seam to `etcd3-py`. We only use `AioClient.call_rpc(..., encode=False, raw=True)`
(the JSON gateway, raw aiohttp responses): the modelized calls are about 7x slower. In the gateway,
keys and values are base64, int64 fields are strings, and zero/false fields are omitted.
Each member's version is read from its `/version` (with aiohttp, before the store's first request to
it), never assumed: etcd3-py picks the gateway prefix from it, and a member older than
`MINIMUM_SERVER_VERSION` is refused with a clear error.
Every write is a transaction guarded by a revision compare, so lost updates are impossible.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson
import semantic_version
from etcd3 import baseclient
from etcd3.aio_client import AioClient

from reconcile.core import errors
from reconcile.store import headread, keys, stream


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str  # relative to the store's prefix
    value: bytes  # as the transformer gave it back (plaintext); b"" when `unreadable`
    create_revision: int
    mod_revision: int  # the object's resourceVersion
    version: int
    stale: bool = False  # the transformer would store it differently now (an older key): rewrite it
    unreadable: str = ""  # why the transformer could not read the stored value back ("" if it could)


@dataclass(frozen=True, slots=True)
class Event:
    type: Literal["PUT", "DELETE"]
    key: str
    value: bytes  # DELETE: the value before deletion (empty if etcd could not give it, or `unreadable`)
    mod_revision: int  # the revision of this change
    create_revision: int  # DELETE: the deleted object's create revision
    prev_value: bytes | None  # the value before this change; None for a create (b"" if unreadable)
    unreadable: str = ""  # why `value` could not be read back by the transformer


class UnreadableValue(Exception):
    """A transformer cannot turn a stored value back into the object's bytes (a missing or wrong key,
    an altered value). The message is safe to show: it never holds the value."""


class ValueTransformer(Protocol):
    """Applied to every value between the store's callers and etcd (encryption at rest: see
    `store.encryption`). Keys are relative to the store's prefix."""

    def to_storage(self, key: str, value: bytes) -> bytes:
        """What to write to etcd for `value`."""
        ...

    def from_storage(self, key: str, stored: bytes) -> tuple[bytes, bool]:
        """(the value, stale) for what etcd holds; raises `UnreadableValue`."""
        ...


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """What one watch response carried.

    Invariant: every event under the watched prefix with `mod_revision <= revision` has been
    delivered (in this batch or an earlier one). An empty batch is a progress notification: the
    prefix is idle up to `revision`, so a watch cache can serve consistent reads at that revision.
    """

    events: list[Event]
    revision: int


@dataclass(frozen=True, slots=True)
class RangeResult:
    items: list[KeyValue]
    revision: int  # the revision the range was read at (the one asked for, else the current one)
    more: bool  # more keys after the last item (paging)
    count: int  # keys in the range from the start key (with start_after: the ones after it)


@dataclass(frozen=True, slots=True)
class TLSConfig:
    ca_file: str | None = None  # verify the server with this CA (else the system's)
    cert_file: str | None = None  # client certificate, for etcd's --client-cert-auth
    key_file: str | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


# The oldest etcd this store is known to work with: the first release serving the stable `/v3` gateway.
MINIMUM_SERVER_VERSION = semantic_version.Version("3.4.0")


@dataclass(frozen=True, slots=True)
class ServerVersion:
    """What an etcd member's `/version` endpoint says."""

    server: str  # `etcdserver`, e.g. "3.5.17"
    cluster: str  # `etcdcluster`; "not_decided" while a new cluster is bootstrapping


class _EndpointUnusable(Exception):
    """An endpoint's `/version` could not be read: nothing was sent to its gateway, so failing over is safe."""


async def _read_version(session: aiohttp.ClientSession, url: str, timeout: aiohttp.ClientTimeout) -> ServerVersion:
    """GET `url`/version with our own session (etcd3-py's probe is a blocking `requests.get`)."""
    try:
        async with session.get(url.rstrip("/") + "/version", timeout=timeout) as response:
            body = await response.read()
            status = response.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise _EndpointUnusable(f"{url}/version: {exc!r}") from exc
    try:
        data = orjson.loads(body) if status == 200 else None
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("etcdserver"), str):
        raise _EndpointUnusable(f"{url}/version answered HTTP {status}: {body[:200]!r}")
    version = ServerVersion(server=data["etcdserver"], cluster=str(data.get("etcdcluster") or ""))
    try:
        too_old = semantic_version.Version(version.server) < MINIMUM_SERVER_VERSION
    except ValueError:
        raise errors.StorageError(f"etcd at {url} reports an unreadable version {version.server!r}") from None
    if too_old:
        raise errors.StorageError(f"etcd at {url} is version {version.server}; this store needs "
                                  f"{MINIMUM_SERVER_VERSION} or newer")
    return version


class _GatewayClient(AioClient):
    """etcd3-py's `AioClient` for one endpoint whose version was already read (asynchronously).

    This leans on three private parts of etcd3-py, which is why pyproject.toml pins it to the
    release they were checked against and tests/architecture/test_library_internals.py asserts
    their shape (it fails loudly if an upgrade changes them):
    - `AioClient.__init__` is skipped: it builds its own session, without our TLS context (it has
      none for a server-only CA), cookie jar or serializer. `BaseClient.__init__` sets the rest.
    - `BaseClient.__init__` calls `_retrieve_version()`, a blocking `requests.get` of `/version`
      (it would stall the event loop): overridden to take the version we read with aiohttp. etcd3-py
      then checks it and picks the gateway prefix (`/v3` for 3.4+) from it, as it does by itself.
    - `_url(method, prefix)` runs `urljoin` on every call (~9 us): overridden to join each URL once.
    """

    def __init__(self, url: str, *, session: aiohttp.ClientSession, version: ServerVersion,
                 ssl_context: ssl.SSLContext | None) -> None:
        parts = urlsplit(url)
        self._urls: dict[tuple[str, bool], str] = {}
        baseclient.BaseClient.__init__(
            self,
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (443 if parts.scheme == "https" else 2379),
            protocol=parts.scheme or "http",
            server_version=version.server,
            cluster_version=version.cluster,
        )
        self.ssl_context = ssl_context
        self.session = session

    def _retrieve_version(self) -> None:
        """Called by `BaseClient.__init__`: the versions were given to it, read from etcd beforehand."""
        self.server_version_sem = semantic_version.Version(self.server_version)
        try:
            self.cluster_version_sem = semantic_version.Version(self.cluster_version)
        except ValueError:  # "not_decided": etcd3-py only stores it
            self.cluster_version_sem = self.server_version_sem

    def _url(self, method: str, prefix: bool = True) -> str:
        """The gateway URL of `method`, joined once (the base class runs `urljoin` on every call)."""
        url = self._urls.get((method, prefix))
        if url is None:
            url = self._urls[(method, prefix)] = super()._url(method, prefix)
        return url


@dataclass(slots=True)
class _Endpoint:
    """One etcd endpoint: its HTTP sessions, and its gateway clients once its version has been read.

    Invariant: `rpc` and `watch` are None until `version` is set, and set together with it.
    """

    url: str
    rpc_session: aiohttp.ClientSession
    watch_session: aiohttp.ClientSession  # watches hold their connection for their lifetime: an unbounded pool
    ssl_context: ssl.SSLContext | None
    connecting: asyncio.Lock  # one `/version` probe at a time
    version: ServerVersion | None = None
    rpc: _GatewayClient | None = None
    watch: _GatewayClient | None = None


class WatchFilter:
    """Pass each event exactly once and in revision order; count what it drops.

    Invariant: `last_revision` is the highest revision passed on (or known complete through a
    progress notification). Events of one transaction share a revision, so at `last_revision` we
    remember which keys were passed; `_keys_at_last is None` means that revision is closed.
    """

    def __init__(self, *, after: int) -> None:
        self.last_revision = after
        self._keys_at_last: set[str] | None = None
        self.dropped = 0

    def accept(self, events: list[Event]) -> list[Event]:
        passed: list[Event] = []
        for event in events:
            revision = event.mod_revision
            if revision < self.last_revision or (
                revision == self.last_revision and (self._keys_at_last is None or event.key in self._keys_at_last)
            ):
                self.dropped += 1
                continue
            if revision > self.last_revision:
                self.last_revision = revision
                self._keys_at_last = set()
            assert self._keys_at_last is not None
            self._keys_at_last.add(event.key)
            passed.append(event)
        return passed

    def advance(self, revision: int) -> bool:
        """Everything up to `revision` is known; True if that is news."""
        if revision <= self.last_revision:
            return False
        self.last_revision = revision
        self._keys_at_last = None
        return True


class _StreamBroken(Exception):
    """The watch stream ended or failed; reconnect."""


def _session(ssl_context: ssl.SSLContext | None, *, limit: int) -> aiohttp.ClientSession:
    """An aiohttp session for one endpoint's gateway calls (`limit=0`: unbounded, for watches)."""
    connector = aiohttp.TCPConnector(limit=limit, ssl=ssl_context if ssl_context else True)
    # etcd sets no cookies: the dummy jar skips matching cookies against every request's URL.
    return aiohttp.ClientSession(connector=connector, json_serialize=lambda obj: orjson.dumps(obj).decode(),
                                 cookie_jar=aiohttp.DummyCookieJar())


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _unb64(text: str | None) -> bytes:
    return binascii.a2b_base64(text) if text else b""


class EtcdStore:
    """Keys relative to `prefix`, revisions as resourceVersions, CAS writes, resumable watches.

    `endpoints` are tried in order; on a connection error we fail over to the next one.
    `stats` counts what the watch machinery absorbed: dropped duplicates, reconnects.
    `transformer` (encryption at rest) sees every value written and read: etcd holds what it makes
    of them, callers only ever see what it gives back (a value it cannot read back comes as
    `unreadable`, so one bad object never fails a list or a watch).
    """

    def __init__(
        self,
        endpoints: list[str],
        *,
        prefix: str = "/registry",
        tls: TLSConfig | None = None,
        request_timeout: float = 30.0,
        pool_size: int = 128,
        transformer: ValueTransformer | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = list(endpoints)
        self.prefix = prefix.rstrip("/") + "/"
        self._prefix_bytes = self.prefix.encode()
        self.tls = tls
        self._timeout = aiohttp.ClientTimeout(total=request_timeout, sock_connect=5)
        self._watch_timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        self._pool_size = pool_size
        self.transformer = transformer
        self._endpoints: list[_Endpoint] = []
        self._current = 0  # index of the endpoint in use
        self._known_compact = 0  # highest revision this store compacted (fallback for errors)
        self.stats: dict[str, int] = {"watch_duplicates_dropped": 0, "watch_reconnects": 0, "failovers": 0}
        self.head_reads = headread.SharedRead(self.current_revision)

    # --- lifecycle ---

    async def open(self) -> None:
        """Create the HTTP sessions (they need the running loop). Does not contact etcd: each
        endpoint's version is read when the store first uses that endpoint."""
        if self._endpoints:
            return
        context = self.tls.context() if self.tls else None
        self._endpoints = [
            _Endpoint(url, _session(context, limit=self._pool_size), _session(context, limit=0), context,
                      asyncio.Lock())
            for url in self.endpoints
        ]

    async def close(self) -> None:
        endpoints, self._endpoints = self._endpoints, []
        for endpoint in endpoints:
            await endpoint.rpc_session.close()
            await endpoint.watch_session.close()

    async def server_version(self) -> ServerVersion:
        """The version of the etcd member in use, as its `/version` said when the store first reached it."""
        await self.current_revision()  # reaches a member, failing over as any read does
        version = self._endpoints[self._current].version
        if version is None:  # another task failed over in between: ask the new member
            version = (await self._connect(self._current)).version
        assert version is not None
        return version

    async def __aenter__(self) -> EtcdStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- reads ---

    async def get(self, key: str, *, revision: int | None = None) -> tuple[KeyValue | None, int]:
        """(the key's value or None, the revision read at)."""
        payload: dict[str, Any] = {"key": _b64(self._full(key))}
        if revision:
            payload["revision"] = revision
        data = await self._call("/kv/range", payload, retry=True, revision=revision)
        kvs = data.get("kvs")
        kv = self._kv(kvs[0]) if kvs else None
        return kv, revision or int(data["header"]["revision"])

    async def list(
        self, prefix: str, *, revision: int | None = None, limit: int = 0, start_after: str | None = None
    ) -> RangeResult:
        """Keys under `prefix` in key order; page with `limit` + `start_after` at one `revision`."""
        full = self._full(prefix)
        start = self._full(start_after) + b"\0" if start_after is not None else full
        payload: dict[str, Any] = {"key": _b64(start), "range_end": _b64(keys.prefix_end(full))}
        if revision:
            payload["revision"] = revision
        if limit:
            payload["limit"] = limit
        data = await self._call("/kv/range", payload, retry=True, revision=revision)
        items = [self._kv(kv) for kv in data.get("kvs", ())]
        return RangeResult(
            items=items,
            revision=revision or int(data["header"]["revision"]),
            more=bool(data.get("more")),
            count=int(data.get("count", 0)),
        )

    async def current_revision(self) -> int:
        """The store's latest revision (a linearizable read)."""
        data = await self._call("/kv/range", {"key": _b64(self._prefix_bytes), "count_only": True}, retry=True)
        return int(data["header"]["revision"])

    async def current_revision_shared(self) -> int:
        """`current_revision` as read by a request sent after this call began, shared with every
        caller waiting at that moment (`headread`): what a consistent read needs, at one etcd
        request per round trip however many readers ask."""
        return await self.head_reads()

    async def prefix_changes(self, prefix: str, *, since_revision: int,
                             revision: int | None = None) -> tuple[int, int, int, int]:
        """(keys under `prefix` modified after `since_revision`, keys under `prefix`, the revision read
        at, the highest mod_revision among the changed keys or 0), read at `revision` (else the head).

        One keys-only range: etcd filters by `min_mod_revision` after counting, so `count` is
        every key under the prefix while `kvs` holds only the changed ones. A watch cache uses
        it to prove it is current for a consistent read without reading any value.
        """
        full = self._full(prefix)
        payload: dict[str, Any] = {"key": _b64(full), "range_end": _b64(keys.prefix_end(full)), "keys_only": True,
                                   "min_mod_revision": since_revision + 1}
        if revision:
            payload["revision"] = revision
        data = await self._call("/kv/range", payload, retry=True, revision=revision)
        changed = data.get("kvs", ())
        latest = max((int(kv.get("mod_revision", 0)) for kv in changed), default=0)
        return len(changed), int(data.get("count", 0)), revision or int(data["header"]["revision"]), latest

    # --- writes (compare-and-swap transactions) ---

    async def create(self, key: str, value: bytes) -> int:
        """Put `key` only if absent; the new revision. `errors.KeyExists` otherwise."""
        if self.transformer is not None:
            value = self.transformer.to_storage(key, value)
        full = _b64(self._full(key))
        txn = {
            "compare": [{"target": "CREATE", "key": full, "create_revision": 0, "result": "EQUAL"}],
            "success": [{"request_put": {"key": full, "value": _b64(value)}}],
        }
        data = await self._call("/kv/txn", txn, retry=False)
        if not data.get("succeeded"):
            raise errors.KeyExists(key)
        return int(data["header"]["revision"])

    async def update(self, key: str, value: bytes, *, expected_revision: int | None) -> int:
        """Replace the value if its mod_revision is `expected_revision` (None: any, but it must exist)."""
        if self.transformer is not None:
            value = self.transformer.to_storage(key, value)
        full = _b64(self._full(key))
        txn = {
            "compare": [self._guard(full, expected_revision)],
            "success": [{"request_put": {"key": full, "value": _b64(value)}}],
            "failure": [{"request_range": {"key": full, "keys_only": True}}],
        }
        data = await self._call("/kv/txn", txn, retry=False)
        if not data.get("succeeded"):
            self._raise_guard_failure(key, data)
        return int(data["header"]["revision"])

    async def delete(self, key: str, *, expected_revision: int | None) -> tuple[int, KeyValue]:
        """Delete if the mod_revision matches (None: any); (the delete's revision, the deleted kv)."""
        full = _b64(self._full(key))
        txn = {
            "compare": [self._guard(full, expected_revision)],
            "success": [{"request_delete_range": {"key": full, "prev_kv": True}}],
            "failure": [{"request_range": {"key": full, "keys_only": True}}],
        }
        data = await self._call("/kv/txn", txn, retry=False)
        if not data.get("succeeded"):
            self._raise_guard_failure(key, data)
        deleted = data["responses"][0]["response_delete_range"]
        prev = deleted.get("prev_kvs")
        if not prev:  # deleted by someone else between compare and delete: impossible in one txn
            raise errors.KeyMissing(key)
        return int(data["header"]["revision"]), self._kv(prev[0])

    async def compact(self, revision: int) -> None:
        """Forget history before `revision`; compacting an already compacted revision is a no-op."""
        try:
            await self._call("/kv/compaction", {"revision": revision}, retry=True, revision=revision)
        except errors.Compacted:
            pass
        self._known_compact = max(self._known_compact, revision)

    @staticmethod
    def _guard(full_key: str, expected_revision: int | None) -> dict[str, Any]:
        if expected_revision is None:
            return {"target": "CREATE", "key": full_key, "create_revision": 0, "result": "GREATER"}
        return {"target": "MOD", "key": full_key, "mod_revision": expected_revision, "result": "EQUAL"}

    @staticmethod
    def _raise_guard_failure(key: str, data: dict[str, Any]) -> None:
        found = data["responses"][0]["response_range"].get("kvs")
        if not found:
            raise errors.KeyMissing(key)
        raise errors.RevisionConflict(key)

    # --- watch ---

    async def watch(self, prefix: str, *, start_revision: int, prev_values: bool = True) -> AsyncIterator[WatchBatch]:
        """Changes under `prefix` from `start_revision` on, as `WatchBatch`es in revision order.

        Each event arrives exactly once: on a stream error or end we reconnect (with backoff, failing
        over between endpoints) from the last revision known complete + 1, and the `WatchFilter`
        drops anything already passed (counted in `stats`). Empty batches are progress notifications
        (see `WatchBatch`). Raises `errors.Compacted` when the next revision needed is gone: the
        caller must relist. Runs until the consumer stops iterating.

        `prev_values=False` is for a consumer that keeps every value itself (the watch cache): etcd
        then neither reads nor sends the previous value of each update, and DELETE events carry no
        value (`value == b""`, `create_revision == 0`, `prev_value is None`).
        """
        full = self._full(prefix)
        seen = WatchFilter(after=start_revision - 1)
        delay = 0.05
        while True:
            next_revision = seen.last_revision + 1
            try:
                async with contextlib.aclosing(self._stream(full, next_revision, prev_values)) as results:
                    async for result in results:
                        if result.get("created") and not result.get("canceled") \
                                and not result.get("compact_revision"):
                            delay = 0.05  # a working stream resets the backoff
                            continue
                        batch = self._batch(result, seen, next_revision)
                        if batch is not None:
                            yield batch
                raise _StreamBroken("watch stream ended")
            except (TimeoutError, _StreamBroken, aiohttp.ClientError, stream.StreamDecodeError,
                    errors.StoreUnavailable):
                self.stats["watch_reconnects"] += 1
                await asyncio.sleep(delay)  # backoff, not synchronization
                delay = min(delay * 2, 2.0)

    def _batch(self, result: dict[str, Any], seen: WatchFilter, start_revision: int) -> WatchBatch | None:
        """One watch response as a batch to pass on, or None if it carries nothing new."""
        compact = int(result.get("compact_revision") or 0)
        if compact:
            raise errors.Compacted(start_revision, compact)
        if result.get("canceled"):
            raise _StreamBroken(result.get("cancel_reason") or "watch canceled")
        raw_events = result.get("events")
        if raw_events:
            dropped = seen.dropped
            events = seen.accept([self._event(event) for event in raw_events])
            self.stats["watch_duplicates_dropped"] += seen.dropped - dropped
            return WatchBatch(events, seen.last_revision) if events else None
        # a progress notification: etcd sends them only to watchers that are caught up
        if seen.advance(int(result.get("header", {}).get("revision", 0))):
            return WatchBatch([], seen.last_revision)
        return None

    async def _stream(self, full_prefix: bytes, start_revision: int,
                      prev_values: bool = True) -> AsyncIterator[dict[str, Any]]:
        """One watch stream on the current endpoint: the `result` of each message, until EOF."""
        request = {
            "create_request": {
                "key": _b64(full_prefix),
                "range_end": _b64(keys.prefix_end(full_prefix)),
                "start_revision": start_revision,
                "prev_kv": prev_values,
                "progress_notify": True,
            }
        }
        index = self._current
        try:
            client = self._endpoints[index].watch or await self._connect(index, for_watch=True)
            response = await client.call_rpc("/watch", request, encode=False, raw=True,
                                             timeout=self._watch_timeout)
        except _EndpointUnusable as exc:
            self._fail_over(index)
            raise _StreamBroken(str(exc)) from exc
        except aiohttp.ClientConnectorError:
            self._fail_over(index)
            raise
        try:
            if response.status != 200:
                raise _StreamBroken(f"watch answered HTTP {response.status}")
            splitter = stream.MessageSplitter()
            async for chunk in response.content.iter_any():
                for message in splitter.feed(chunk):
                    if "error" in message:
                        raise _StreamBroken(str(message["error"]))
                    yield message.get("result") or {}
            for message in splitter.finish():
                yield message.get("result") or {}
        finally:
            response.close()

    async def _compact_revision(self) -> int:
        """etcd only tells the compaction point to watchers: ask with a watch from revision 1."""
        try:
            async with asyncio.timeout(2):
                async with contextlib.aclosing(self._stream(self._prefix_bytes, 1)) as results:
                    async for result in results:
                        if result.get("compact_revision"):
                            return int(result["compact_revision"])
                        if result.get("canceled") or result.get("events"):
                            break
        except (aiohttp.ClientError, TimeoutError, _StreamBroken, stream.StreamDecodeError):
            pass
        return self._known_compact

    # --- plumbing ---

    def _full(self, key: str) -> bytes:
        return self._prefix_bytes + key.encode()

    def _kv(self, raw: dict[str, Any]) -> KeyValue:
        key = _unb64(raw.get("key"))[len(self._prefix_bytes):].decode()
        value = _unb64(raw.get("value"))
        stale, unreadable = False, ""
        if self.transformer is not None:
            value, stale, unreadable = self._from_storage(key, value)
        return KeyValue(
            key=key,
            value=value,
            create_revision=int(raw.get("create_revision", 0)),
            mod_revision=int(raw.get("mod_revision", 0)),
            version=int(raw.get("version", 0)),
            stale=stale,
            unreadable=unreadable,
        )

    def _event(self, raw: dict[str, Any]) -> Event:
        kv = raw.get("kv", {})
        prev = raw.get("prev_kv")
        prev_value = _unb64(prev.get("value")) if prev else None
        key = _unb64(kv.get("key"))[len(self._prefix_bytes):].decode()
        prev_unreadable = ""
        if self.transformer is not None and prev_value:
            prev_value, _, prev_unreadable = self._from_storage(key, prev_value)
        if raw.get("type") == "DELETE":
            return Event("DELETE", key, prev_value or b"", int(kv.get("mod_revision", 0)),
                         int(prev.get("create_revision", 0)) if prev else 0, prev_value, prev_unreadable)
        value, unreadable = _unb64(kv.get("value")), ""
        if self.transformer is not None:
            value, _, unreadable = self._from_storage(key, value)
        return Event("PUT", key, value, int(kv.get("mod_revision", 0)),
                     int(kv.get("create_revision", 0)), prev_value, unreadable)

    def _from_storage(self, key: str, stored: bytes) -> tuple[bytes, bool, str]:
        """(value, stale, why unreadable): a value the transformer cannot read back is b"" and the reason."""
        assert self.transformer is not None
        try:
            value, stale = self.transformer.from_storage(key, stored)
        except UnreadableValue as exc:
            return b"", False, str(exc)
        return value, stale, ""

    async def _connect(self, index: int, *, for_watch: bool = False) -> _GatewayClient:
        """Read endpoint `index`'s version and make its gateway clients (once; later callers wait).

        Raises `_EndpointUnusable` if `/version` cannot be read, `errors.StorageError` if the
        member is older than `MINIMUM_SERVER_VERSION`.
        """
        endpoint = self._endpoints[index]
        async with endpoint.connecting:
            if endpoint.version is None:
                version = await _read_version(endpoint.rpc_session, endpoint.url, self._timeout)
                endpoint.rpc = _GatewayClient(endpoint.url, session=endpoint.rpc_session, version=version,
                                              ssl_context=endpoint.ssl_context)
                endpoint.watch = _GatewayClient(endpoint.url, session=endpoint.watch_session, version=version,
                                                ssl_context=endpoint.ssl_context)
                endpoint.version = version
        client = endpoint.watch if for_watch else endpoint.rpc
        assert client is not None
        return client

    def _fail_over(self, index: int) -> None:
        """Move to the next endpoint, unless another task already did."""
        if self._current == index and len(self.endpoints) > 1:
            self._current = (index + 1) % len(self.endpoints)
            self.stats["failovers"] += 1

    async def _call(
        self, method: str, payload: dict[str, Any], *, retry: bool, revision: int | None = None
    ) -> dict[str, Any]:
        """POST to the gateway (`method` is relative to its prefix, e.g. `/kv/range`) with failover. `retry=False` for writes: a request that may have
        reached etcd is not sent again (a retried create could report KeyExists for itself)."""
        if not self._endpoints:
            raise errors.StoreUnavailable("store is not open")
        last: Exception | None = None
        body_bytes = orjson.dumps(payload)
        for _attempt in range(len(self.endpoints) + 1):
            index = self._current
            try:
                client = self._endpoints[index].rpc or await self._connect(index)
                # Pre-serialized with orjson: given a dict, aiohttp would run the stdlib's json.dumps over
                # every base64 value (a measurable share of a write's CPU).
                async with client.call_rpc(method, body_bytes, encode=False, raw=True,
                                           timeout=self._timeout, headers={"Content-Type": "application/json"}) as response:
                    body = await response.read()
                    status = response.status
            except (aiohttp.ClientConnectorError, _EndpointUnusable) as exc:  # never reached etcd: safe to resend
                last = exc
                self._fail_over(index)
                continue
            except (TimeoutError, aiohttp.ClientError) as exc:
                if not retry:
                    raise errors.StoreUnavailable(f"etcd request {method} failed: {exc!r}") from exc
                last = exc
                self._fail_over(index)
                continue
            try:
                data = orjson.loads(body) if body else {}
            except orjson.JSONDecodeError:
                data = {"message": body[:200].decode(errors="replace")}
            if status != 200:
                await self._raise_error(data, status, revision)
            return data
        raise errors.StoreUnavailable(f"no etcd endpoint answered ({', '.join(self.endpoints)}): {last!r}") from last

    async def _raise_error(self, data: dict[str, Any], status: int, revision: int | None) -> None:
        message = str(data.get("message") or data.get("error") or f"HTTP {status}")
        code = int(data.get("code") or 0)
        if "required revision has been compacted" in message:
            raise errors.Compacted(revision or 0, await self._compact_revision())
        if "future revision" in message:
            raise errors.FutureRevision(message)
        if "request is too large" in message or (code == 8 and "larger than max" in message):
            raise errors.ValueTooLarge(message)
        if code == 14 or status == 503 or "no leader" in message:
            raise errors.StoreUnavailable(message)
        raise errors.StorageError(message)
