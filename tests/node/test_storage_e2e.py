"""Storage end to end on real Docker engines (issue 12): scheduler, controller-manager (StatefulSet,
binder and provisioner) and node agents on private dockerds.

One StatefulSet `web` of 3 (a Docker-volume claim each, the default WaitForFirstConsumer class)
serves the first three tests, in file order, so it is started once: scale 3 -> 1 -> 3 keeps the
claims and data of -1 and -2 (retention policy Retain by default); a template change rolls from the
highest ordinal down, one pod at a time, each Ready before the next (watched); the data survives a
node agent restart (stopped by pid) and an API server restart (killed by pid). Each pod's file
holds the name and UID of the pod that first wrote it, so a new pod reading an old UID proves the
data, not a rewrite.

The last test adds a second node (its own dockerd): a WaitForFirstConsumer claim is provisioned on
the engine of the node its pod was scheduled to, and a pod whose `local` volume has node affinity
to node B lands only on B, and stays Pending naming the volume while B is cordoned.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconcile.client import api as client_api
from reconcile.core import errors, volumes
from reconcile.node import safepath
from tests import docker_support, support
from tests.controllers.helpers import ControllerManagerProcess, PodWatcher
from tests.e2e.conftest import Component
from tests.node import helpers

REPLICAS = 3
SERVE = ["sh", "-c", "[ -f /data/first ] || echo \"$(POD_NAME) $(POD_UID)\" > /data/first; "
         "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]
SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]


class Cluster:
    """The module's parts: the API server process (restarted by a test), one node, the controllers."""

    def __init__(self, server: support.ApiServerProcess, agent: docker_support.NodeAgentProcess,
                 manager: ControllerManagerProcess, scheduler: Component) -> None:
        self.server = server
        self.agent = agent
        self.manager = manager
        self.scheduler = scheduler

    def logs(self) -> str:
        return (f"--- agent\n{self.agent.log_text()[-2500:]}\n--- controller-manager\n{self.manager.log_tail(2500)}"
                f"\n--- scheduler\n{self.scheduler.tail(1500)}")


