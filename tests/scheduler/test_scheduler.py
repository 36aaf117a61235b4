"""The scheduler against a real API server, with Node objects made by the test (no node agents).

The scheduler runs in-process on its own event loop in a thread, so tests can use the sync
client and `support.wait_for` while it works; every test uses its own namespace and node names.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconcile.client import api as client_api
from reconcile.core import errors
from reconcile.scheduler import scheduler as scheduler_mod
from tests import support
from tests.scheduler import harness, objects


@pytest.fixture(scope="module")
def client(api_server: str) -> Iterator[client_api.Client]:
    c = client_api.Client(support.connection(api_server).client_config())
    yield c
    c.close()


SchedulerThread = harness.SchedulerThread
Cluster = harness.Cluster


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
