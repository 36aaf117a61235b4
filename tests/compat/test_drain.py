"""`kubectl drain` (kubectl 1.32) against an API server and controller-manager: evictions respect a
PodDisruptionBudget, drain retries the 429 until the budget allows, then finishes with the node
cordoned. `kubectl create pdb` (a protobuf body) and `kubectl get pdb` columns too.

Nodes are objects only. A stand-in thread does what the scheduler and the replacement pods' node
agent would: it binds the ReplicaSet's new pods to another node and marks them Running/Ready.
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconcile.client import api
from reconcile.core import errors
from tests import support
from tests.compat.conftest import kubectl_binary
from tests.controllers import helpers


@pytest.fixture(scope="module")
def controller_manager(api_server: str) -> Iterator[helpers.ControllerManagerProcess]:
    process = helpers.ControllerManagerProcess(api_server, extra_args=("--node-monitor-grace-period", "600"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def client(api_server: str) -> Iterator[api.Client]:
    with api.Client(support.connection(api_server).client_config()) as c:
        yield c


def _kubectl(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([kubectl_binary(), *args], capture_output=True, text=True, env=env, timeout=timeout)


def _bind(client: api.Client, pod: dict[str, Any], node: str) -> bool:
    md = pod["metadata"]
    answer = client.request("POST", f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}/binding", json={
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": md["name"]},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
    return answer.status_code == 201


class StandIn:
    """Binds the namespace's unbound pods to `node` and marks every pod Ready (scheduler + agents)."""

    def __init__(self, server: str, namespace: str, node: str) -> None:
        self.client = api.Client(support.connection(server).client_config())
        self.namespace, self.node = namespace, node
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            pods = self.client.list("v1", "pods", namespace=self.namespace).get("items") or []
            for pod in pods:
                if not pod["spec"].get("nodeName") and not pod["metadata"].get("deletionTimestamp"):
                    try:
                        _bind(self.client, pod, self.node)
                    except errors.ApiError:  # gone or bound meanwhile: seen again next round
                        continue
            try:
                helpers.mark_pods_ready_stand_in(self.client, self.namespace)
            except errors.ApiError:
                continue

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.client.close()


def _pdb_status(client: api.Client, ns: str) -> dict[str, Any]:
    return client.get("policy/v1", "poddisruptionbudgets", "web", namespace=ns).get("status") or {}


def _ready_replicaset_on(client: api.Client, ns: str, name: str, replicas: int, node: str) -> list[dict]:
    """A ReplicaSet `name` (pods labelled app=`name`) whose pods are bound to `node` and marked Ready."""
    labels = {"app": name}
    client.create("apps/v1", "replicasets", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": helpers.pod_template(labels)}},
        namespace=ns)
    pods = support.wait_for(
        lambda: len(p := client.list("v1", "pods", namespace=ns).get("items") or []) == replicas and p,
        timeout=30, what=f"the ReplicaSet's {replicas} pods")
    for pod in pods:
        assert _bind(client, pod, node)
    helpers.mark_pods_ready_stand_in(client, ns)
    return pods


def test_drain_waits_for_the_budget_then_finishes(controller_manager, api_server: str, client: api.Client,
                                                 kube_env: dict[str, str], tmp_path: Path) -> None:
    ns = f"drain-{uuid.uuid4().hex[:6]}"
    drained, other = f"drained-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for node in (drained, other):
        client.create("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    first = _ready_replicaset_on(client, ns, "web", 2, drained)

    created = _kubectl(kube_env, "create", "pdb", "web", "-n", ns, "--selector=app=web", "--min-available=2")
    assert created.returncode == 0 and created.stdout.strip() == "poddisruptionbudget.policy/web created", created.stderr
    support.wait_for(lambda: _pdb_status(client, ns).get("currentHealthy") == 2, timeout=30,
                     what="the budget counts both pods")
    listed = _kubectl(kube_env, "get", "pdb", "-n", ns)
    header, row = listed.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
    assert row.split()[:4] == ["web", "2", "N/A", "0"]

    out = (tmp_path / "drain.out").open("w+")
    drain = subprocess.Popen([kubectl_binary(), "drain", drained, "--ignore-daemonsets", "--grace-period=0",
                              "--timeout=120s"], stdout=out, stderr=subprocess.STDOUT, text=True, env=kube_env)
    try:
        def refused() -> bool:
            out.seek(0)
            return "Cannot evict pod as it would violate the pod's disruption budget." in out.read()

        support.wait_for(refused, timeout=60, what="drain told the budget blocks it")
        assert drain.poll() is None, "drain retries a 429 instead of giving up"
        assert {p["metadata"]["uid"] for p in client.list("v1", "pods", namespace=ns)["items"]} == \
            {p["metadata"]["uid"] for p in first}, "a blocked eviction deletes nothing"

        with StandIn(api_server, ns, other):  # another pod becomes ready elsewhere: the budget allows one
            client.patch("apps/v1", "replicasets", "web", {"spec": {"replicas": 3}}, namespace=ns)
            assert drain.wait(timeout=150) == 0
    finally:
        if drain.poll() is None:
            drain.kill()
            drain.wait()
    out.seek(0)
    text = out.read()
    out.close()
    assert f"node/{drained} drained" in text, text
    for pod in first:
        assert f"pod/{pod['metadata']['name']} evicted" in text, text
    assert client.get("v1", "nodes", drained)["spec"]["unschedulable"] is True
    assert not client.list("v1", "pods", namespace=ns, field_selector=f"spec.nodeName={drained}").get("items")
    assert _pdb_status(client, ns)["desiredHealthy"] == 2


def test_drain_with_eviction_disabled_deletes_past_the_budget(controller_manager, api_server: str,
                                                              client: api.Client, kube_env: dict[str, str]) -> None:
    """`kubectl drain --disable-eviction` DELETEs each pod (a protobuf DeleteOptions body) past a
    budget that allows no disruption, and waits for them to be gone."""
    ns = f"drain-{uuid.uuid4().hex[:6]}"
    drained = f"drained-{uuid.uuid4().hex[:6]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    client.create("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": drained}})
    labels = {"app": "db"}
    pods = _ready_replicaset_on(client, ns, "db", 3, drained)
    client.create("policy/v1", "poddisruptionbudgets", {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
        "spec": {"minAvailable": 3, "selector": {"matchLabels": labels}}}, namespace=ns)
    support.wait_for(lambda: _pdb_status(client, ns).get("currentHealthy") == 3, timeout=30,
                     what="the budget counts the three pods")

    done = _kubectl(kube_env, "drain", drained, "--disable-eviction", "--grace-period=0", "--timeout=60s",
                    timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "evicting pod" not in done.stdout
    for pod in pods:
        assert f"pod/{pod['metadata']['name']} deleted" in done.stdout, done.stdout
    assert done.stdout.strip().endswith(f"node/{drained} drained")
    assert not client.list("v1", "pods", namespace=ns, field_selector=f"spec.nodeName={drained}").get("items")
