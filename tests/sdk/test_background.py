"""Timers (virtual time, never overlapping), daemons (stopped flag, finalizer until they exit),
indexes, raw events, startup/cleanup with memo, and rc.event."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import reconcile as rc
from reconcile.client import aio
from reconcile.core import errors
from reconcile.engine import clock as clock_mod
from reconcile.engine.sdk import operator, state
from tests.sdk import helpers

AV, PLURAL = helpers.API_VERSION, helpers.PLURAL


async def _gone(client: aio.AsyncClient, namespace: str, name: str) -> bool:
    try:
        await client.get(AV, PLURAL, name, namespace=namespace)
    except errors.NotFound:
        return True
    return False


async def test_timer_runs_on_interval_and_never_overlaps(async_client: aio.AsyncClient, namespace: str) -> None:
    clock = clock_mod.FakeClock(wall_start=datetime.now(UTC))
    reg = rc.Registry()
    runs: list[float] = []
    active = {"now": 0, "max": 0}
    gate = asyncio.Event()

    @rc.timer(AV, PLURAL, interval=10, initial_delay=5, registry=reg)
    async def tick(**_: Any) -> int:
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        runs.append(clock.now())
        if len(runs) == 2:
            await gate.wait()  # a slow run: time passes, no second run may start meanwhile
        active["now"] -= 1
        return len(runs)

    async with operator.running(async_client, registry=reg, namespaces=[namespace], clock=clock):
        await async_client.create(AV, PLURAL, helpers.widget("tm"), namespace=namespace)

        async def has_finalizer() -> bool:
            obj = await async_client.get(AV, PLURAL, "tm", namespace=namespace)
            return state.FINALIZER in (obj["metadata"].get("finalizers") or [])

        await helpers.eventually(has_finalizer, what="timers hold a finalizer")
        await helpers.eventually(lambda: clock.sleepers >= 1)
        clock.advance(4.9)
        await clock.run_until_idle()
        assert runs == []
        clock.advance(0.1)
        await helpers.eventually(lambda: runs == [5.0])
        await helpers.eventually(lambda: clock.sleepers >= 1)
        clock.advance(10)
        await helpers.eventually(lambda: len(runs) == 2)
        for _ in range(3):
            clock.advance(10)
            await clock.run_until_idle()
        assert len(runs) == 2 and active["max"] == 1
        gate.set()
        await helpers.eventually(lambda: clock.sleepers >= 1 and active["now"] == 0)
        clock.advance(10)
        await helpers.eventually(lambda: len(runs) == 3)

        async def result_stored() -> bool:
            obj = await async_client.get(AV, PLURAL, "tm", namespace=namespace)
            return obj.get("status", {}).get("tick") in (2, 3)

        await helpers.eventually(result_stored)
        await async_client.delete(AV, PLURAL, "tm", namespace=namespace)
        await helpers.eventually(lambda: _gone(async_client, namespace, "tm"), what="timer stopped, finalizer released")
    assert active["max"] == 1


async def test_daemons_stop_on_deletion(async_client: aio.AsyncClient, namespace: str) -> None:
    reg = rc.Registry()
    log: list[str] = []

    @rc.daemon(AV, PLURAL, registry=reg)
    async def watcher(name: str, stopped: Any, **_: Any) -> None:
        log.append(f"async-start:{name}")
        await stopped.wait()
        log.append(f"async-stop:{name}")

    @rc.daemon(AV, PLURAL, registry=reg)
    def blocking(name: str, stopped: Any, **_: Any) -> None:
        log.append(f"sync-start:{name}:{threading.current_thread().name}")
        while not stopped.wait(5):
            pass
        log.append(f"sync-stop:{name}")

    async with operator.running(async_client, registry=reg, namespaces=[namespace]):
        await async_client.create(AV, PLURAL, helpers.widget("dm"), namespace=namespace)
        await helpers.eventually(lambda: "async-start:dm" in log and any(x.startswith("sync-start:dm") for x in log))
        assert any(x.startswith("sync-start:dm:daemon:") for x in log)
        await async_client.delete(AV, PLURAL, "dm", namespace=namespace)
        await helpers.eventually(lambda: _gone(async_client, namespace, "dm"))
        assert "async-stop:dm" in log and "sync-stop:dm" in log
        await async_client.create(AV, PLURAL, helpers.widget("dm2"), namespace=namespace)
        await helpers.eventually(lambda: "async-start:dm2" in log)
    # shutdown stops them too
    assert "async-stop:dm2" in log


async def test_index_event_startup_cleanup_and_events(async_client: aio.AsyncClient, namespace: str) -> None:
    reg = rc.Registry()
    seen: dict[str, Any] = {"events": [], "cleanup": False}

    @rc.on.startup(registry=reg)
    async def boot(memo: rc.Memo, **_: Any) -> None:
        memo.greeting = "hi"

    @rc.on.cleanup(registry=reg)
    def bye(memo: rc.Memo, **_: Any) -> None:
        seen["cleanup"] = memo.greeting

    @rc.index(AV, PLURAL, registry=reg)
    def by_color(spec: dict, name: str, **_: Any) -> dict | None:
        return {spec["color"]: name} if "color" in spec else None

    @rc.on.event(AV, PLURAL, registry=reg)
    def raw(event: dict, type: str, name: str, **_: Any) -> None:
        seen["events"].append((type, name))

    @rc.on.create(AV, PLURAL, registry=reg)
    def created(body: dict, name: str, memo: rc.Memo, by_color: Any, **_: Any) -> dict:
        rc.event(body, "Greeting", f"{memo.greeting} {name}")
        return {"greeting": memo.greeting, "red": sorted(by_color.get("red", []))}

    async with operator.running(async_client, registry=reg, namespaces=[namespace]) as op:
        await async_client.create(AV, PLURAL, helpers.widget("i1", spec={"color": "red"}), namespace=namespace)
        await async_client.create(AV, PLURAL, helpers.widget("i2", spec={"color": "red"}), namespace=namespace)

        async def both_handled() -> list | None:
            items = (await async_client.list(AV, PLURAL, namespace=namespace))["items"]
            results = [o.get("status", {}).get("created") for o in items]
            return results if len(results) == 2 and all(results) else None

        results = await helpers.eventually(both_handled)
        assert all(r["greeting"] == "hi" for r in results)
        index = op.runtime_index("by_color")
        assert sorted(index["red"]) == ["i1", "i2"]
        await async_client.patch(AV, PLURAL, "i1", {"spec": {"color": "blue"}}, namespace=namespace)
        await helpers.eventually(lambda: index.get("blue") == ["i1"] and index.get("red") == ["i2"])
        await async_client.delete(AV, PLURAL, "i2", namespace=namespace)
        await helpers.eventually(lambda: "red" not in index)

        async def posted() -> list:
            events = await async_client.list("v1", "events", namespace=namespace)
            return [e for e in events["items"] if e["reason"] == "Greeting"]

        events = await helpers.eventually(lambda: _count(posted, 2))
        assert {e["involvedObject"]["name"] for e in events} == {"i1", "i2"}
        assert {e["message"] for e in events} == {"hi i1", "hi i2"}
        await helpers.eventually(lambda: ("DELETED", "i2") in seen["events"])
    assert ("ADDED", "i1") in seen["events"] and ("MODIFIED", "i1") in seen["events"]
    assert seen["cleanup"] == "hi"


async def _count(fn: Any, n: int) -> Any:
    items = await fn()
    return items if len(items) >= n else None


async def test_idle_timer_waits_for_quiet_and_filters_stop_daemons(
    async_client: aio.AsyncClient, namespace: str
) -> None:
    clock = clock_mod.FakeClock(wall_start=datetime.now(UTC))
    reg = rc.Registry()
    runs: list[float] = []
    daemon_log: list[str] = []

    @rc.timer(AV, PLURAL, interval=1, idle=10, optional=True, registry=reg)
    def quiet(**_: Any) -> None:
        runs.append(clock.now())

    @rc.daemon(AV, PLURAL, labels={"watch": "yes"}, optional=True, registry=reg)
    async def labelled(stopped: Any, **_: Any) -> None:
        daemon_log.append("start")
        await stopped.wait()
        daemon_log.append("stop")

    async with operator.running(async_client, registry=reg, namespaces=[namespace], clock=clock):
        await async_client.create(AV, PLURAL, helpers.widget("q", labels={"watch": "yes"}), namespace=namespace)
        await helpers.eventually(lambda: daemon_log == ["start"] and clock.sleepers >= 1)
        clock.advance(6)
        await clock.run_until_idle()
        await async_client.patch(AV, PLURAL, "q", {"metadata": {"labels": {"watch": "no"}}}, namespace=namespace)
        await helpers.eventually(lambda: daemon_log == ["start", "stop"], what="daemon stopped when the filter fails")
        clock.advance(6)  # 6 s after the change: still not idle for 10 s
        await clock.run_until_idle()
        assert runs == []
        await helpers.eventually(lambda: clock.sleepers >= 1)
        clock.advance(4)
        await helpers.eventually(lambda: len(runs) == 1, what="timer ran after 10 s without changes")
        obj = await async_client.get(AV, PLURAL, "q", namespace=namespace)
        assert not obj["metadata"].get("finalizers")  # optional timers and daemons hold none
