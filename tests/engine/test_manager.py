"""The manager: runnables, leader-only runnables, graceful shutdown, health and metrics endpoints."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from reconcile.client import aio
from reconcile.core import errors
from reconcile.engine import clock, controller, leader, manager
from tests import support

FAST = leader.LeaderConfig(lease_duration=2.0, renew_deadline=1.5, retry_period=0.2)


@pytest.fixture
async def ns(ac: aio.AsyncClient) -> str:
    name = f"mgr-{uuid.uuid4().hex[:10]}"
    await ac.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


class StartStop:
    """A start()/stop() runnable (like an informer) that logs into a shared list."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log
        self.running = False

    async def start(self) -> None:
        self.running = True
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.running = False
        self.log.append(f"stop {self.name}")


class RunStop:
    """A run()/stop() runnable (like a controller)."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log
        self._stop = asyncio.Event()
        self.running = False

    async def run(self) -> None:
        self.running = True
        self.log.append(f"run {self.name}")
        await self._stop.wait()
        self.running = False
        self.log.append(f"ran {self.name}")

    async def stop(self) -> None:
        self._stop.set()


async def test_health_and_metrics_endpoints(ac: aio.AsyncClient) -> None:
    port = support.free_port()
    mgr = manager.Manager(ac, name="health", leader_election=False, health_port=port)
    done = asyncio.Event()

    async def reconcile(key: controller.Key) -> None:
        done.set()

    ctl = controller.Controller("probe", reconcile, metrics=mgr.metrics)
    mgr.add(ctl)
    task = asyncio.create_task(mgr.run())
    ctl.enqueue(("", "x"))
    await asyncio.wait_for(done.wait(), 5)
    await support.eventually(lambda: mgr.ready)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        for path in ("/healthz", "/readyz"):
            response = await http.get(path)
            assert (response.status_code, response.text) == (200, "ok")
        response = await http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert 'controller_reconcile_total{controller="probe"} 1.0' in response.text
        assert 'controller_queue_depth{controller="probe"}' in response.text
        assert (await http.get("/nope")).status_code == 404
    await mgr.stop()
    await asyncio.wait_for(task, 5)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)


async def test_runnables_start_and_stop_leader_ones_first(ac: aio.AsyncClient) -> None:
    log: list[str] = []
    cache, worker = StartStop("cache", log), RunStop("worker", log)
    mgr = manager.Manager(ac, name="plain", leader_election=False)
    mgr.add(cache, needs_leader=False)
    mgr.add(worker)
    assert mgr.client is ac  # no election: writes are not fenced
    task = asyncio.create_task(mgr.run())
    await support.eventually(lambda: cache.running and worker.running)
    await asyncio.wait_for(mgr.stop(), 5)
    await asyncio.wait_for(task, 5)
    assert log == ["start cache", "run worker", "ran worker", "stop cache"]


async def test_shutdown_is_capped(ac: aio.AsyncClient) -> None:
    class Stubborn:
        async def start(self) -> None:
            pass

        async def stop(self) -> None:
            await asyncio.Event().wait()

    mgr = manager.Manager(ac, name="capped", leader_election=False)
    mgr.add(Stubborn())
    task = asyncio.create_task(mgr.run())
    await support.eventually(lambda: mgr.ready)
    began = time.monotonic()
    await asyncio.wait_for(mgr.stop(timeout=0.3), 5)
    assert time.monotonic() - began < 2
    await asyncio.wait_for(task, 5)


async def test_only_the_leader_runs_leader_runnables(ac: aio.AsyncClient, ns: str) -> None:
    logs: dict[str, list[str]] = {"a": [], "b": []}
    mgrs: dict[str, manager.Manager] = {}
    runnables: dict[str, tuple[StartStop, RunStop]] = {}
    tasks: dict[str, asyncio.Task[None]] = {}
    for ident in ("a", "b"):
        mgr = manager.Manager(ac, name="ctlmgr", identity=ident, leader_config=FAST, lease_namespace=ns)
        runnables[ident] = (StartStop("cache", logs[ident]), RunStop("ctl", logs[ident]))
        mgr.add(runnables[ident][0], needs_leader=False)
        mgr.add(runnables[ident][1])
        mgrs[ident] = mgr
    tasks["a"] = asyncio.create_task(mgrs["a"].run())
    await support.eventually(lambda: runnables["a"][1].running, what="a leads and runs its controller")
    tasks["b"] = asyncio.create_task(mgrs["b"].run())
    await support.eventually(lambda: runnables["b"][0].running and mgrs["b"].elector.holder == "a", what="b on standby")
    assert not runnables["b"][1].running  # the cache is warm, the controller waits
    assert not mgrs["b"].is_leader()
    with pytest.raises(errors.Forbidden):  # a standby's writes are fenced
        await mgrs["b"].client.create("v1", "configmaps", {"metadata": {"name": "x"}}, namespace=ns)
    await mgrs["a"].stop()
    await asyncio.wait_for(tasks["a"], 5)
    assert logs["a"] == ["start cache", "run ctl", "ran ctl", "stop cache"]
    await support.eventually(lambda: runnables["b"][1].running, what="b takes over")
    made = await mgrs["b"].client.create(
        "v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}, namespace=ns
    )
    assert made["metadata"]["name"] == "x"
    await mgrs["b"].stop()
    await asyncio.wait_for(tasks["b"], 5)


async def test_losing_the_lease_stops_controllers_and_raises(ac: aio.AsyncClient, ns: str) -> None:
    fake = clock.FakeClock()
    log: list[str] = []
    worker = RunStop("ctl", log)
    mgr = manager.Manager(ac, name="loser", identity="solo", leader_config=FAST, lease_namespace=ns, clock=fake)
    mgr.add(worker)
    task = asyncio.create_task(mgr.run())
    await support.eventually(lambda: worker.running)
    fake.advance(1.5)  # renew deadline missed (a long pause)
    with pytest.raises(leader.LeaderElectionLost):
        await asyncio.wait_for(task, 5)
    assert log == ["run ctl", "ran ctl"]
    assert not mgr.is_leader()


async def test_controller_in_flight_work_finishes_on_manager_stop(ac: aio.AsyncClient) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[Any] = []

    async def reconcile(key: controller.Key) -> None:
        started.set()
        await release.wait()
        finished.append(key)

    ctl = controller.Controller("slow", reconcile)
    mgr = manager.Manager(ac, name="graceful", leader_election=False)
    mgr.add(ctl)
    task = asyncio.create_task(mgr.run())
    ctl.enqueue(("", "k"))
    await asyncio.wait_for(started.wait(), 5)
    stopping = asyncio.create_task(mgr.stop())
    await support.eventually(lambda: ctl.queue.shutting_down, what="the stop reached the controller")
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, 5)
    await asyncio.wait_for(task, 5)
    assert finished == [("", "k")]


async def test_stop_before_run_makes_run_return_at_once(ac: aio.AsyncClient) -> None:
    log: list[str] = []
    mgr = manager.Manager(ac, name="early", leader_election=False)
    mgr.add(RunStop("ctl", log))
    await asyncio.wait_for(mgr.stop(), 1)  # nothing running yet: returns
    await asyncio.wait_for(mgr.run(), 5)
    assert log in ([], ["run ctl", "ran ctl"])