@pytest.fixture(scope="module")
def cluster(docker_node: docker_support.DockerDaemon, server_process: support.ApiServerProcess,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    agent = docker_support.NodeAgentProcess(docker_node, server_process.url, name=f"node-{uuid.uuid4().hex[:6]}",
                                            state_dir=Path(tmp_path_factory.mktemp("agent")) / "node",
                                            extra_args=("--lease-interval", "2", "--resync-interval", "2"))
    manager = ControllerManagerProcess(server_process.url)
    scheduler: Component | None = None
    agent.start()
    try:
        manager.start()
        scheduler = Component("scheduler", "scheduler", *support.connection(server_process.url).component_args(),
                              "--no-leader-elect")
        yield Cluster(server_process, agent, manager, scheduler)
    finally:
        for part in (scheduler, manager):
            if part is not None:
                part.stop()
        agent.stop()
        agent.remove_containers()
        safepath.unmount_all(agent.state_dir)


@pytest.fixture(scope="module")
def admin(server_process: support.ApiServerProcess) -> Iterator[client_api.Client]:
    c = client_api.Client(server_process.connection.client_config())
    try:
        yield c
    finally:
        c.close()


def _new_namespace(client: client_api.Client) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def _statefulset() -> dict[str, Any]:
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}]
    container = helpers.container(command=SERVE, env=env, volumeMounts=[{"name": "data", "mountPath": "/data"}])
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
            "spec": {"replicas": REPLICAS, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"terminationGracePeriodSeconds": 2, "containers": [container]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                         "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}


class Web:
    """The StatefulSet `web` of the first three tests, and what its pods wrote."""

    def __init__(self, client: client_api.Client, daemon: docker_support.DockerDaemon, namespace: str,
                 cluster: Cluster) -> None:
        self.client = client
        self.daemon = daemon
        self.namespace = namespace
        self.cluster = cluster
        self.handles: set[str] = set()  # the Docker volumes its claims got
        self.written: dict[str, str] = {}  # pod name -> "name uid" its first pod wrote

    def pod(self, name: str, *, timeout: float = 60) -> tuple[dict[str, Any], str]:
        """The pod once Running and Ready, and its app container's id."""
        obj = helpers.wait_pod(self.client, self.namespace, name, helpers.running_ready, timeout=timeout,
                               what=f"{name} Running and Ready; logs:\n{self.cluster.logs()}")
        return obj, helpers.app_containers(self.daemon, obj["metadata"]["uid"], "app")[0]["Id"]

    def read(self, container: str) -> str:
        return self.daemon.docker("exec", container, "cat", "/data/first").stdout

    def claim(self, ordinal: int) -> dict[str, Any]:
        return self.client.get("v1", "persistentvolumeclaims", f"data-web-{ordinal}", namespace=self.namespace)

    def all_ready(self, *, timeout: float = 120) -> None:
        support.wait_for(lambda: (self.client.get("apps/v1", "statefulsets", "web", namespace=self.namespace)
                                  .get("status") or {}).get("readyReplicas") == REPLICAS,
                         timeout=timeout, what=f"web all Ready; logs:\n{self.cluster.logs()}")

    def check_data(self) -> dict[str, str]:
        """Every pod reads what the first pod of its ordinal wrote; the pods' UIDs now."""
        uids = {}
        for ordinal in range(REPLICAS):
            name = f"web-{ordinal}"
            obj, box = self.pod(name)
            assert self.read(box) == self.written[name], f"{name} lost its data"
            uids[name] = obj["metadata"]["uid"]
        return uids


@pytest.fixture(scope="module")
def web(admin: client_api.Client, cluster: Cluster, docker_node: docker_support.DockerDaemon) -> Iterator[Web]:
    namespace = _new_namespace(admin)
    made = Web(admin, docker_node, namespace, cluster)
    admin.create("apps/v1", "statefulsets", _statefulset(), namespace=namespace)
    try:
        for ordinal in range(REPLICAS):
            obj, box = made.pod(f"web-{ordinal}", timeout=90)
            support.wait_for(lambda b=box: made.read(b), timeout=10, what=f"web-{ordinal} wrote its file")
            made.written[obj["metadata"]["name"]] = made.read(box)
            assert made.written[f"web-{ordinal}"] == f"web-{ordinal} {obj['metadata']['uid']}\n"
            made.handles.add(made.claim(ordinal)["spec"]["volumeName"])
        assert len(made.handles) == REPLICAS
        yield made
    finally:
        _remove_workload(admin, docker_node, namespace, made.handles,
                         lambda: admin.patch("apps/v1", "statefulsets", "web", {"spec": {"replicas": 0}},
                                             namespace=namespace))


def _remove_workload(client: client_api.Client, daemon: docker_support.DockerDaemon, namespace: str,
                     handles: set[str], scale_down: Any = None) -> None:
    """Pods gone (and their containers), then the namespace and the Docker volumes the test made."""
    try:
        if scale_down is not None:
            scale_down()
        for pod in client.list("v1", "pods", namespace=namespace)["items"]:
            if not (pod["metadata"].get("ownerReferences")):
                client.delete("v1", "pods", pod["metadata"]["name"], namespace=namespace, grace_period_seconds=0)
        support.wait_for(lambda: not client.list("v1", "pods", namespace=namespace)["items"], timeout=60,
                         what="the test's pods gone")
        client.delete("v1", "namespaces", namespace)
    finally:
        support.wait_for(lambda: not daemon.container_ids(f"label=reconcile.pod.namespace={namespace}"),
                         timeout=60, what="the test's containers removed")
        for handle in handles:
            daemon.docker("volume", "rm", "-f", handle, check=False)


def test_scale_down_and_up_keeps_claims_and_data(web: Web) -> None:
    uids = web.check_data()
    web.client.patch("apps/v1", "statefulsets", "web", {"spec": {"replicas": 1}}, namespace=web.namespace)
    support.wait_for(lambda: [p["metadata"]["name"] for p in web.client.list("v1", "pods", namespace=web.namespace)
                              ["items"]] == ["web-0"], timeout=60, what="scaled to 1")
    for ordinal in (1, 2):  # Retain (the default whenScaled): the claims, their volumes and data stay
        claim = web.claim(ordinal)
        assert claim["status"]["phase"] == "Bound" and not claim["metadata"].get("deletionTimestamp")
        assert web.daemon.docker("volume", "inspect", claim["spec"]["volumeName"]).returncode == 0
    web.client.patch("apps/v1", "statefulsets", "web", {"spec": {"replicas": REPLICAS}}, namespace=web.namespace)
    web.all_ready()
    after = web.check_data()  # the new -1 and -2 read what the first -1 and -2 wrote
    assert after["web-0"] == uids["web-0"]
    assert all(after[n] != uids[n] for n in ("web-1", "web-2"))
    assert {web.claim(o)["spec"]["volumeName"] for o in range(REPLICAS)} == web.handles


def _rolled_out(web: Web, generation: int) -> dict[str, Any] | None:
    """The set once its controller has seen `generation` and every pod is updated and Ready."""
    sts = web.client.get("apps/v1", "statefulsets", "web", namespace=web.namespace)
    status = sts.get("status") or {}
    done = (status.get("observedGeneration", 0) >= generation and status.get("updatedReplicas") == REPLICAS
            and status.get("readyReplicas") == REPLICAS and status.get("currentRevision") == status.get("updateRevision"))
    return sts if done else None


def test_rolling_update_goes_down_one_at_a_time(web: Web, api_server: str) -> None:
    web.all_ready()
    names = [f"web-{o}" for o in range(REPLICAS)]
    start = {p["metadata"]["name"]: p["metadata"]["uid"]
             for p in web.client.list("v1", "pods", namespace=web.namespace)["items"]}
    recreated: list[str] = []
    worst: list[tuple[int, list[str]]] = [(0, [])]
    lock = threading.Lock()

    def check(pods: dict[str, dict[str, Any]]) -> None:
        with lock:
            for name in names:
                pod = pods.get(name)
                if pod is not None and pod["metadata"]["uid"] != start[name] and name not in recreated:
                    recreated.append(name)
            down = [n for n in names if n not in pods or pods[n]["metadata"].get("deletionTimestamp")
                    or not helpers.running_ready(pods[n])]
            if len(down) > worst[0][0]:
                worst[0] = (len(down), down)

    with PodWatcher(api_server, web.namespace, check=check) as watcher:
        patched = web.client.patch("apps/v1", "statefulsets", "web", {"spec": {"template": {"metadata": {
            "annotations": {"rollout": "2"}}}}}, namespace=web.namespace)
        sts = support.wait_for(lambda: _rolled_out(web, patched["metadata"]["generation"]), timeout=120,
                               what=f"rollout complete; logs:\n{web.cluster.logs()}")
        support.wait_for(lambda: all(helpers.running_ready(watcher.pods.get(n) or {}) for n in names), timeout=10,
                         what="the watcher saw the last pod Ready")
    assert recreated == ["web-2", "web-1", "web-0"]
    assert worst[0][0] == 1, f"two pods down at once: {worst[0][1]}"
    revision = sts["status"]["updateRevision"]
    for name in names:
        pod = helpers.get_pod(web.client, web.namespace, name)
        assert pod["metadata"]["labels"]["controller-revision-hash"] == revision
        assert pod["metadata"]["annotations"]["rollout"] == "2"
    web.check_data()


def test_data_survives_agent_and_api_server_restarts(web: Web) -> None:
    web.all_ready()
    _, box = web.pod("web-0")
    web.daemon.docker("exec", box, "sh", "-c", "echo before-restarts > /data/note")
    # the node agent: stopped by pid, started again on the same state dir; the container runs on
    ip = helpers.get_pod(web.client, web.namespace, "web-0")["status"]["podIP"]
    web.cluster.agent.stop()
    assert web.daemon.inspect(box)["State"]["Running"]
    # perturb the status: the restarted agent writing it back proves it adopted the pod
    web.client.patch("v1", "pods", "web-0", {"status": {"podIP": None}}, namespace=web.namespace,
                     subresource="status")
    web.cluster.agent.start()
    obj = helpers.wait_pod(web.client, web.namespace, "web-0", lambda o: o["status"].get("podIP") == ip,
                           timeout=30, what="web-0 synced by the restarted agent")
    assert helpers.running_ready(obj)
    assert helpers.app_containers(web.daemon, obj["metadata"]["uid"], "app")[0]["Id"] == box
    assert web.daemon.inspect(box)["RestartCount"] == 0
    # the API server: killed by pid (-9: no graceful drain of the open watches, the harder case and
    # 5 s faster), started again on the same port and etcd prefix
    assert web.cluster.server.process is not None
    web.cluster.server.process.kill()
    web.cluster.server.process.wait()
    assert web.daemon.inspect(box)["State"]["Running"]
    web.cluster.server.start()
    web.all_ready()
    assert web.daemon.docker("exec", box, "cat", "/data/note").stdout == "before-restarts\n"
    web.check_data()
    # the chain still works after both: a deleted web-0 comes back on its claim with its data
    web.client.delete("v1", "pods", "web-0", namespace=web.namespace)
    support.wait_for(lambda: helpers.get_pod(web.client, web.namespace, "web-0")["metadata"]["uid"]
                     != obj["metadata"]["uid"], timeout=60, what="web-0 recreated")
    _, box = web.pod("web-0")
    assert web.daemon.docker("exec", box, "cat", "/data/note").stdout == "before-restarts\n"
    assert web.read(box) == web.written["web-0"]


# --- two nodes ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def second_node(server_process: support.ApiServerProcess, cluster: Cluster,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker_support.NodeAgentProcess]:
    """Node B: a private dockerd of its own and an agent on it."""
    with docker_support.running_daemon() as daemon:
        agent = docker_support.NodeAgentProcess(daemon, server_process.url, name=f"node-b-{uuid.uuid4().hex[:4]}",
                                                state_dir=Path(tmp_path_factory.mktemp("agent-b")),
                                                extra_args=("--lease-interval", "2", "--resync-interval", "2"))
        try:
            agent.start()
            yield agent
        finally:
            agent.stop()
            agent.remove_containers()
            safepath.unmount_all(agent.state_dir)
            for volume in daemon.docker("volume", "ls", "-q", check=False).stdout.split():
                daemon.docker("volume", "rm", "-f", volume, check=False)


def _claim(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, **spec}}


