"""The controller loop against a real API server, with informers on ConfigMaps."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from reconcile.client import aio, informer
from reconcile.engine import clock, controller, metrics
from tests import support


def cm(name: str, data: dict[str, str] | None = None, *, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if owner:
        metadata["ownerReferences"] = [owner]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data or {}}


@pytest.fixture
async def ns(ac: aio.AsyncClient) -> str:
    name = f"ctl-{uuid.uuid4().hex[:10]}"
    await ac.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


@pytest.fixture
async def cms(ac: aio.AsyncClient, ns: str) -> AsyncIterator[informer.Informer]:
    inf = informer.Informer(ac, "v1", "configmaps", namespace=ns)
    yield inf
    await inf.stop()


async def running(ctl: controller.Controller) -> asyncio.Task[None]:
    return asyncio.create_task(ctl.run())


async def test_level_triggered_reconcile_sees_the_latest_state(
    ac: aio.AsyncClient, ns: str, cms: informer.Informer
) -> None:
    await ac.create("v1", "configmaps", cm("pre", {"v": "0"}), namespace=ns)  # exists before the start
    seen: dict[tuple[str, str], Any] = {}
    calls: list[tuple[str, str]] = []

    async def reconcile(key: controller.Key) -> None:
        calls.append(key)
        obj = cms.store.get(*key)
        seen[key] = None if obj is None else dict(obj.get("data") or {})

    ctl = controller.Controller("level", reconcile, workers=2)
    ctl.watch(cms)
    await cms.start()
    task = await running(ctl)
    await support.eventually(lambda: seen.get((ns, "pre")) == {"v": "0"}, what="initial list reconciled")
    await ac.create("v1", "configmaps", cm("a", {"v": "1"}), namespace=ns)
    for i in range(2, 7):
        await ac.patch("v1", "configmaps", "a", {"data": {"v": str(i)}}, namespace=ns)
    await support.eventually(lambda: seen.get((ns, "a")) == {"v": "6"}, what="latest state")
    await ac.delete("v1", "configmaps", "a", namespace=ns)
    await support.eventually(lambda: (ns, "a") in seen and seen[(ns, "a")] is None, what="deletion seen as absence")
    assert set(calls) == {(ns, "pre"), (ns, "a")}
    await ctl.stop()
    await asyncio.wait_for(task, 5)


async def test_requeue_after_runs_on_virtual_time() -> None:
    fake = clock.FakeClock()
    calls: list[float] = []

    async def reconcile(key: controller.Key) -> controller.Result:
        calls.append(fake.now())
        return controller.Result(requeue_after=30)

    ctl = controller.Controller("poll", reconcile, clock=fake)
    task = await running(ctl)
    ctl.enqueue(("ns", "x"))
    await support.eventually(lambda: len(calls) == 1 and fake.sleepers >= 1, what="first run and its timer")
    fake.advance(29.9)
    await fake.run_until_idle()
    assert len(calls) == 1
    fake.advance(0.1)
    await support.eventually(lambda: len(calls) == 2, what="requeued run")
    assert calls == [0.0, 30.0]
    assert ctl.queue.retries(("ns", "x")) == 0
    await ctl.stop()
    await asyncio.wait_for(task, 5)


async def test_errors_are_retried_with_exponential_backoff_then_forgotten() -> None:
    fake = clock.FakeClock()
    calls: list[float] = []

    async def reconcile(key: controller.Key) -> None:
        calls.append(fake.now())
        if len(calls) <= 3:
            raise RuntimeError("not yet")

    ctl = controller.Controller("retry", reconcile, clock=fake)
    task = await running(ctl)
    key = ("", "k")
    ctl.enqueue(key)
    await support.eventually(lambda: len(calls) == 1 and ctl.queue.waiting == 1)
    fake.advance(0.005)  # first retry after 5 ms
    await support.eventually(lambda: len(calls) == 2 and ctl.queue.waiting == 1)
    fake.advance(0.009)
    await fake.run_until_idle()
    assert len(calls) == 2  # second retry waits 10 ms
    fake.advance(0.001)
    await support.eventually(lambda: len(calls) == 3 and ctl.queue.waiting == 1)
    fake.advance(0.02)  # third: 20 ms, then it succeeds
    await support.eventually(lambda: len(calls) == 4)
    assert ctl.queue.retries(key) == 0  # forgotten on success
    assert [round(b - a, 6) for a, b in zip(calls, calls[1:], strict=False)] == [0.005, 0.01, 0.02]
    await ctl.stop()
    await asyncio.wait_for(task, 5)


async def test_owned_objects_enqueue_their_controller_owner(
    ac: aio.AsyncClient, ns: str, cms: informer.Informer
) -> None:
    keys: list[controller.Key] = []

    async def reconcile(key: controller.Key) -> None:
        keys.append(key)

    ref = {"apiVersion": "example.com/v1", "kind": "Owner", "name": "parent", "uid": str(uuid.uuid4())}
    ctl = controller.Controller("owner", reconcile)
    ctl.watch_owned(cms, owner_kind="Owner", owner_api_version="example.com/v1")
    await cms.start()
    task = await running(ctl)
    await ac.create("v1", "configmaps", cm("child", owner={**ref, "controller": True}), namespace=ns)
    await ac.create("v1", "configmaps", cm("not-controller", owner={**ref, "name": "other"}), namespace=ns)
    await ac.create(
        "v1", "configmaps",
        cm("other-kind", owner={**ref, "kind": "Else", "name": "else", "controller": True}), namespace=ns,
    )
    await ac.create("v1", "configmaps", cm("orphan"), namespace=ns)
    await support.eventually(lambda: (ns, "parent") in keys, what="owner enqueued")
    await ac.delete("v1", "configmaps", "child", namespace=ns)
    await support.eventually(lambda: keys.count((ns, "parent")) >= 2, what="owner enqueued on child deletion")
    await support.eventually(lambda: len(cms.store) == 3)
    assert set(keys) == {(ns, "parent")}
    await ctl.stop()
    await asyncio.wait_for(task, 5)


async def test_a_key_never_runs_on_two_workers_at_once() -> None:
    active: set[controller.Key] = set()
    overlaps = 0
    runs = 0
    gate = asyncio.Event()

    async def reconcile(key: controller.Key) -> None:
        nonlocal overlaps, runs
        overlaps += key in active
        active.add(key)
        runs += 1
        await gate.wait()
        active.discard(key)

    ctl = controller.Controller("exclusive", reconcile, workers=4)
    task = await running(ctl)
    for _ in range(20):
        ctl.enqueue(("", "same"))
        ctl.enqueue(("", "other"))
    await support.eventually(lambda: runs == 2)
    for _ in range(20):
        ctl.enqueue(("", "same"))  # in flight: collapses into one more run
    gate.set()
    await support.eventually(lambda: runs == 3 and not active)
    assert overlaps == 0
    await ctl.stop()
    await asyncio.wait_for(task, 5)


async def test_graceful_stop_finishes_in_flight_work_and_takes_no_more() -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[controller.Key] = []

    async def reconcile(key: controller.Key) -> None:
        started.set()
        await release.wait()
        finished.append(key)

    ctl = controller.Controller("graceful", reconcile)
    task = await running(ctl)
    ctl.enqueue(("", "busy"))
    await asyncio.wait_for(started.wait(), 5)
    ctl.enqueue(("", "queued"))
    stopping = asyncio.create_task(ctl.stop(timeout=10))
    await support.eventually(lambda: ctl.queue.shutting_down, what="stop has begun: the queue takes no more")
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, 5)
    await asyncio.wait_for(task, 5)
    assert finished == [("", "busy")]  # finished in-flight work, took nothing new


async def test_stop_cancels_work_that_outlives_the_cap() -> None:
    cancelled = asyncio.Event()
    started = asyncio.Event()

    async def reconcile(key: controller.Key) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    ctl = controller.Controller("stuck", reconcile)
    task = await running(ctl)
    ctl.enqueue(("", "stuck"))
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(ctl.stop(timeout=0.1), 5)
    assert cancelled.is_set()
    await asyncio.wait_for(task, 5)


async def test_metrics_count_reconciles_and_errors() -> None:
    m = metrics.Metrics()
    outcomes = iter([RuntimeError("boom"), None])
    done = asyncio.Event()

    async def reconcile(key: controller.Key) -> None:
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome
        done.set()

    ctl = controller.Controller("measured", reconcile, metrics=m)
    task = await running(ctl)
    ctl.enqueue(("", "m"))
    await asyncio.wait_for(done.wait(), 5)
    text = m.render().decode()
    assert 'controller_reconcile_total{controller="measured"} 2.0' in text
    assert 'controller_reconcile_errors_total{controller="measured"} 1.0' in text
    assert 'controller_reconcile_duration_seconds_count{controller="measured"} 2.0' in text
    assert 'controller_queue_depth{controller="measured"} 0.0' in text
    await ctl.stop()
    await asyncio.wait_for(task, 5)


async def test_a_key_whose_object_is_malformed_is_skipped_until_it_changes_and_reported_once() -> None:
    """A reconcile that fails on the object's shape is not retried in a loop: skipped, reported per version."""
    fake = clock.FakeClock()
    m = metrics.Metrics()
    objects = {("ns", "bad"): {"metadata": {"name": "bad", "namespace": "ns", "resourceVersion": "5"},
                               "spec": {"replicas": "many"}},
               ("ns", "good"): {"metadata": {"name": "good", "namespace": "ns", "resourceVersion": "6"},
                                "spec": {"replicas": 2}}}
    calls: list[controller.Key] = []

    async def reconcile(key: controller.Key) -> None:
        calls.append(key)
        int(objects[key]["spec"]["replicas"])  # ValueError for "many": the object's problem

    ctl = controller.Controller("shape", reconcile, clock=fake, metrics=m, lookup=objects.get)
    task = await running(ctl)

    def skipped() -> float:
        return m.registry.get_sample_value("controller_skipped_objects_total", {"controller": "shape"}) or 0.0

    ctl.enqueue(("ns", "bad"))
    ctl.enqueue(("ns", "good"))
    await support.eventually(lambda: calls.count(("ns", "good")) == 1 and calls.count(("ns", "bad")) == 1)
    fake.advance(60.0)  # any retry backoff would have fired by now
    await fake.run_until_idle()
    assert calls.count(("ns", "bad")) == 1 and ctl.queue.retries(("ns", "bad")) == 0 and skipped() == 1

    ctl.enqueue(("ns", "bad"))  # woken again (a related object changed): same version, not reported again
    await support.eventually(lambda: calls.count(("ns", "bad")) == 2)
    assert skipped() == 1

    objects[("ns", "bad")]["metadata"]["resourceVersion"] = "7"  # a new version, still bad: news
    ctl.enqueue(("ns", "bad"))
    await support.eventually(lambda: skipped() == 2)

    objects[("ns", "bad")]["spec"]["replicas"] = 3  # fixed: reconciles; a later failure is news again
    ctl.enqueue(("ns", "bad"))
    await support.eventually(lambda: calls.count(("ns", "bad")) == 4)
    assert 'controller_reconcile_errors_total{controller="shape"} 3.0' in m.render().decode()
    await ctl.stop()
    await asyncio.wait_for(task, 5)
