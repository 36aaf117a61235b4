"""Guarantees under load: no lost updates under contention; watchers see every event once, in order, under compaction."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from reconcile.store import etcd, keys
from tests import support
from tests.api import helpers
from tests.api.helpers import MERGE, cm_path

CLIENTS = 16
INCREMENTS = 1_000
KEYS = 50
WRITES = 5_000
WRITERS = 24
WATCHERS = 5


def _async_client(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, timeout=30.0, verify=support.connection(base_url).ssl_context(),
                             limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))


@pytest.mark.timeout(300)
async def test_concurrent_read_modify_write_loses_nothing(api_server: str, ns: str) -> None:
    async with _async_client(api_server) as client:
        created = await client.post(cm_path(ns), json=helpers.configmap("counter", {"n": "0"}))
        assert created.status_code == 201
        remaining = INCREMENTS
        successes = 0
        conflicts = 0

        async def worker() -> None:
            nonlocal remaining, successes, conflicts
            current: dict[str, Any] | None = None  # what this client last read or wrote
            while remaining > 0:
                remaining -= 1
                for attempt in itertools.count():  # retry on conflict (with jittered backoff) until it lands
                    if current is None:
                        current = (await client.get(cm_path(ns, "counter"))).json()
                    current["data"]["n"] = str(int(current["data"]["n"]) + 1)
                    response = await client.put(cm_path(ns, "counter"), json=current)
                    if response.status_code == 200:
                        successes += 1
                        current = response.json()
                        break
                    assert response.status_code == 409 and response.json()["reason"] == "Conflict", response.text
                    conflicts += 1
                    current = None
                    backoff = random.uniform(0, min(0.5, 0.005 * 2 ** min(attempt, 7)))
                    await asyncio.sleep(backoff)  # a client's jittered backoff is the workload: not a synchronization

        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        final = (await client.get(cm_path(ns, "counter"))).json()
    assert successes == INCREMENTS
    assert int(final["data"]["n"]) == successes
    assert conflicts > 0  # the clients really did contend


@dataclass
class WatcherLog:
    """What one watcher saw: its view of the objects, and whether it ever had to relist."""

    name: str
    reconnect_every: int = 0  # >0: drop the connection every N events and resume from the last RV
    state: dict[str, int] = field(default_factory=dict)  # name -> resourceVersion
    revisions: list[int] = field(default_factory=list)  # every event's RV, in arrival order (per segment)
    relists: int = 0
    resumes: int = 0
    last_rv: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    bookmarks: int = 0


async def _relist(client: httpx.AsyncClient, ns: str, log: WatcherLog) -> None:
    listing = (await client.get(cm_path(ns))).json()
    log.state = {i["metadata"]["name"]: int(i["metadata"]["resourceVersion"]) for i in listing["items"]}
    log.last_rv = int(listing["metadata"]["resourceVersion"])


async def _watch(client: httpx.AsyncClient, ns: str, log: WatcherLog, stop: asyncio.Event) -> None:
    """List+watch like an informer: resume from the last RV, relist on 410."""
    seen_in_segment = 0
    while not stop.is_set():
        params = {"watch": "true", "resourceVersion": str(log.last_rv), "allowWatchBookmarks": "true"}
        async with client.stream("GET", cm_path(ns), params=params, timeout=httpx.Timeout(10.0, read=None)) as response:
            assert response.status_code == 200
            seen_in_segment = 0
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = orjson.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    assert obj["code"] == 410, obj
                    log.relists += 1
                    await _relist(client, ns, log)
                    break
                rv = int(obj["metadata"]["resourceVersion"])
                if kind == "BOOKMARK":
                    log.bookmarks += 1
                    log.last_rv = max(log.last_rv, rv)
                    continue
                if rv <= log.last_rv:
                    log.duplicates += 1 if rv in log.revisions else 0
                    log.out_of_order += 1
                log.revisions.append(rv)
                log.last_rv = max(log.last_rv, rv)
                name = obj["metadata"]["name"]
                if kind == "DELETED":
                    log.state.pop(name, None)
                else:
                    log.state[name] = rv
                seen_in_segment += 1
                if log.reconnect_every and seen_in_segment >= log.reconnect_every:
                    log.resumes += 1
                    break
                if stop.is_set():
                    return


@pytest.fixture(scope="module")
def server_args() -> tuple[str, ...]:
    """Bookmarks come often, so they interleave with the write storm: a bookmark must never claim a
    revision whose events the watcher has not been sent yet."""
    return ("--bookmark-interval", "0.2")


def _stored_configmap(namespace: str, name: str, value: int) -> bytes:
    """A ConfigMap as the server stores it (no resourceVersion: that is the etcd mod_revision)."""
    return orjson.dumps({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "data": {"n": str(value)},
    })


@pytest.mark.timeout(150)
async def test_watchers_see_every_write_once_in_order_under_compaction(server_process: support.ApiServerProcess,
                                                                       etcd_endpoint: str, ns: str) -> None:
    """Every 10th write goes through the API; the rest go straight to etcd, as a second API server's would.

    That keeps 5,000 writes affordable on a small machine while the watch path under test (etcd watch ->
    watch cache -> fan-out -> HTTP stream) sees exactly what it would see from API writes.
    """
    store = etcd.EtcdStore([etcd_endpoint], prefix=server_process.prefix)
    await store.open()
    async with _async_client(server_process.url) as client:
        start_rv = int((await client.get(cm_path(ns))).json()["metadata"]["resourceVersion"])
        logs = [WatcherLog(f"w{i}", reconnect_every=1500 if i == WATCHERS - 1 else 0) for i in range(WATCHERS)]
        for log in logs:
            log.last_rv = start_rv
        logs.append(WatcherLog("late", state={}))
        logs[-1].last_rv = 1  # long compacted: starts with 410, relists, then watches
        stop = asyncio.Event()
        watch_clients = [_async_client(server_process.url) for _ in logs]
        watchers = [asyncio.create_task(_watch(c, ns, log, stop)) for c, log in zip(watch_clients, logs, strict=True)]

        write_revisions: list[int] = []
        counter = 0

        async def write(i: int) -> None:
            name = f"k{i % KEYS:02d}"
            if i < KEYS:
                response = await client.post(cm_path(ns), json=helpers.configmap(name, {"n": str(i)}))
                assert response.status_code == 201, response.text
                write_revisions.append(int(response.json()["metadata"]["resourceVersion"]))
            elif i % 10 == 0:
                response = await client.patch(cm_path(ns, name), json={"data": {"n": str(i)}}, headers=MERGE)
                assert response.status_code == 200, response.text
                write_revisions.append(int(response.json()["metadata"]["resourceVersion"]))
            else:
                key = keys.object_key("", "configmaps", ns, name)
                write_revisions.append(await store.update(key, _stored_configmap(ns, name, i), expected_revision=None))

        async def writer() -> None:
            nonlocal counter
            while counter < WRITES:
                i = counter
                counter += 1
                await write(i)

        compactions = 0

        async def compactor() -> None:
            nonlocal compactions
            previous = await store.current_revision()
            while not stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.3)
                current = await store.current_revision()
                await store.compact(previous)
                compactions += 1
                previous = current

        compacting = asyncio.create_task(compactor())
        started = time.monotonic()
        for i in range(KEYS):  # the creates first, so later writes find their keys
            await write(i)
        counter = KEYS
        await asyncio.gather(*(writer() for _ in range(WRITERS)))
        write_seconds = time.monotonic() - started
        final = (await client.get(cm_path(ns))).json()
        final_rv = int(final["metadata"]["resourceVersion"])
        expected_state = {i["metadata"]["name"]: int(i["metadata"]["resourceVersion"]) for i in final["items"]}

        # A watcher that never catches up is reported by the assertions below, with what it missed.
        with contextlib.suppress(AssertionError):
            await support.eventually(lambda: all(log.last_rv >= final_rv for log in logs), timeout=30,
                                     interval=0.05, what="every watcher at the final revision")
        stop.set()
        results = await asyncio.gather(compacting, return_exceptions=True)
        for task in watchers:
            task.cancel()
        results += await asyncio.gather(*watchers, return_exceptions=True)
        for c in watch_clients:
            await c.aclose()
    await store.close()
    for result in results:
        assert result is None or isinstance(result, asyncio.CancelledError), repr(result)

    assert len(write_revisions) == WRITES and len(set(write_revisions)) == WRITES
    assert compactions >= 2, f"compaction ran {compactions} times in {write_seconds:.1f}s"
    ordered = sorted(write_revisions)
    for log in logs:
        assert log.last_rv >= final_rv, f"{log.name} stuck at {log.last_rv} < {final_rv}"
        assert log.state == expected_state, f"{log.name} ended in a different state"
        assert log.duplicates == 0 and log.out_of_order == 0, log.name
        if log.relists == 0:
            assert log.revisions == ordered, f"{log.name} missed or repeated events"
        else:
            assert log.revisions == sorted(set(log.revisions)), f"{log.name} saw events out of order or twice"
    assert logs[WATCHERS - 1].resumes >= 3  # the resuming watcher really did reconnect mid-stream
    assert sum(log.bookmarks for log in logs) > 0  # bookmarks interleaved with the events
    assert logs[-1].relists >= 1  # the late watcher took the 410 -> relist path
