"""Crash safety: kill -9 the controller-manager at random points of rollouts; nothing duplicates or leaks.

Its own module, so its API server has no other controller-manager acting on the same objects.
"""

from __future__ import annotations

import random
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reconcile.client import api
from reconcile.core import meta
from tests import support
from tests.controllers import helpers

KILLS = 10
REPLICAS = 10
SURGE = UNAVAILABLE = 1
# The most pods that may exist at one moment without a duplicate: the Deployment bounds its
# ReplicaSets' *specs* by replicas + maxSurge, and an old ReplicaSet scaled down (by up to
# maxUnavailable here) keeps its pods until its own controller deletes them, which after a
# kill -9 may come after the new ReplicaSet's creates (upstream's controllers behave the same).
MOST_PODS = REPLICAS + SURGE + UNAVAILABLE


@pytest.fixture
def manager_process(api_server: str) -> Iterator[helpers.ControllerManagerProcess]:
    process = helpers.ControllerManagerProcess(api_server)
    try:
        yield process
    finally:
        process.stop()


def _items(client: api.Client, api_version: str, plural: str, ns: str) -> list[dict[str, Any]]:
    return client.list(api_version, plural, namespace=ns).get("items") or []


def test_rollout_survives_kill_9(manager_process: helpers.ControllerManagerProcess, api_server: str) -> None:
    rng = random.Random(int(uuid.uuid4().int % 1000))
    client = api.Client(support.connection(api_server).client_config())
    ns = f"crash-{uuid.uuid4().hex[:6]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    over: list[str] = []

    def check(pods: dict[str, dict[str, Any]]) -> None:
        if len(pods) > MOST_PODS:
            over.append(f"{len(pods)} pods")

    client.create("apps/v1", "deployments",
                  helpers.deployment("crash", replicas=REPLICAS, surge=SURGE, unavailable=UNAVAILABLE), namespace=ns)
    with helpers.PodWatcher(api_server, ns, ready_stand_in=True, check=check):
        manager_process.start()
        for round_ in range(KILLS):
            if round_ % 3 == 0:  # a new template every few kills, so kills land mid-rollout
                client.patch("apps/v1", "deployments", "crash",
                             {"spec": {"template": {"spec": {"containers": [
                                 {"name": "main", "image": f"nginx:{round_}"}]}}}},
                             namespace=ns, patch_type="strategic")
            support.wait_for(lambda r=round_: manager_process.starts() > r, timeout=30,
                             what="controllers running again")
            time.sleep(rng.uniform(0.0, 1.0))  # fault injection at a random moment of the rollout, not synchronization
            manager_process.kill9()
            manager_process.start()

        def done() -> bool:
            d = client.get("apps/v1", "deployments", "crash", namespace=ns)
            st = d.get("status") or {}
            pods = _items(client, "v1", "pods", ns)
            image = d["spec"]["template"]["spec"]["containers"][0]["image"]
            return (st.get("observedGeneration") == d["metadata"]["generation"]
                    and st.get("updatedReplicas") == REPLICAS and st.get("availableReplicas") == REPLICAS
                    and st.get("replicas") == REPLICAS and len(pods) == REPLICAS
                    and {p["spec"]["containers"][0]["image"] for p in pods} == {image})

        support.wait_for(done, timeout=90, what=f"rollout completes after kills; log:\n{manager_process.log_tail()}")
    pods = _items(client, "v1", "pods", ns)
    sets = {rs["metadata"]["uid"]: rs for rs in _items(client, "apps/v1", "replicasets", ns)}
    d = client.get("apps/v1", "deployments", "crash", namespace=ns)
    owners = [(meta.controller_owner(p) or {}).get("uid") for p in pods]
    assert len(pods) == REPLICAS and all(uid in sets for uid in owners), "orphaned pods"
    assert len(set(owners)) == 1, "pods of more than one ReplicaSet remain"
    for rs in sets.values():
        assert (meta.controller_owner(rs) or {}).get("uid") == d["metadata"]["uid"]
    hashes = [rs["metadata"]["labels"]["pod-template-hash"] for rs in sets.values()]
    assert len(hashes) == len(set(hashes)), "duplicate ReplicaSets for one template"
    active = [rs for rs in sets.values() if rs["spec"]["replicas"] > 0]
    assert len(active) == 1 and active[0]["spec"]["replicas"] == REPLICAS
    revisions = sorted(int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]) for rs in sets.values())
    assert len(revisions) == len(set(revisions)), f"duplicate revisions {revisions}"
    assert not over, over[:5]
    client.close()


