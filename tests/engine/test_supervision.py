"""A stopped informer fails /readyz (and /healthz once it stays down) and is restarted with backoff.

Real API server, real informers and the manager's real health endpoints; the supervisor runs on
a FakeClock, so the test decides when it looks and when a backoff has passed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from reconcile.client import aio, informer, watching
from reconcile.engine import clock, manager, metrics, supervision
from tests import support


@pytest.fixture
async def ns(ac: aio.AsyncClient) -> str:
    name = f"sup-{uuid.uuid4().hex[:10]}"
    await ac.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


class Component:
    """A manager serving health, one informer, its supervisor on virtual time."""

    def __init__(self, ac: aio.AsyncClient, inf: informer.Informer, *, grace: float = 60.0) -> None:
        self.fake = clock.FakeClock()
        self.metrics = metrics.Metrics()
        self.informer = inf
        self.supervisor = supervision.InformerSupervisor(
            lambda: [inf], clock=self.fake, metrics=self.metrics, check_interval=1.0, liveness_grace=grace,
            backoff=lambda: watching.Backoff(initial=2.0, cap=16.0))
        self.mgr = manager.Manager(ac, name="supervised", leader_election=False, health_port=0,
                                   metrics=self.metrics)
        self.mgr.add(inf, needs_leader=False)
        self.mgr.add(self.supervisor, needs_leader=False)
        self.mgr.add_health_check(self.supervisor)
        self.http: httpx.AsyncClient | None = None

    async def get(self, path: str) -> tuple[int, str]:
        assert self.http is not None
        response = await self.http.get(path)
        return response.status_code, response.text

    async def advance(self, seconds: float) -> None:
        """Let time pass for the supervisor: it wakes, looks, and sleeps again."""
        self.fake.advance(seconds)
        await support.eventually(lambda: self.fake.sleepers >= 1, what="supervisor asleep again")
        await self.fake.run_until_idle()


@pytest.fixture
async def component(ac: aio.AsyncClient, ns: str) -> AsyncIterator[Component]:
    c = Component(ac, informer.Informer(ac, "v1", "configmaps", namespace=ns))
    task = asyncio.create_task(c.mgr.run())
    await support.eventually(lambda: c.mgr.ready and c.mgr.health_port, what="manager running")
    await c.informer.wait_synced(timeout=10)
    await support.eventually(lambda: c.fake.sleepers >= 1, what="supervisor waiting")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{c.mgr.health_port}") as http:
        c.http = http
        yield c
    await c.mgr.stop()
    await asyncio.wait_for(task, 10)


async def test_readyz_fails_while_an_informer_is_stopped_and_recovers_when_it_is_restarted(
    component: Component, ac: aio.AsyncClient, ns: str
) -> None:
    assert await component.get("/readyz") == (200, "ok")
    task = next(t for t in asyncio.all_tasks() if t.get_name() == "informer:configmaps")
    task.cancel()  # the informer's task ends, for whatever reason
    await support.eventually(lambda: component.informer.stopped, what="informer stopped")

    status, body = await component.get("/readyz")
    assert status == 503 and "informer for configmaps stopped" in body  # at once, before the supervisor looks
    assert await component.get("/healthz") == (200, "ok")  # not yet a reason to restart the process

    await component.advance(1.0)  # the supervisor notices: restart after the first backoff (1-2 s)
    assert component.informer.stopped and component.informer.restarts == 0
    await component.advance(1.0)
    await component.advance(1.0)
    await support.eventually(lambda: component.informer.restarts == 1, what="restarted after its backoff")
    await support.eventually(lambda: not component.informer.stopped)
    assert await component.get("/readyz") == (200, "ok")

    await ac.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later"}},
                    namespace=ns)
    await support.eventually(lambda: component.informer.store.get(ns, "later"), what="the restarted informer works")
    assert 'informer_restarts_total{resource="configmaps"} 1.0' in (await component.get("/metrics"))[1]


async def test_an_informer_that_keeps_failing_backs_off_longer_and_fails_healthz_after_the_grace(
    ac: aio.AsyncClient,
) -> None:
    # a selector the server rejects (400): fatal, so every run of the informer stops at once
    inf = informer.Informer(ac, "v1", "configmaps", label_selector="a b c")
    c = Component(ac, inf, grace=30.0)
    task = asyncio.create_task(c.mgr.run())
    try:
        await support.eventually(lambda: c.mgr.health_port and inf.stopped, what="informer stopped on 400")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{c.mgr.health_port}") as http:
            c.http = http
            status, body = await c.get("/readyz")
            assert status == 503 and "unable to parse requirement" in body  # the error says why
            restarts_at: list[float] = []
            for _ in range(40):  # 40 virtual seconds, one look per second
                before = inf.restarts
                await c.advance(1.0)
                await support.eventually(lambda: inf.stopped, what="stopped again after the restart")
                if inf.restarts > before:
                    restarts_at.append(c.fake.now())
            gaps = [b - a for a, b in zip(restarts_at, restarts_at[1:], strict=False)]
            assert len(gaps) >= 3 and gaps[:3] == sorted(gaps[:3]) and gaps[2] > gaps[0], gaps  # backing off
            status, body = await c.get("/healthz")
            assert status == 503 and "informer for configmaps stopped" in body  # down past the grace
    finally:
        await c.mgr.stop()
        await asyncio.wait_for(task, 10)