def _claim_pod(name: str, claim: str, **spec: Any) -> dict[str, Any]:
    container = helpers.container(command=SLEEP, volumeMounts=[{"name": "data", "mountPath": "/data"}])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [container],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}], **spec}}


def test_two_nodes_volumes_follow_their_node(admin: client_api.Client, cluster: Cluster,
                                             second_node: docker_support.NodeAgentProcess,
                                             docker_node: docker_support.DockerDaemon, tmp_path: Path) -> None:
    a, b = cluster.agent, second_node
    engines = {a.name: docker_node, b.name: b.daemon}
    namespace = _new_namespace(admin)
    pv = f"local-{uuid.uuid4().hex[:6]}"
    handles: set[str] = set()
    try:
        # WaitForFirstConsumer: the volume is made on the engine of the node the scheduler chose
        admin.create("v1", "persistentvolumeclaims", _claim("wffc"), namespace=namespace)
        admin.create("v1", "pods", _claim_pod("consumer", "wffc"), namespace=namespace)
        consumer = helpers.wait_pod(admin, namespace, "consumer", helpers.running_ready, timeout=90,
                                    what=f"consumer Running; logs:\n{cluster.logs()}")
        chosen = consumer["spec"]["nodeName"]
        other = b.name if chosen == a.name else a.name
        claim = admin.get("v1", "persistentvolumeclaims", "wffc", namespace=namespace)
        assert claim["metadata"]["annotations"][volumes.SELECTED_NODE] == chosen
        handle = admin.get("v1", "persistentvolumes", claim["spec"]["volumeName"])["spec"]["csi"]["volumeHandle"]
        handles.add(handle)
        assert engines[chosen].docker("volume", "inspect", handle, check=False).returncode == 0
        assert engines[other].docker("volume", "inspect", handle, check=False).returncode != 0

        # a `local` volume on node B: its pods land on B only (A is the roomier choice otherwise: empty)
        disk = tmp_path / "disk"
        disk.mkdir()
        admin.create("v1", "persistentvolumes", {
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                     "persistentVolumeReclaimPolicy": "Retain", "local": {"path": str(disk)},
                     "nodeAffinity": volumes.node_affinity(b.name)}})
        admin.create("v1", "persistentvolumeclaims", _claim("on-b", storageClassName=""), namespace=namespace)
        users = [f"user-{i}" for i in range(3)]
        for name in users:
            admin.create("v1", "pods", _claim_pod(name, "on-b"), namespace=namespace)
        for name in users:
            placed = helpers.wait_pod(admin, namespace, name, helpers.running_ready, timeout=90,
                                      what=f"{name} Running; logs:\n{cluster.logs()}")
            assert placed["spec"]["nodeName"] == b.name
        assert admin.get("v1", "persistentvolumeclaims", "on-b", namespace=namespace)["spec"]["volumeName"] == pv

        # B cordoned: a further user stays Pending, and the message names the volume
        admin.patch("v1", "nodes", b.name, {"spec": {"unschedulable": True}})
        admin.create("v1", "pods", _claim_pod("late", "on-b"), namespace=namespace)
        pending = helpers.wait_pod(admin, namespace, "late", lambda o: helpers.condition(o, "PodScheduled") == "False",
                                   timeout=30, what="late Unschedulable")
        message = next(c["message"] for c in pending["status"]["conditions"] if c["type"] == "PodScheduled")
        assert "1 node(s) had volume node affinity conflict" in message and "unschedulable" in message, message
        assert f'"{pv}"' in message, message
        assert not pending["spec"].get("nodeName")
        admin.patch("v1", "nodes", b.name, {"spec": {"unschedulable": False}})
        late = helpers.wait_pod(admin, namespace, "late", helpers.running_ready, timeout=60, what="late Running on B")
        assert late["spec"]["nodeName"] == b.name
    finally:
        admin.patch("v1", "nodes", b.name, {"spec": {"unschedulable": False}})
        try:
            _remove_workload(admin, docker_node, namespace, handles)
        finally:
            support.wait_for(lambda: not b.daemon.container_ids(f"label=reconcile.pod.namespace={namespace}"),
                             timeout=60, what="node B's containers removed")
            for handle in handles:
                b.daemon.docker("volume", "rm", "-f", handle, check=False)
            with contextlib.suppress(errors.NotFound):
                admin.patch("v1", "persistentvolumes", pv, {"metadata": {"finalizers": None}})
                admin.delete("v1", "persistentvolumes", pv)
