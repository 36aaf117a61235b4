"""`reconcile node cordon|uncordon|drain` against a real API server, controller-manager and scheduler.

Nodes here are objects only; a thread stands in for the drained node's agent by finishing the
graceful deletion of its pods (what an agent does once the containers are stopped).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reconcile.client import api
from reconcile.core import errors, meta
from tests import support
from tests.conftest import run_cli
from tests.controllers import helpers


class Process:
    """`python -m reconcile ARGS` in the background, stopped by pid."""

    def __init__(self, *args: str) -> None:
        self.log = open(os.devnull, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([sys.executable, "-m", "reconcile", *args], stdout=self.log,
                                        stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def control_plane(api_server: str) -> Iterator[None]:
    """Controller-manager (node grace long enough that these object-only nodes stay Ready) and scheduler."""
    procs = [Process("controller-manager", *support.connection(api_server).component_args(), "--no-leader-elect",
                     "--node-monitor-grace-period", "600"),
             Process("scheduler", *support.connection(api_server).component_args(), "--no-leader-elect")]
    try:
        yield
    finally:
        for proc in procs:
            proc.stop()


@pytest.fixture
def client(api_server: str) -> Iterator[api.Client]:
    with api.Client(support.connection(api_server).client_config()) as c:
        yield c


@pytest.fixture
def ns(client: api.Client) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def _node(client: api.Client, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    client.create("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": name, "labels": {"kubernetes.io/hostname": name}}})
    now = meta.now_rfc3339()
    client.patch("v1", "nodes", name, {"status": {
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": now,
                        "lastTransitionTime": now}]}}, subresource="status")
    return name


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stdout}{result.stderr}"
    return result.stdout


def _pods_on(client: api.Client, node: str) -> list[dict[str, Any]]:
    return client.list("v1", "pods", field_selector=f"spec.nodeName={node}").get("items") or []


class StandInAgent:
    """Finishes the graceful deletion of pods on `node` (delete with grace 0), as the node's agent would."""

    def __init__(self, server: str, node: str) -> None:
        self.client = api.Client(support.connection(server).client_config())
        self.node = node
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for pod in _pods_on(self.client, self.node):
                md = pod["metadata"]
                if md.get("deletionTimestamp"):
                    try:
                        self.client.delete("v1", "pods", md["name"], namespace=md["namespace"],
                                           grace_period_seconds=0)
                    except errors.NotFound:
                        pass

    def __enter__(self) -> StandInAgent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.client.close()


def test_cordon_and_uncordon(api_server: str, client: api.Client) -> None:
    name = _node(client, "cordon")
    assert _ok(run_cli("node", "cordon", name, server=api_server)).strip() == f"node/{name} cordoned"
    assert client.get("v1", "nodes", name)["spec"]["unschedulable"] is True
    assert _ok(run_cli("node", "cordon", name, server=api_server)).strip() == f"node/{name} already cordoned"
    assert _ok(run_cli("node", "uncordon", name, server=api_server)).strip() == f"node/{name} uncordoned"
    assert not (client.get("v1", "nodes", name).get("spec") or {}).get("unschedulable")
    missing = run_cli("node", "cordon", "no-such-node", server=api_server)
    assert missing.returncode == 1 and "NotFound" in missing.stderr


