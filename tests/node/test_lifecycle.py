"""Graceful deletion, adoption across agent restarts (also kill -9), orphan removal, Node and Lease."""

from __future__ import annotations

import time

import pytest

from reconcile.core import errors
from tests import support
from tests.node import helpers

IGNORES_TERM = ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"]


@pytest.fixture(scope="module")
def agent_args() -> tuple[str, ...]:
    return ("--lease-interval", "1", "--resync-interval", "1")


def _gone(client, namespace: str, name: str) -> bool:
    try:
        helpers.get_pod(client, namespace, name)
    except errors.NotFound:
        return True
    return False


def test_node_and_lease_are_registered(client, node_agent):
    node = client.get("v1", "nodes", node_agent.name)
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == node_agent.name
    assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/arch"]
    status = node["status"]
    assert int(status["capacity"]["cpu"]) >= 1 and status["capacity"]["memory"].endswith("Ki")
    assert status["allocatable"]["pods"] == "110"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("docker://")
    assert [c["status"] for c in status["conditions"] if c["type"] == "Ready"] == ["True"]
    assert node["spec"]["podCIDR"] == node_agent.pod_cidr
    first = client.get("coordination.k8s.io/v1", "leases", node_agent.name, namespace="kube-node-lease")["spec"]
    assert first["holderIdentity"] == node_agent.name and first["leaseDurationSeconds"] == 40
    support.wait_for(lambda: client.get("coordination.k8s.io/v1", "leases", node_agent.name,
                                        namespace="kube-node-lease")["spec"]["renewTime"] != first["renewTime"],
                     timeout=5, what="the lease renewed")


def test_graceful_deletion_stops_then_removes_then_lets_the_object_go(client, namespace, node_agent, docker_node):
    spec = helpers.pod("stubborn", node_agent.name, helpers.container(command=IGNORES_TERM))
    spec["spec"]["terminationGracePeriodSeconds"] = 2
    client.create("v1", "pods", spec, namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "stubborn", helpers.running_ready, what="stubborn Ready")
    uid = obj["metadata"]["uid"]
    started = time.monotonic()
    client.delete("v1", "pods", "stubborn", namespace=namespace)
    assert helpers.get_pod(client, namespace, "stubborn")["metadata"]["deletionTimestamp"]

    def gone_after_containers() -> bool:
        if not _gone(client, namespace, "stubborn"):
            return False
        assert helpers.pod_containers(docker_node, uid) == [], "the object went before its containers"
        return True

    support.wait_for(gone_after_containers, timeout=20, what="the pod object gone")
    elapsed = time.monotonic() - started
    assert elapsed >= 1.5, f"SIGTERM was ignored, so the grace period (2 s) must have passed; took {elapsed:.2f}s"


def test_orphan_containers_are_removed(client, namespace, node_agent, docker_node):
    labels = ["reconcile.pod.uid=0000-orphan", f"reconcile.pod.namespace={namespace}", "reconcile.pod.name=ghost",
              "reconcile.container.name=app", f"reconcile.node={node_agent.name}", "reconcile.restart-count=0"]
    args = [a for label in labels for a in ("--label", label)]
    orphan = docker_node.docker("run", "-d", *args, helpers.HELLO).stdout.strip()
    assert orphan, "the orphan container was not started"
    support.wait_for(lambda: docker_node.container_ids(f"id={orphan}") == [], timeout=15, what="orphan removed")
    assert docker_node.container_ids(f"id={orphan}") == []


def test_restarted_agent_adopts_running_containers(client, namespace, node_agent, docker_node):
    names = ["keep-a", "keep-b"]
    for name in names:
        client.create("v1", "pods", helpers.pod(name, node_agent.name, helpers.container()), namespace=namespace)
    pods = {n: helpers.wait_pod(client, namespace, n, helpers.running_ready, what=f"{n} Ready") for n in names}
    uids = {n: p["metadata"]["uid"] for n, p in pods.items()}
    before = {n: sorted(c["Id"] for c in helpers.pod_containers(docker_node, u)) for n, u in uids.items()}
    assert all(len(ids) == 2 for ids in before.values())  # infra + app
    for round_ in range(4):
        if round_ == 0:
            node_agent.stop()  # a clean stop first, then kill -9 while pods run
        else:
            node_agent.kill()
        for name in names:  # perturb the status, so a rewritten podIP proves the new agent synced the pod
            client.patch("v1", "pods", name, {"status": {"podIP": None}}, namespace=namespace, subresource="status")
        node_agent.start()
        for name in names:
            obj = helpers.wait_pod(client, namespace, name,
                                   lambda o: helpers.running_ready(o) and o["status"].get("podIP"),
                                   what=f"{name} synced by the restarted agent")
            assert helpers.container_status(obj, "app")["restartCount"] == 0
            assert obj["status"]["podIP"] == pods[name]["status"]["podIP"]
    for name, uid in uids.items():
        after = sorted(c["Id"] for c in helpers.pod_containers(docker_node, uid))
        assert after == before[name], f"{name}: containers were replaced or duplicated"
        running = helpers.pod_containers(docker_node, uid, all=False)
        assert len(running) == 2 and all(c["RestartCount"] == 0 for c in running)
    # and the adopted pods still heal
    victim = helpers.app_containers(docker_node, uids["keep-a"], "app")[0]["Id"]
    docker_node.docker("kill", victim)
    helpers.wait_pod(client, namespace, "keep-a",
                     lambda o: helpers.running_ready(o) and helpers.container_status(o, "app")["restartCount"] == 1,
                     what="adopted pod restarted after docker kill")


def test_containers_of_pods_deleted_while_the_agent_was_down_are_removed(client, namespace, node_agent, docker_node):
    client.create("v1", "pods", helpers.pod("lost", node_agent.name, helpers.container()), namespace=namespace)
    uid = helpers.wait_pod(client, namespace, "lost", helpers.running_ready, what="lost Ready")["metadata"]["uid"]
    node_agent.kill()
    client.delete("v1", "pods", "lost", namespace=namespace, grace_period_seconds=0)
    assert _gone(client, namespace, "lost")
    assert len(helpers.pod_containers(docker_node, uid, all=False)) == 2
    node_agent.start()
    support.wait_for(lambda: helpers.pod_containers(docker_node, uid) == [], timeout=15, what="leftovers removed")


def test_a_node_marked_not_ready_by_someone_else_is_set_ready_again(client, node_agent):
    patch = {"status": {"conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                                        "message": "Kubelet stopped posting node status."}]}}
    client.patch("v1", "nodes", node_agent.name, patch, subresource="status")

    def ready() -> list[dict]:
        return [c for c in client.get("v1", "nodes", node_agent.name)["status"]["conditions"] if c["type"] == "Ready"]

    support.wait_for(lambda: [c["status"] for c in ready()] == ["True"], timeout=10, what="Ready again")
    assert ready()[0]["reason"] != "NodeStatusUnknown"
