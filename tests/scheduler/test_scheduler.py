"""The scheduler against a real API server, with Node objects made by the test (no node agents).

The scheduler runs in-process on its own event loop in a thread, so tests can use the sync
client and `support.wait_for` while it works; every test uses its own namespace and node names.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reconcile.client import aio
from reconcile.client import api as client_api
from reconcile.core import errors
from reconcile.scheduler import scheduler as scheduler_mod
from tests import support
from tests.scheduler import objects


class SchedulerThread:
    """A Scheduler on its own loop; `stop()` shuts it down gracefully (events drained)."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.url = url
        self.kwargs = kwargs
        self.scheduler: scheduler_mod.Scheduler | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def start(self) -> SchedulerThread:
        self._thread.start()
        assert self._ready.wait(30), "scheduler did not sync"
        if self.error is not None:
            raise self.error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self.error is not None:
            raise self.error

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # surfaced to the test by start()/stop()
            self.error = exc
            self._ready.set()

    async def _run(self) -> None:
        async with aio.AsyncClient(self.url) as client:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            sched = self.scheduler = scheduler_mod.Scheduler(client, **self.kwargs)
            await sched.start_informers()
            await sched.wait_synced(timeout=20)
            task = asyncio.create_task(sched.run())
            self._ready.set()
            await self._stop.wait()
            await sched.stop(timeout=10)
            await task
            await sched.stop_informers()


@pytest.fixture(scope="module")
def client(api_server: str) -> Iterator[client_api.Client]:
    c = client_api.Client(api_server)
    yield c
    c.close()


