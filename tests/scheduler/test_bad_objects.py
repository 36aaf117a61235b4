"""One bad pod or node never blinds the scheduler: malformed objects written straight into etcd.

The scheduler must go on binding new pods, skip (and report, with an Event) the objects it
cannot read, and keep every informer running.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from reconcile.client import api as client_api
from tests import support
from tests.client import helpers as client_helpers
from tests.scheduler import harness, objects


@pytest.fixture(scope="module")
def client(api_server: str) -> Iterator[client_api.Client]:
    with client_api.Client(support.connection(api_server).client_config()) as c:
        yield c


@pytest.fixture
def cluster(client: client_api.Client) -> Iterator[harness.Cluster]:
    c = harness.Cluster(client)
    yield c
    c.cleanup()


def test_malformed_pods_and_nodes_are_skipped_and_new_pods_still_scheduled(
    api_server: str, cluster: harness.Cluster, server_process: support.ApiServerProcess, etcd_endpoint: str
) -> None:
    ns = cluster.namespace
    node = cluster.node("ok")
    broken_node = objects.node(f"{cluster.tag}-broken")
    broken_node["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp="2026-01-01T00:00:00Z")
    broken_node["spec"]["taints"] = ["NoSchedule"]  # taints are objects
    client_helpers.put_raw(etcd_endpoint, server_process, "", "nodes", broken_node)
    cluster.nodes.append(broken_node["metadata"]["name"])
    # bad metadata (every component skips it), and a pod only the scheduler cannot read
    client_helpers.put_raw(etcd_endpoint, server_process, "", "pods", client_helpers.malformed_pod(ns, "bad-owner"))
    unreadable = client_helpers.malformed_pod(ns, "bad-containers", ownerReferences=None)
    unreadable["spec"]["containers"] = ["nginx"]
    client_helpers.put_raw(etcd_endpoint, server_process, "", "pods", unreadable)

    thread = harness.SchedulerThread(api_server).start()  # lists the bad objects first
    try:
        sched = thread.scheduler
        assert sched is not None
        cluster.pod("after")
        assert cluster.wait_bound("after") == {"after": node}  # never the broken node: it is not in the snapshot
        for name in ("bad-owner", "bad-containers"):
            support.wait_for(lambda n=name: cluster.events(n, "InvalidObject"), timeout=15, what=f"event on {name}")
        (event,) = cluster.events("bad-containers", "InvalidObject")
        assert event["source"]["component"] == "default-scheduler" and "AttributeError" in event["message"]
        assert cluster.node_of("bad-owner") is None and cluster.node_of("bad-containers") is None
        assert sched.pods.invalid_objects == 2 and sched.nodes.invalid_objects == 1
        assert not any(inf.stopped for inf in (sched.pods, sched.nodes, sched.namespaces))
        assert sched.supervisor.readiness() == []

        cluster.pod("later")  # and it keeps going
        cluster.wait_bound("later")
    finally:
        thread.stop()