def test_drain_moves_replicaset_pods_and_needs_force_for_bare_pods(
        control_plane, api_server: str, client: api.Client, ns: str) -> None:
    drained = _node(client, "drained")
    other = _node(client, "other")
    for node in client.list("v1", "nodes").get("items") or []:  # everything lands on `drained` first
        if node["metadata"]["name"] != drained:
            client.patch("v1", "nodes", node["metadata"]["name"], {"spec": {"unschedulable": True}})
    labels = {"app": "web"}
    client.create("apps/v1", "replicasets", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": helpers.pod_template(labels)}},
        namespace=ns)
    client.create("v1", "pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"},
                                 "spec": {"nodeName": drained, "containers": [{"name": "c", "image": "x:1"}]}},
                  namespace=ns)
    first = support.wait_for(lambda: len(_pods_on(client, drained)) == 3 and _pods_on(client, drained), timeout=20,
                             what="the ReplicaSet's pods scheduled onto the node")
    first_uids = {p["metadata"]["uid"] for p in first}
    client.patch("v1", "nodes", other, {"spec": {"unschedulable": None}})

    refused = run_cli("node", "drain", drained, server=api_server)
    assert refused.returncode == 1
    assert f"node/{drained} cordoned" in refused.stdout
    assert "cannot delete Pods that declare no controller (use --force to override)" in refused.stderr
    assert f"{ns}/bare" in refused.stderr
    assert client.get("v1", "nodes", drained)["spec"]["unschedulable"] is True
    assert {p["metadata"]["uid"] for p in _pods_on(client, drained)} == first_uids, "a refused drain deletes nothing"

    with StandInAgent(api_server, drained):
        out = _ok(run_cli("node", "drain", drained, "--force", "--timeout", "60s", server=api_server, timeout=90))
    assert f"node/{drained} already cordoned" in out
    for pod in first:
        assert f"evicting pod {ns}/{pod['metadata']['name']}" in out
        assert f"pod/{pod['metadata']['name']} evicted" in out
    assert out.strip().endswith(f"node/{drained} drained")
    assert not _pods_on(client, drained)

    def replaced_elsewhere() -> bool:
        pods = client.list("v1", "pods", namespace=ns).get("items") or []
        return len(pods) == 2 and all(p["spec"].get("nodeName") == other and p["metadata"]["uid"] not in first_uids
                                      for p in pods)

    support.wait_for(replaced_elsewhere, timeout=20, what="the ReplicaSet's pods re-created on the other node")


def test_drain_times_out_when_pods_do_not_go(control_plane, api_server: str, client: api.Client, ns: str) -> None:
    """No agent finishes the deletions: each pod's wait ends at the global deadline, and the errors
    are printed as kubectl 1.32 prints them (one alone after `error: `, several one a line)."""
    stuck = _node(client, "stuck")
    client.create("v1", "pods", _bare_pod("slow", stuck), namespace=ns)
    result = run_cli("node", "drain", stuck, "--force", "--timeout", "1s", server=api_server)
    assert result.returncode == 1
    assert f"evicting pod {ns}/slow" in result.stdout
    assert result.stderr.splitlines()[-1] == (f'error: error when waiting for pod "slow" in namespace "{ns}" to '
                                              "terminate: context deadline exceeded")
    assert f'There are pending pods in node "{stuck}" when an error occurred' in result.stderr
    assert "pod/slow\n" in result.stderr
    assert client.get("v1", "pods", "slow", namespace=ns)["metadata"].get("deletionTimestamp")

    client.create("v1", "pods", _bare_pod("slower", stuck), namespace=ns)
    mirror = _bare_pod("mirrored", stuck)  # never drained, so never listed as pending
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "x"}
    client.create("v1", "pods", mirror, namespace=ns)
    result = run_cli("node", "drain", stuck, "--force", "--timeout", "1s", server=api_server)
    assert result.returncode == 1
    assert "pod/slower\n" in result.stderr and "pod/mirrored" not in result.stderr
    assert set(result.stderr.splitlines()[-2:]) == {
        f'error when waiting for pod "{name}" in namespace "{ns}" to terminate: context deadline exceeded'
        for name in ("slow", "slower")}


def test_drain_parses_durations() -> None:
    from reconcile.cli import nodes_cmd

    assert nodes_cmd.parse_timeout("90") == 90
    assert nodes_cmd.parse_timeout("1m30s") == 90
    assert nodes_cmd.parse_timeout("0s") == 0
    with pytest.raises(Exception, match="invalid duration"):
        nodes_cmd.parse_timeout("soon")


def _budget_holding_the_db_pod(client: api.Client, ns: str) -> None:
    """A PodDisruptionBudget of minAvailable 1 over the ready `app=db` pod: it allows no eviction
    (every eviction of that pod gets 429), once the disruption controller has counted the pod."""
    client.create("policy/v1", "poddisruptionbudgets", {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "db"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}}, namespace=ns)
    support.wait_for(lambda: (client.get("policy/v1", "poddisruptionbudgets", "db", namespace=ns).get("status")
                              or {}).get("currentHealthy") == 1, timeout=30, what="the budget counts the pod")


def test_drain_honours_a_disruption_budget(control_plane, api_server: str, client: api.Client, ns: str) -> None:
    """Drain evicts: a budget that allows no disruption keeps the pod, drain retries the 429 and
    gives up at its timeout, naming the pod."""
    node = _node(client, "budget")
    client.create("v1", "pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db", "labels": {"app": "db"}},
                                 "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x:1"}]}},
                  namespace=ns)
    helpers.mark_pods_ready_stand_in(client, ns)
    _budget_holding_the_db_pod(client, ns)
    result = run_cli("node", "drain", node, "--force", "--timeout", "7s", server=api_server, timeout=60)
    assert result.returncode == 1
    assert f"evicting pod {ns}/db" in result.stdout
    assert "Cannot evict pod as it would violate the pod's disruption budget." in result.stderr
    assert "global timeout reached: 7s" in result.stderr
    assert not client.get("v1", "pods", "db", namespace=ns)["metadata"].get("deletionTimestamp")