def test_leader_election_hands_over_after_kill_9(api_server: str) -> None:
    """Two elected controller-managers: one leads (Lease holder); kill -9 it, the other leads within 20 s."""
    client = api.Client(support.connection(api_server).client_config())
    first = helpers.ControllerManagerProcess(api_server, leader_elect=True)
    second = helpers.ControllerManagerProcess(api_server, leader_elect=True)
    ns = f"lead-{uuid.uuid4().hex[:6]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    try:
        first.start()
        support.wait_for(first.starts, timeout=30, what="first manager leads")
        second.start()

        def holder() -> str:
            lease = client.get("coordination.k8s.io/v1", "leases", "reconcile-controller-manager",
                               namespace="kube-system")
            return lease["spec"].get("holderIdentity") or ""

        leader = holder()
        assert leader
        client.create("apps/v1", "deployments", helpers.deployment("led", replicas=2), namespace=ns)
        support.wait_for(lambda: len(_items(client, "v1", "pods", ns)) == 2, timeout=20, what="2 pods")
        assert second.starts() == 0  # the standby runs no controllers
        first.kill9()
        killed_at = time.monotonic()
        support.wait_for(second.starts, timeout=25, what="standby takes over")
        assert time.monotonic() - killed_at < 20
        assert holder() != leader
        client.patch("apps/v1", "deployments", "led", {"spec": {"replicas": 3}}, namespace=ns, subresource="scale")
        support.wait_for(lambda: len(_items(client, "v1", "pods", ns)) == 3, timeout=20, what="new leader acts")
    finally:
        first.stop()
        second.stop()
        client.close()


def test_paused_leader_writes_nothing_after_its_lease_expired(api_server: str) -> None:
    """SIGSTOP the leader until a standby takes over, then SIGCONT it: it stops (fenced), writing nothing."""
    client = api.Client(support.connection(api_server).client_config())
    fast = ("--leader-elect-lease-duration", "3", "--leader-elect-renew-deadline", "2",
            "--leader-elect-retry-period", "0.3")
    first = helpers.ControllerManagerProcess(api_server, leader_elect=True, extra_args=fast)
    second = helpers.ControllerManagerProcess(api_server, leader_elect=True, extra_args=fast)
    ns = f"pause-{uuid.uuid4().hex[:6]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    def holder() -> str:
        lease = client.get("coordination.k8s.io/v1", "leases", "reconcile-controller-manager", namespace="kube-system")
        return lease["spec"].get("holderIdentity") or ""

    try:
        first.start()
        support.wait_for(first.starts, timeout=30, what="first manager leads")
        second.start()
        paused_holder = holder()
        client.create("apps/v1", "deployments", helpers.deployment("paused", replicas=2), namespace=ns)
        support.wait_for(lambda: len(_items(client, "v1", "pods", ns)) == 2, timeout=20, what="2 pods")
        assert first.process is not None
        first.process.send_signal(signal.SIGSTOP)
        try:
            support.wait_for(second.starts, timeout=20, what="the standby takes over")
            assert holder() != paused_holder
            client.patch("apps/v1", "deployments", "paused", {"spec": {"replicas": 4}}, namespace=ns,
                         subresource="scale")
            support.wait_for(lambda: len(_items(client, "v1", "pods", ns)) == 4, timeout=20, what="new leader acts")
            # While the old leader sleeps, scale down: if it woke up still acting, it would re-create pods.
            client.patch("apps/v1", "deployments", "paused", {"spec": {"replicas": 1}}, namespace=ns,
                         subresource="scale")
            support.wait_for(lambda: len(_items(client, "v1", "pods", ns)) == 1, timeout=20, what="scaled to 1")
            resource_version = client.list("v1", "pods", namespace=ns)["metadata"]["resourceVersion"]
        finally:
            first.process.send_signal(signal.SIGCONT)
        # A deposed leader exits (its supervisor would restart it as a standby).
        support.wait_for(lambda: first.process is not None and first.process.poll() is not None, timeout=20,
                         what="the old leader steps down and exits")
        assert "controllers started:" in first.log_tail(100_000)
        assert holder() != paused_holder
        # Nothing changed under the pods since the paused leader woke: it wrote nothing.
        events = list(client.watch("v1", "pods", namespace=ns, resource_version=resource_version, timeout_seconds=1))
        assert [e for e in events if e["type"] != "BOOKMARK"] == []
        assert len(_items(client, "v1", "pods", ns)) == 1
    finally:
        first.stop()
        second.stop()
        client.close()