class Cluster:
    """Per-test names: a namespace, node names with a unique prefix, cleaned up at the end."""

    def __init__(self, client: client_api.Client) -> None:
        self.client = client
        self.tag = uuid.uuid4().hex[:6]
        self.namespace = f"sched-{self.tag}"
        self.nodes: list[str] = []
        client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}})

    def node(self, name: str, **kwargs: Any) -> str:
        """Create a Node, then set its status (the server ignores status on create)."""
        full = f"{self.tag}-{name}"
        obj = objects.node(full, **kwargs)
        status = obj.pop("status")
        self.client.create("v1", "nodes", obj)
        self.nodes.append(full)
        self.client.patch("v1", "nodes", full, {"status": status}, subresource="status")
        return full

    def pod(self, name: str, **kwargs: Any) -> dict:
        return self.client.create("v1", "pods", objects.pod(name, namespace=self.namespace, **kwargs),
                                  namespace=self.namespace)

    def get(self, name: str) -> dict:
        return self.client.get("v1", "pods", name, namespace=self.namespace)

    def node_of(self, name: str) -> str | None:
        return (self.get(name).get("spec") or {}).get("nodeName")

    def wait_bound(self, *names: str, timeout: float = 15) -> dict[str, str]:
        return support.wait_for(
            lambda: (placed := {n: self.node_of(n) for n in names}) and all(placed.values()) and placed,
            timeout=timeout, what=f"pods {names} bound",
        )

    def condition(self, name: str) -> dict | None:
        for c in (self.get(name).get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled":
                return c
        return None

    def wait_unschedulable(self, name: str, message: str, *, timeout: float = 15) -> dict:
        return support.wait_for(
            lambda: (c := self.condition(name)) and c.get("status") == "False" and c.get("message") == message and c,
            timeout=timeout, what=f"{name} Unschedulable with {message!r} (now {self.condition(name)})",
        )

    def events(self, name: str, reason: str) -> list[dict]:
        items = self.client.list("v1", "events", namespace=self.namespace)["items"]
        return [e for e in items if e["involvedObject"]["name"] == name and e["reason"] == reason]

    def cleanup(self) -> None:
        for node in self.nodes:
            try:
                self.client.delete("v1", "nodes", node)
            except errors.NotFound:
                pass


@pytest.fixture
def cluster(client: client_api.Client) -> Iterator[Cluster]:
    c = Cluster(client)
    yield c
    c.cleanup()


@pytest.fixture
def scheduler(api_server: str, cluster: Cluster) -> Iterator[scheduler_mod.Scheduler]:
    thread = SchedulerThread(api_server).start()
    assert thread.scheduler is not None
    yield thread.scheduler
    thread.stop()


def test_pods_are_bound_to_nodes_that_fit(cluster: Cluster, scheduler: scheduler_mod.Scheduler) -> None:
    small = cluster.node("small", cpu="1", memory="1Gi")
    big = cluster.node("big", cpu="8", memory="32Gi", labels={"disk": "ssd"})
    cluster.pod("fat", cpu="2", memory="4Gi")
    cluster.pod("picky", node_selector={"disk": "ssd"})
    cluster.pod("tiny", cpu="100m")
    cluster.pod("elsewhere", scheduler_name="some-other-scheduler")
    placed = cluster.wait_bound("fat", "picky", "tiny")
    assert placed["fat"] == big and placed["picky"] == big
    assert placed["tiny"] in (small, big)
    support.wait_for(lambda: cluster.events("fat", "Scheduled"), what="Scheduled event")
    event = cluster.events("fat", "Scheduled")[0]
    assert event["message"] == f"Successfully assigned {cluster.namespace}/fat to {big}"
    assert event["source"]["component"] == "default-scheduler"
    assert cluster.node_of("elsewhere") is None  # another scheduler's pod is left alone
    assert cluster.get("tiny")["status"]["conditions"][0]["type"] == "PodScheduled"


def test_unschedulable_gets_the_upstream_message_and_an_event(
    cluster: Cluster, scheduler: scheduler_mod.Scheduler
) -> None:
    cluster.node("a", memory="1Gi")
    cluster.node("b", memory="1Gi")
    cluster.node("c", memory="64Gi", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    cluster.pod("huge", memory="2Gi")
    message = "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient memory."
    condition = cluster.wait_unschedulable("huge", message)
    assert condition["reason"] == "Unschedulable"
    events = support.wait_for(lambda: cluster.events("huge", "FailedScheduling"), what="FailedScheduling event")
    assert events[0]["message"] == message and events[0]["type"] == "Warning"
    # A toleration is all it takes.
    cluster.pod("tolerant", memory="2Gi", tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu"}])
    assert cluster.wait_bound("tolerant")["tolerant"].endswith("-c")


def test_a_pending_pod_is_bound_when_a_node_arrives_without_busy_retrying(
    cluster: Cluster, scheduler: scheduler_mod.Scheduler
) -> None:
    cluster.node("small", memory="1Gi")
    cluster.pod("waiting", memory="4Gi")
    cluster.wait_unschedulable("waiting", "0/1 nodes are available: 1 Insufficient memory.")
    key = (cluster.namespace, "waiting")
    support.wait_for(lambda: key in scheduler.queue.unschedulable, what="pod parked")
    attempts = scheduler.attempts
    big = cluster.node("big", memory="8Gi")
    assert cluster.wait_bound("waiting")["waiting"] == big
    # The node's creation and its status update are the only events: a retry or two, no loop.
    assert scheduler.attempts - attempts <= 2


def test_resources_are_not_overcommitted_in_a_burst(cluster: Cluster, scheduler: scheduler_mod.Scheduler) -> None:
    nodes = [cluster.node(f"n{i}", cpu="1", memory="8Gi") for i in range(3)]
    names = [f"p{i}" for i in range(8)]
    for name in names:
        cluster.pod(name, cpu="400m")  # two fit per node: six bound, two left over
    support.wait_for(lambda: sum(1 for n in names if cluster.node_of(n)) == 6, what="six pods bound")
    placed = [cluster.node_of(n) for n in names]
    assert sorted(placed.count(n) for n in nodes) == [2, 2, 2]
    leftover = [n for n in names if cluster.node_of(n) is None]
    for name in leftover:
        cluster.wait_unschedulable(name, "0/3 nodes are available: 3 Insufficient cpu.")


def test_anti_affinity_spreads_three_replicas_over_three_nodes(
    cluster: Cluster, scheduler: scheduler_mod.Scheduler
) -> None:
    nodes = {cluster.node(f"n{i}") for i in range(3)}
    labels = {"app": "web"}
    for i in range(3):
        cluster.pod(f"web-{i}", labels=labels, affinity=objects.anti_affinity(labels), owner_uid="rs-web")
    placed = cluster.wait_bound("web-0", "web-1", "web-2")
    assert set(placed.values()) == nodes
    cluster.pod("web-3", labels=labels, affinity=objects.anti_affinity(labels), owner_uid="rs-web")
    cluster.wait_unschedulable("web-3", "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.")
    # Freeing a node (a replica deleted) lets the fourth one in, by event.
    gone = placed["web-1"]
    cluster.client.delete("v1", "pods", "web-1", namespace=cluster.namespace, grace_period_seconds=0)
    assert cluster.wait_bound("web-3")["web-3"] == gone


def test_taints_and_cordon_are_respected(cluster: Cluster, scheduler: scheduler_mod.Scheduler) -> None:
    cluster.node("tainted", taints=[{"key": "maintenance", "value": "", "effect": "NoExecute"}])
    cordoned = cluster.node("cordoned", unschedulable=True)
    cluster.pod("plain")
    cluster.wait_unschedulable("plain", (
        "0/2 nodes are available: 1 node(s) had untolerated taint {maintenance: }, 1 node(s) were unschedulable."
    ))
    # Tolerating the taint (but not the cordon's node.kubernetes.io/unschedulable) opens the tainted node only.
    cluster.pod("tolerant", tolerations=[{"key": "maintenance", "operator": "Exists"}])
    assert cluster.wait_bound("tolerant")["tolerant"].endswith("-tainted")
    cluster.client.patch("v1", "nodes", cordoned, {"spec": {"unschedulable": False}})  # uncordon
    assert cluster.wait_bound("plain")["plain"] == cordoned


def test_a_pod_is_never_bound_twice_by_racing_schedulers(api_server: str, cluster: Cluster) -> None:
    for i in range(3):
        cluster.node(f"n{i}")
    first = SchedulerThread(api_server).start()
    second = SchedulerThread(api_server).start()
    try:
        names = [f"race-{i}" for i in range(20)]
        for name in names:
            cluster.pod(name)
        cluster.wait_bound(*names)
    finally:
        first.stop()
        second.stop()
    assert first.scheduler is not None and second.scheduler is not None
    assert first.scheduler.bound + second.scheduler.bound == len(names)
    for name in names:
        assert len(cluster.events(name, "Scheduled")) == 1
    with pytest.raises(errors.Conflict):
        cluster.client.request("POST", f"/api/v1/namespaces/{cluster.namespace}/pods/race-0/binding", json={
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "race-0"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": f"{cluster.tag}-n0"}})