class HoldingAgent(StandInAgent):
    """A stand-in agent that finishes no deletion until every pod of `together` is terminating (the
    evictions must have been sent side by side), and records each pod's deletion grace period."""

    def __init__(self, server: str, node: str, together: set[str]) -> None:
        super().__init__(server, node)
        self.together = together
        self.grace: dict[str, int | None] = {}
        self.released = threading.Event()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            terminating = [p for p in _pods_on(self.client, self.node) if p["metadata"].get("deletionTimestamp")]
            for pod in terminating:
                self.grace[pod["metadata"]["name"]] = pod["metadata"].get("deletionGracePeriodSeconds")
            if not self.released.is_set():
                if not self.together <= {p["metadata"]["name"] for p in terminating}:
                    continue
                self.released.set()
            for pod in terminating:
                try:
                    self.client.delete("v1", "pods", pod["metadata"]["name"], namespace=pod["metadata"]["namespace"],
                                       grace_period_seconds=0)
                except errors.NotFound:
                    pass


def _bare_pod(name: str, node: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x:1"}]}}


def test_drain_evicts_in_parallel_while_a_budget_holds_one_pod(control_plane, api_server: str, client: api.Client,
                                                               ns: str, tmp_path) -> None:
    """The budget-blocked pod sorts first: a drain that evicted one pod after the other would wait on
    it and never reach the others. Ours evicts every pod at once: the free pods are gone while the
    blocked one is still retried, and the drain ends when the budget lets that one go too."""
    node, spare = _node(client, "parallel"), _node(client, "spare")
    free = {f"free-{i}" for i in range(3)}
    client.create("v1", "pods", _bare_pod("a-db", node, {"app": "db"}), namespace=ns)
    for name in sorted(free):
        client.create("v1", "pods", _bare_pod(name, node), namespace=ns)
    helpers.mark_pods_ready_stand_in(client, ns)
    _budget_holding_the_db_pod(client, ns)

    log = tmp_path / "drain.log"
    agent = HoldingAgent(api_server, node, together=free)
    with agent, log.open("w") as out:
        drain = subprocess.Popen([sys.executable, "-m", "reconcile", "node", "drain", node, "--force",
                                  "--grace-period=7", "--timeout=120s"], stdout=out, stderr=subprocess.STDOUT,
                                 text=True, env=support.connection(api_server).env())
        try:
            def free_gone_while_db_is_held() -> bool:
                names = {p["metadata"]["name"]: p for p in _pods_on(client, node)}
                held = "a-db" in names and not names["a-db"]["metadata"].get("deletionTimestamp")
                return held and not (free & names.keys()) and "will retry after 5s" in log.read_text()

            support.wait_for(free_gone_while_db_is_held, timeout=40,
                             what="the free pods evicted and gone while the budget holds a-db")
            assert drain.poll() is None, log.read_text()
            client.create("v1", "pods", _bare_pod("b-db", spare, {"app": "db"}), namespace=ns)
            helpers.mark_pods_ready_stand_in(client, ns)
            assert drain.wait(timeout=60) == 0, log.read_text()
        finally:
            if drain.poll() is None:
                drain.kill()
                drain.wait()
    text = log.read_text()
    for name in free | {"a-db"}:
        assert f"evicting pod {ns}/{name}" in text and f"pod/{name} evicted" in text, text
        assert agent.grace[name] == 7, agent.grace
    assert (f'error when evicting pods/"a-db" -n "{ns}" (will retry after 5s): Cannot evict pod as it would violate '
            "the pod's disruption budget.") in text
    assert text.index("pod/a-db evicted") > max(text.index(f"pod/{name} evicted") for name in free)
    assert text.strip().endswith(f"node/{node} drained")
    assert [p["metadata"]["name"] for p in _pods_on(client, spare)] == ["b-db"]


def test_drain_with_eviction_disabled_deletes_past_a_budget(control_plane, api_server: str, client: api.Client,
                                                            ns: str) -> None:
    node = _node(client, "noevict")
    client.create("v1", "pods", _bare_pod("db", node, {"app": "db"}), namespace=ns)
    helpers.mark_pods_ready_stand_in(client, ns)
    _budget_holding_the_db_pod(client, ns)
    with StandInAgent(api_server, node):
        out = _ok(run_cli("node", "drain", node, "--force", "--disable-eviction", "--timeout=60s",
                          server=api_server, timeout=90))
    assert "evicting pod" not in out and "pod/db deleted" in out, out
    assert out.strip().endswith(f"node/{node} drained")
    assert not _pods_on(client, node)


def test_drain_durations_print_as_kubectl_prints_them() -> None:
    from reconcile.cli import drainpods

    assert [drainpods.go_duration(s) for s in (7, 90, 300, 3600, 1.5, 0.5, 0)] == [
        "7s", "1m30s", "5m0s", "1h0m0s", "1.5s", "500ms", "0s"]
    assert drainpods.aggregate(["a"]) == "a"
    assert drainpods.aggregate(["a", "b"]) == "[a, b]"


def test_interrupting_a_drain_stops_its_retries(control_plane, api_server: str, client: api.Client, ns: str,
                                                tmp_path) -> None:
    """Without a timeout a budget-held pod is retried forever, in its own thread: Ctrl-C still ends
    the drain at once (exit 130), the pod untouched and the node left cordoned."""
    node = _node(client, "interrupt")
    client.create("v1", "pods", _bare_pod("db", node, {"app": "db"}), namespace=ns)
    helpers.mark_pods_ready_stand_in(client, ns)
    _budget_holding_the_db_pod(client, ns)
    log = tmp_path / "drain.log"
    with log.open("w") as out:
        drain = subprocess.Popen([sys.executable, "-m", "reconcile", "node", "drain", node, "--force"],
                                 stdout=out, stderr=subprocess.STDOUT, env=support.connection(api_server).env())
        try:
            support.wait_for(lambda: "will retry after 5s" in log.read_text(), timeout=30, what="the first 429")
            drain.send_signal(signal.SIGINT)
            assert drain.wait(timeout=15) == 130, log.read_text()
        finally:
            if drain.poll() is None:
                drain.kill()
                drain.wait()
    assert not client.get("v1", "pods", "db", namespace=ns)["metadata"].get("deletionTimestamp")
    assert client.get("v1", "nodes", node)["spec"]["unschedulable"] is True


def test_drain_filters_pods_as_kubectl_does() -> None:
    """kubectl 1.32's filter chain and words (captured against this server): a pod's verdict is
    the filter that stops it, else the last one's, so only the unmanaged and DaemonSet warnings show."""
    from reconcile.cli import nodes_cmd

    def pod(name: str, owner: str | None = None, volumes: list[dict[str, Any]] | None = None,
            phase: str = "Running") -> dict[str, Any]:
        md: dict[str, Any] = {"name": name, "namespace": "ns"}
        if owner:
            md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner, "name": "x", "uid": "u", "controller": True}]
        return {"metadata": md, "spec": {"volumes": volumes or []}, "status": {"phase": phase}}

    pods = [pod("ds", "DaemonSet"), pod("disk", "ReplicaSet", [{"name": "v", "emptyDir": {}}]),
            pod("mem", "ReplicaSet", [{"name": "v", "emptyDir": {"medium": "Memory"}}]), pod("bare"),
            pod("bare-disk", None, [{"name": "v", "emptyDir": {}}]), pod("done", None, phase="Succeeded"),
            {**pod("mirror"), "metadata": {"name": "mirror", "namespace": "ns",
                                           "annotations": {nodes_cmd.MIRROR_ANNOTATION: "x"}}}]
    refused = nodes_cmd.plan(pods, force=False, ignore_daemonsets=False, delete_emptydir_data=False)
    assert sorted(refused.refusals()) == [
        "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): ns/ds",
        "cannot delete Pods with local storage (use --delete-emptydir-data to override): ns/disk, ns/mem, ns/bare-disk",
        "cannot delete cannot delete Pods that declare no controller (use --force to override): ns/bare"]
    allowed = nodes_cmd.plan(pods, force=True, ignore_daemonsets=True, delete_emptydir_data=True)
    assert allowed.refusals() == []
    assert allowed.warning() == "ignoring DaemonSet-managed Pods: ns/ds; deleting Pods that declare no controller: " \
                                "ns/bare, ns/bare-disk"
    assert [p["metadata"]["name"] for p in allowed.delete] == ["disk", "mem", "bare", "bare-disk", "done"]
