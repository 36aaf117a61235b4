"""Queue order by priority against a real API server (its Priority admission sets each pod's
spec.priority from its PriorityClass): of pending pods that compete for one node's room, the
higher-priority one is placed first, whatever the order they came in (upstream's PrioritySort;
preemption is not implemented, so a placed low-priority pod is never evicted for a later one)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconcile.client import api as client_api
from reconcile.scheduler import scheduler as scheduler_mod
from tests import support
from tests.scheduler import harness, objects


@pytest.fixture(scope="module")
def client(api_server: str) -> Iterator[client_api.Client]:
    c = client_api.Client(support.connection(api_server).client_config())
    yield c
    c.close()


@pytest.fixture
def cluster(client: client_api.Client) -> Iterator[harness.Cluster]:
    c = harness.Cluster(client)
    yield c
    c.cleanup()


def _priority_class(client: client_api.Client, name: str, value: int) -> None:
    client.create("scheduling.k8s.io/v1", "priorityclasses", {
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}, "value": value})


def test_the_higher_priority_pod_is_placed_first(api_server: str, client: client_api.Client,
                                                cluster: harness.Cluster) -> None:
    low, high = f"low-{cluster.tag}", f"high-{cluster.tag}"
    _priority_class(client, low, 10)
    _priority_class(client, high, 100_000)
    try:
        node = cluster.node("only", cpu="1", memory="8Gi")
        # Created before the scheduler starts, low-priority first; names sort the same way, so the
        # scheduler's first list (in key order) would hand out the low ones first without priorities.
        for name, pc in (("a-low", low), ("b-low", low), ("c-none", None), ("z-high", high)):
            pod = objects.pod(name, namespace=cluster.namespace, cpu="600m")
            if pc:
                pod["spec"]["priorityClassName"] = pc
            client.create("v1", "pods", pod, namespace=cluster.namespace)
        assert [cluster.get(n)["spec"]["priority"] for n in ("a-low", "c-none", "z-high")] == [10, 0, 100_000]
        thread = harness.SchedulerThread(api_server).start()
        try:
            assert cluster.wait_bound("z-high")["z-high"] == node
            for name in ("a-low", "b-low", "c-none"):
                cluster.wait_unschedulable(name, "0/1 nodes are available: 1 Insufficient cpu.")
        finally:
            thread.stop()
    finally:
        for name in (low, high):
            client.delete("scheduling.k8s.io/v1", "priorityclasses", name)


def test_ready_pods_are_handed_out_by_priority_then_arrival() -> None:
    """The active queue alone: priority first, first come among equals, dedup kept."""
    priority = {"a": 1, "b": 5, "c": 5, "d": -3}
    order = scheduler_mod.queue_mod.PriorityOrder(priority.__getitem__)
    for key in ("a", "b", "d", "c"):
        order.append(key)
    assert [order.popleft() for _ in range(len(order))] == ["b", "c", "a", "d"]
