"""Leader election on Lease objects against a real API server (fast timings: lease 2 s)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import pytest

from reconcile.client import aio
from reconcile.core import errors
from reconcile.engine import clock, leader
from tests import support

FAST = dict(lease_duration=2.0, renew_deadline=1.5, retry_period=0.2)
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture
async def ns(ac: aio.AsyncClient) -> str:
    name = f"le-{uuid.uuid4().hex[:10]}"
    await ac.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


class Candidate:
    """An elector plus what its callbacks saw, run as a task."""

    def __init__(self, client: Any, ns: str, identity: str, **config: Any) -> None:
        self.elector = leader.LeaderElector(
            client, name="lock", namespace=ns, identity=identity, config=leader.LeaderConfig(**{**FAST, **config})
        )
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.task: asyncio.Task[None] | None = None

    async def on_started(self) -> None:
        self.started_at = time.monotonic()

    async def on_stopped(self) -> None:
        self.stopped_at = time.monotonic()

    def start(self) -> Candidate:
        self.task = asyncio.create_task(self.elector.run(on_started=self.on_started, on_stopped=self.on_stopped))
        return self

    async def cancel(self) -> None:
        assert self.task is not None
        self.task.cancel()
        try:
            await asyncio.wait_for(self.task, 5)
        except asyncio.CancelledError:
            pass


class FlakyClient:
    """Passes calls through to a real client until `broken`, then fails like an unreachable server."""

    def __init__(self, inner: aio.AsyncClient) -> None:
        self.inner = inner
        self.broken = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.broken:
                raise errors.ServiceUnavailable("cannot reach the API server (test)")
            return await attr(*args, **kwargs)

        return call


async def test_exactly_one_of_two_leads(ac: aio.AsyncClient, ns: str) -> None:
    a = Candidate(ac, ns, "a").start()
    b = Candidate(ac, ns, "b").start()
    try:
        await support.eventually(lambda: a.started_at or b.started_at, what="a leader")
        window = time.monotonic() + 1.0  # several renew rounds: never two leaders
        while time.monotonic() < window:
            assert a.elector.is_leader() + b.elector.is_leader() <= 1
            await asyncio.sleep(0.02)  # sampling the window in which two may never lead: not a synchronization
        assert [a.started_at is not None, b.started_at is not None].count(True) == 1
        winner = a if a.started_at else b
        lease = await ac.get("coordination.k8s.io/v1", "leases", "lock", namespace=ns)
        spec = lease["spec"]
        assert spec["holderIdentity"] == winner.elector.identity
        assert spec["leaseDurationSeconds"] == 2
        assert spec["leaseTransitions"] == 0
        assert MICRO_TIME.match(spec["renewTime"]) and MICRO_TIME.match(spec["acquireTime"])
        assert spec["renewTime"] > spec["acquireTime"]  # renewed since
    finally:
        await a.cancel()
        await b.cancel()


async def test_cancelled_leader_without_release_is_replaced_after_expiry(ac: aio.AsyncClient, ns: str) -> None:
    a = Candidate(ac, ns, "a", release_on_cancel=False).start()
    await support.eventually(lambda: a.started_at, what="a leads")
    b = Candidate(ac, ns, "b").start()
    try:
        await support.eventually(lambda: b.elector.holder == "a", what="b saw a's lease")
        cancelled_at = time.monotonic()
        await a.cancel()
        assert a.stopped_at is not None and not a.elector.is_leader()
        await support.eventually(lambda: b.started_at, timeout=10, what="b takes over")
        assert b.started_at is not None
        assert b.started_at - cancelled_at > 2.0 - 0.2 - 0.1  # waited for the lease to expire
        lease = await ac.get("coordination.k8s.io/v1", "leases", "lock", namespace=ns)
        assert lease["spec"]["holderIdentity"] == "b"
        assert lease["spec"]["leaseTransitions"] == 1
    finally:
        await b.cancel()


async def test_cancelled_leader_releases_the_lease_for_a_quick_handover(ac: aio.AsyncClient, ns: str) -> None:
    a = Candidate(ac, ns, "a").start()
    await support.eventually(lambda: a.started_at, what="a leads")
    b = Candidate(ac, ns, "b").start()
    try:
        await support.eventually(lambda: b.elector.holder == "a")
        cancelled_at = time.monotonic()
        await a.cancel()
        await support.eventually(lambda: b.started_at, what="b takes over")
        assert b.started_at is not None and b.started_at - cancelled_at < 1.5  # no wait for expiry
    finally:
        await b.cancel()


async def test_leader_that_cannot_renew_stops_before_the_lease_expires(ac: aio.AsyncClient, ns: str) -> None:
    flaky = FlakyClient(ac)
    a = Candidate(flaky, ns, "a").start()
    await support.eventually(lambda: a.started_at, what="a leads")
    b = Candidate(ac, ns, "b").start()
    fenced = leader.FencedClient(flaky, a.elector)  # type: ignore[arg-type]
    try:
        await support.eventually(lambda: b.elector.holder == "a")
        flaky.broken = True
        broken_at = time.monotonic()
        await support.eventually(lambda: a.stopped_at, timeout=5, what="a gives up")
        assert a.stopped_at is not None and a.stopped_at - broken_at < 1.5 + 0.1
        assert not a.elector.is_leader()
        await asyncio.wait_for(a.task, 5)  # type: ignore[arg-type]  # run returns once leadership is lost
        flaky.broken = False  # the server is reachable again, but a is fenced
        with pytest.raises(errors.Forbidden, match="not the leader"):
            await fenced.create("v1", "configmaps", {"metadata": {"name": "stale"}}, namespace=ns)
        with pytest.raises(errors.Forbidden):
            await fenced.patch("v1", "configmaps", "x", {}, namespace=ns)
        await fenced.get("coordination.k8s.io/v1", "leases", "lock", namespace=ns)  # reads pass
        await support.eventually(lambda: b.started_at, timeout=10, what="b takes over")
        assert b.started_at is not None and a.stopped_at < b.started_at  # stopped before the rival led
    finally:
        await b.cancel()


async def test_paused_then_resumed_leader_is_fenced_at_once(ac: aio.AsyncClient, ns: str) -> None:
    """A process paused past its renew deadline (a jump of its monotonic clock) writes nothing."""
    fake = clock.FakeClock()
    stopped = asyncio.Event()
    started = asyncio.Event()

    async def on_started() -> None:
        started.set()

    async def on_stopped() -> None:
        stopped.set()

    elector = leader.LeaderElector(
        ac, name="paused", namespace=ns, identity="old", config=leader.LeaderConfig(**FAST), clock=fake
    )
    fenced = leader.FencedClient(ac, elector)
    task = asyncio.create_task(elector.run(on_started=on_started, on_stopped=on_stopped))
    await asyncio.wait_for(started.wait(), 5)
    assert elector.is_leader()
    created = await fenced.create(
        "v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fresh"}}, namespace=ns
    )
    assert created["metadata"]["name"] == "fresh"
    fake.advance(1.5)  # the pause: renew deadline passed while it was frozen
    assert not elector.is_leader()
    with pytest.raises(errors.Forbidden):
        await fenced.delete("v1", "configmaps", "fresh", namespace=ns)
    with pytest.raises(errors.Forbidden):
        await fenced.request("POST", f"/api/v1/namespaces/{ns}/configmaps", json={})
    await asyncio.wait_for(stopped.wait(), 5)
    await asyncio.wait_for(task, 5)
    assert (await ac.get("v1", "configmaps", "fresh", namespace=ns))["metadata"]["name"] == "fresh"


def test_config_must_order_its_durations() -> None:
    with pytest.raises(ValueError):
        leader.LeaderConfig(lease_duration=10, renew_deadline=10, retry_period=2)
    assert leader.LeaderConfig().lease_duration == 15.0
