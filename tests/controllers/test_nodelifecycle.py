"""Node lifecycle controller against a real API server: the test itself plays the node agents.

Leases are renewed (or not) by a thread of this test; a controller-manager process runs with
a short grace period (2 s) and default toleration (3 s), so each scenario takes seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from reconcile.client import api
from reconcile.controllers import nodelifecycle
from reconcile.core import errors, meta
from reconcile.engine import leader
from tests import support
from tests.controllers import helpers

GRACE = 2.0
DEFAULT_TOLERATION = 3.0
LEASES = "coordination.k8s.io/v1"


class LifecycleManagerProcess(helpers.ControllerManagerProcess):
    """The controller-manager with short node-lifecycle timings."""

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reconcile", "controller-manager", *support.connection(self.server).component_args(), "--no-leader-elect",
             "--workers", "2", "-v", "--node-monitor-grace-period", str(GRACE),
             "--pod-eviction-timeout", str(DEFAULT_TOLERATION)],
            stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )


class FakeAgents:
    """Stands in for node agents: renews the Lease of every node in `alive` every 0.2 s."""

    def __init__(self, server: str) -> None:
        self.client = api.Client(support.connection(server).client_config())
        self.alive: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def renew(self, name: str) -> None:
        now = leader.micro_time(datetime.now(UTC))
        spec = {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}
        try:
            self.client.patch(LEASES, "leases", name, {"spec": spec}, namespace="kube-node-lease")
        except errors.NotFound:
            self.client.create(LEASES, "leases", {"apiVersion": LEASES, "kind": "Lease",
                                                  "metadata": {"name": name, "namespace": "kube-node-lease"},
                                                  "spec": spec}, namespace="kube-node-lease")

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for name in list(self.alive):
                try:
                    self.renew(name)
                except Exception as exc:  # noqa: BLE001 - reported to the test thread
                    self.error = exc

    def __enter__(self) -> FakeAgents:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.client.close()


@pytest.fixture(scope="module")
def lifecycle_manager(api_server: str) -> Iterator[LifecycleManagerProcess]:
    process = LifecycleManagerProcess(api_server, workers=2)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def agents(api_server: str) -> Iterator[FakeAgents]:
    with FakeAgents(api_server) as fake:
        yield fake


@pytest.fixture
def nodes(client: api.Client) -> Iterator[list[str]]:
    """Node names created by the test; deleted afterwards so the next test sees only its own nodes."""
    created: list[str] = []
    yield created
    for name in created:
        for api_version, plural, namespace in (("v1", "nodes", None), (LEASES, "leases", "kube-node-lease")):
            try:
                client.delete(api_version, plural, name, namespace=namespace)
            except errors.NotFound:
                pass


def _ready_status(now: str) -> dict[str, Any]:
    return {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
                            "lastTransitionTime": now}]}


def _make_node(client: api.Client, agents: FakeAgents, nodes: list[str], prefix: str, *, alive: bool) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    client.create("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    nodes.append(name)
    agents.renew(name)
    client.patch("v1", "nodes", name, {"status": _ready_status(meta.now_rfc3339())}, subresource="status")
    if alive:
        agents.alive.add(name)
    return name


def _post_ready(client: api.Client, name: str) -> None:
    client.patch("v1", "nodes", name, {"status": _ready_status(meta.now_rfc3339())}, subresource="status")


def _pod(name: str, node: str, *, tolerations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeName": node, "containers": [{"name": "main", "image": "reconcile-hello:1.0"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _node(client: api.Client, name: str) -> dict[str, Any]:
    return client.get("v1", "nodes", name)


def _condition_taints(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in (node.get("spec") or {}).get("taints") or []
            if t.get("key") in nodelifecycle.CONDITION_TAINTS]


def _exists(client: api.Client, ns: str, name: str) -> bool:
    try:
        client.get("v1", "pods", name, namespace=ns)
    except errors.NotFound:
        return False
    return True


# --- pure parts ----------------------------------------------------------------------------------


def test_toleration_matching_and_seconds() -> None:
    taint = {"key": nodelifecycle.UNREACHABLE, "effect": "NoExecute"}
    assert nodelifecycle.tolerates({"operator": "Exists"}, taint)
    assert nodelifecycle.tolerates({"key": nodelifecycle.UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}, taint)
    assert not nodelifecycle.tolerates({"key": nodelifecycle.UNREACHABLE, "effect": "NoSchedule",
                                        "operator": "Exists"}, taint)
    assert not nodelifecycle.tolerates({"key": "other", "operator": "Exists"}, taint)
    assert not nodelifecycle.tolerates({"key": nodelifecycle.UNREACHABLE, "value": "x"}, taint)

    def pod(*tolerations: dict[str, Any]) -> dict[str, Any]:
        return {"spec": {"tolerations": list(tolerations)}}

    assert nodelifecycle.toleration_seconds(pod(), [taint], default=300) == 300
    assert nodelifecycle.toleration_seconds(
        pod({"key": nodelifecycle.UNREACHABLE, "operator": "Exists", "tolerationSeconds": 7}), [taint], default=300) == 7
    assert nodelifecycle.toleration_seconds(pod({"operator": "Exists"}), [taint], default=300) is None
    assert nodelifecycle.toleration_seconds(
        pod({"key": nodelifecycle.UNREACHABLE, "operator": "Exists", "tolerationSeconds": -5}), [taint], default=3) == 0
    other = {"key": "dedicated", "value": "gpu", "effect": "NoExecute"}
    assert nodelifecycle.toleration_seconds(pod({"operator": "Exists"}), [taint, other], default=300) is None
    assert nodelifecycle.toleration_seconds(
        pod({"key": "dedicated", "operator": "Equal", "value": "gpu", "tolerationSeconds": 20}),
        [taint, other], default=300) == 20


# --- against the API server ----------------------------------------------------------------------


def test_silent_node_goes_unknown_is_tainted_and_its_pods_are_evicted(
        lifecycle_manager, client: api.Client, agents: FakeAgents, nodes: list[str], ns: str) -> None:
    healthy = _make_node(client, agents, nodes, "alive", alive=True)
    silent_since = time.monotonic()
    silent = _make_node(client, agents, nodes, "silent", alive=False)
    by_default = client.create("v1", "pods", _pod("default-toleration", silent), namespace=ns)
    client.patch("v1", "pods", "default-toleration", {"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True"}]}}, namespace=ns, subresource="status")
    client.create("v1", "pods", _pod("short", silent, tolerations=[
        {"key": nodelifecycle.UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0}]),
        namespace=ns)
    client.create("v1", "pods", _pod("forever", silent, tolerations=[{"operator": "Exists"}]), namespace=ns)
    client.create("v1", "pods", _pod("elsewhere", healthy), namespace=ns)

    def unknown() -> dict[str, Any] | None:
        node = _node(client, silent)
        return node if nodelifecycle.ready_status(node) == "Unknown" else None

    node = support.wait_for(unknown, timeout=GRACE + 10, interval=0.05, what="the silent node to go Unknown")
    waited = time.monotonic() - silent_since
    assert waited >= GRACE * 0.9, f"marked Unknown after {waited:.2f}s, before the {GRACE}s grace period"
    ready = nodelifecycle.ready_condition(node)
    assert ready is not None and ready["reason"] == "NodeStatusUnknown"
    assert ready["message"] == "Kubelet stopped posting node status."

    def tainted() -> dict[str, Any] | None:
        taints = _condition_taints(_node(client, silent))
        return taints[0] if taints else None

    taint = support.wait_for(tainted, timeout=5, what="the unreachable taint")
    assert taint["key"] == nodelifecycle.UNREACHABLE and taint["effect"] == "NoExecute" and taint.get("timeAdded")
    tainted_at = time.monotonic()

    # the zero-toleration pod goes at once; the pods' Ready condition was turned False first
    support.wait_for(lambda: not _exists(client, ns, "short"), timeout=5, what="the zero-toleration pod evicted")
    if _exists(client, ns, "default-toleration"):
        pod = client.get("v1", "pods", "default-toleration", namespace=ns)
        assert not helpers.is_ready(pod), "pods on an Unknown node must not stay Ready"
    support.wait_for(lambda: not _exists(client, ns, "default-toleration"), timeout=DEFAULT_TOLERATION + 10,
                     interval=0.05, what="the pod with the default toleration evicted")
    evicted_after = time.monotonic() - tainted_at
    assert evicted_after >= DEFAULT_TOLERATION - 1.5, f"evicted {evicted_after:.2f}s after the taint"

    assert _exists(client, ns, "forever"), "a pod tolerating the taint forever must stay"
    assert _exists(client, ns, "elsewhere")
    other = _node(client, healthy)
    assert nodelifecycle.ready_status(other) == "True" and not _condition_taints(other)
    events = client.list("v1", "events", namespace=ns).get("items") or []
    assert any(e.get("reason") == "TaintManagerEviction"
               and e["involvedObject"].get("uid") == by_default["metadata"]["uid"] for e in events)
    assert agents.error is None


def test_replicaset_pods_on_a_lost_node_are_replaced(
        lifecycle_manager, client: api.Client, agents: FakeAgents, nodes: list[str], ns: str) -> None:
    _make_node(client, agents, nodes, "keeper", alive=True)
    lost = _make_node(client, agents, nodes, "lost", alive=False)
    labels = {"app": "moved"}
    client.create("apps/v1", "replicasets", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "moved"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": helpers.pod_template(labels)}},
        namespace=ns)
    first = support.wait_for(lambda: client.list("v1", "pods", namespace=ns).get("items"), timeout=10,
                             what="the ReplicaSet's pod")[0]
    pod_name = first["metadata"]["name"]
    client.request("POST", f"/api/v1/namespaces/{ns}/pods/{pod_name}/binding",
                   json={"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod_name},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": lost}})

    def replaced() -> bool:
        items = client.list("v1", "pods", namespace=ns).get("items") or []
        uids = {p["metadata"]["uid"] for p in items}
        return len(items) == 1 and first["metadata"]["uid"] not in uids

    support.wait_for(replaced, timeout=GRACE + DEFAULT_TOLERATION + 15, interval=0.1,
                     what="the pod on the lost node replaced by its ReplicaSet")
    assert nodelifecycle.ready_status(_node(client, lost)) == "Unknown"


def test_node_that_comes_back_is_untainted(
        lifecycle_manager, client: api.Client, agents: FakeAgents, nodes: list[str]) -> None:
    _make_node(client, agents, nodes, "steady", alive=True)
    flaky = _make_node(client, agents, nodes, "flaky", alive=False)
    support.wait_for(lambda: _condition_taints(_node(client, flaky)), timeout=GRACE + 10, interval=0.05,
                     what="the flaky node tainted")
    # the agent comes back: it renews its lease and posts Ready=True
    agents.alive.add(flaky)
    agents.renew(flaky)
    _post_ready(client, flaky)
    support.wait_for(lambda: not _condition_taints(_node(client, flaky)), timeout=10, interval=0.05,
                     what="the taint removed")
    node = _node(client, flaky)
    assert nodelifecycle.ready_status(node) == "True"
    # and it stays healthy while its lease is renewed
    deadline = time.monotonic() + GRACE * 1.5
    support.wait_for(lambda: time.monotonic() >= deadline and not _condition_taints(_node(client, flaky))
                     and nodelifecycle.ready_status(_node(client, flaky)) == "True", timeout=GRACE * 3,
                     interval=0.1, what="the node to stay Ready")


def test_all_nodes_silent_means_no_taints_and_no_evictions(
        lifecycle_manager, client: api.Client, agents: FakeAgents, nodes: list[str], ns: str) -> None:
    """Full disruption (upstream): when no node is healthy, pods have nowhere to go; nothing is evicted."""
    for node in client.list("v1", "nodes").get("items") or []:  # leftovers of earlier tests
        client.delete("v1", "nodes", node["metadata"]["name"])
    first = _make_node(client, agents, nodes, "dark1", alive=False)
    second = _make_node(client, agents, nodes, "dark2", alive=False)
    # the nodes go silent ~0.1 s apart: the first may be tainted for that moment, so its pod
    # tolerates a little longer than that (with 0 it would go at once, as upstream)
    client.create("v1", "pods", _pod("stays", first, tolerations=[
        {"key": nodelifecycle.UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]),
        namespace=ns)
    support.wait_for(lambda: all(nodelifecycle.ready_status(_node(client, n)) == "Unknown" for n in (first, second)),
                     timeout=GRACE + 10, interval=0.05, what="both nodes Unknown")
    settle = time.monotonic() + 3.5  # past the toleration: an eviction would have happened by now
    support.wait_for(lambda: time.monotonic() >= settle, timeout=10, what="the toleration to pass")
    assert not _condition_taints(_node(client, first)) and not _condition_taints(_node(client, second))
    assert _exists(client, ns, "stays")
    # one node back: the other is tainted, its pod evicted
    agents.alive.add(second)
    agents.renew(second)
    _post_ready(client, second)
    support.wait_for(lambda: _condition_taints(_node(client, first)), timeout=10, interval=0.05,
                     what="the still-silent node tainted once another is healthy")
    support.wait_for(lambda: not _exists(client, ns, "stays"), timeout=10, what="its pod evicted")
