"""EventRecorder against a real API server: aggregation by count instead of a flood of Events."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid

import pytest

from reconcile.client import aio
from reconcile.engine import clock, events


@pytest.fixture
async def ns(ac: aio.AsyncClient) -> str:
    name = f"ev-{uuid.uuid4().hex[:10]}"
    await ac.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


async def make_cm(ac: aio.AsyncClient, ns: str, name: str) -> dict:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
    return await ac.create("v1", "configmaps", body, namespace=ns)


async def events_for(ac: aio.AsyncClient, ns: str, name: str) -> list[dict]:
    items = (await ac.list("v1", "events", namespace=ns))["items"]
    return sorted(
        (e for e in items if e["involvedObject"].get("name") == name), key=lambda e: (e["reason"], e["message"])
    )


async def test_identical_events_bump_the_count(ac: aio.AsyncClient, ns: str) -> None:
    fake = clock.FakeClock()
    obj = await make_cm(ac, ns, "web")
    recorder = events.EventRecorder(ac, component="test-controller", clock=fake)
    await recorder.record(obj, reason="SuccessfulCreate", message="Created pod: web-1")
    fake.advance(5)
    await recorder.record(obj, reason="SuccessfulCreate", message="Created pod: web-1")
    await recorder.record(obj, reason="SuccessfulCreate", message="Created pod: web-2")
    await recorder.record(obj, reason="FailedCreate", message="Created pod: web-1", type="Warning")
    found = await events_for(ac, ns, "web")
    assert [(e["reason"], e["message"], e["count"]) for e in found] == [
        ("FailedCreate", "Created pod: web-1", 1),
        ("SuccessfulCreate", "Created pod: web-1", 2),
        ("SuccessfulCreate", "Created pod: web-2", 1),
    ]
    bumped = found[1]
    assert re.fullmatch(r"web\.[0-9a-f]{16}", bumped["metadata"]["name"])
    assert bumped["type"] == "Normal" and found[0]["type"] == "Warning"
    assert bumped["involvedObject"] == {
        "apiVersion": "v1", "kind": "ConfigMap", "name": "web", "namespace": ns,
        "uid": obj["metadata"]["uid"], "resourceVersion": obj["metadata"]["resourceVersion"],
    }
    assert bumped["source"] == {"component": "test-controller"}
    assert bumped["firstTimestamp"] == "2026-01-01T00:00:00Z"
    assert bumped["lastTimestamp"] == "2026-01-01T00:00:05Z"


async def test_concurrent_identical_events_aggregate(ac: aio.AsyncClient, ns: str) -> None:
    obj = await make_cm(ac, ns, "burst")
    recorder = events.EventRecorder(ac, component="burst")
    await asyncio.gather(*(recorder.record(obj, reason="Scaled", message="up") for _ in range(10)))
    found = await events_for(ac, ns, "burst")
    assert [e["count"] for e in found] == [10]


async def test_a_new_event_after_the_window_or_a_deletion(ac: aio.AsyncClient, ns: str) -> None:
    fake = clock.FakeClock()
    obj = await make_cm(ac, ns, "old")
    recorder = events.EventRecorder(ac, component="c", clock=fake)
    await recorder.record(obj, reason="R", message="m")
    fake.advance(601)  # past the 10-minute window: a fresh Event
    await recorder.record(obj, reason="R", message="m")
    found = await events_for(ac, ns, "old")
    assert [e["count"] for e in found] == [1, 1]
    for event in found:
        await ac.delete("v1", "events", event["metadata"]["name"], namespace=ns)
    await recorder.record(obj, reason="R", message="m")  # its Event is gone: created again
    assert [e["count"] for e in await events_for(ac, ns, "old")] == [1]


async def test_cluster_scoped_objects_get_events_in_default(ac: aio.AsyncClient, ns: str) -> None:
    namespace_obj = await ac.get("v1", "namespaces", ns)
    recorder = events.EventRecorder(ac, component="c")
    await recorder.record(namespace_obj, reason="Seen", message=f"namespace {ns}")
    found = await events_for(ac, "default", ns)
    assert [(e["reason"], e["count"]) for e in found] == [("Seen", 1)]
    assert "namespace" not in found[0]["involvedObject"]
    assert found[0]["involvedObject"]["kind"] == "Namespace"


async def test_failures_are_logged_not_raised(ac: aio.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    recorder = events.EventRecorder(ac, component="c")
    bogus = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "no-such-ns-zz"}}
    with caplog.at_level(logging.WARNING, logger=events.__name__):
        await recorder.record(bogus, reason="R", message="m")  # the namespace does not exist: no exception
    assert any("event R for no-such-ns-zz/x not recorded" in r.getMessage() for r in caplog.records)
