"""Pod volumes on a real node agent and dockerd: persistentVolumeClaims (hostPath and Docker named volumes,
subPath / subPathExpr / readOnly, data that outlives the pod, and the refusals (a claim whose volume
lives on another node; a subPath symlink to /etc) each with an Event naming the volume); init
containers preparing a volume; emptyDir `medium: Memory` (a shared tmpfs of the pod's size) and a
disk emptyDir's `sizeLimit` (the pod is evicted past it).

Claims and volumes are written here as the binder leaves them (no controller-manager in this module).
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from reconcile.core import errors, volumes
from reconcile.node import safepath
from tests import docker_support, support
from tests.node import helpers

WRITER = ["sh", "-c", "echo \"$(POD_NAME)\" > /data/out; trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]


@pytest.fixture(scope="module")
def agent_args() -> tuple[str, ...]:
    """A 2 s resync: the volume reclaim sweep and ConfigMap rewrites ride on it (default 10 s)."""
    return ("--lease-interval", "2", "--resync-interval", "2")


@pytest.fixture(scope="module", autouse=True)
def _unmount_left_over(node_agent: docker_support.NodeAgentProcess):
    """Pods still on the node when the module ends keep their subPath mounts (a restarted agent
    adopts them); the test's state dir goes, so its mounts go first."""
    yield
    safepath.unmount_all(node_agent.state_dir)


def bind(client: Any, namespace: str, claim: str, *, source: dict[str, Any], node: str | None = None) -> str:
    """A PersistentVolume and a claim bound to each other (both sides, phases Bound)."""
    pv = f"pv-{uuid.uuid4().hex[:8]}"
    spec: dict[str, Any] = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                            "storageClassName": "", **source}
    if node:
        spec["nodeAffinity"] = volumes.node_affinity(node)
    created = client.create("v1", "persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": "", "volumeName": pv}}, namespace=namespace)
    spec["claimRef"] = {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": claim,
                        "uid": created["metadata"]["uid"]}
    client.create("v1", "persistentvolumes", {"apiVersion": "v1", "kind": "PersistentVolume",
                                              "metadata": {"name": pv}, "spec": spec})
    client.patch("v1", "persistentvolumes", pv, {"status": {"phase": "Bound"}}, subresource="status")
    client.patch("v1", "persistentvolumeclaims", claim, {"status": {"phase": "Bound"}}, namespace=namespace,
                 subresource="status")
    return pv


def claim_pod(name: str, node: str, claim: str, mount: dict[str, Any], *, read_only: bool = False) -> dict:
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    container = helpers.container(command=WRITER, env=env, volumeMounts=[{"name": "data", "mountPath": "/data",
                                                                          **mount}])
    source: dict[str, Any] = {"claimName": claim}
    if read_only:
        source["readOnly"] = True
    return helpers.pod(name, node, container, volumes=[{"name": "data", "persistentVolumeClaim": source}])


def warnings(client: Any, namespace: str, pod: str) -> list[str]:
    return [e["message"] for e in client.list("v1", "events", namespace=namespace)["items"]
            if e["involvedObject"]["name"] == pod and e.get("type") == "Warning"]


def test_host_path_claim_with_sub_path_expr(client, namespace, node_agent, tmp_path: Path) -> None:
    data = tmp_path / "disk"
    data.mkdir()
    bind(client, namespace, "disk", source={"hostPath": {"path": str(data)}}, node=node_agent.name)
    client.create("v1", "pods", claim_pod("writer", node_agent.name, "disk", {"subPathExpr": "pods/$(POD_NAME)"}),
                  namespace=namespace)
    helpers.wait_pod(client, namespace, "writer", helpers.running_ready, what="writer Running")
    written = data / "pods" / "writer" / "out"
    support.wait_for(written.exists, timeout=10, what="file written through the subPath")
    assert written.read_text() == "writer\n"


def test_docker_volume_outlives_its_pod_and_read_only(client, namespace, node_agent, docker_node) -> None:
    handle = f"pvc-{uuid.uuid4().hex[:8]}"
    bind(client, namespace, "named", source={"csi": {"driver": volumes.DOCKER_VOLUME_DRIVER, "volumeHandle": handle}},
         node=node_agent.name)
    try:
        client.create("v1", "pods", claim_pod("first", node_agent.name, "named", {}), namespace=namespace)
        obj = helpers.wait_pod(client, namespace, "first", helpers.running_ready, what="first Running")
        assert docker_node.docker("volume", "inspect", handle).returncode == 0
        app = helpers.app_containers(docker_node, obj["metadata"]["uid"], "app")[0]
        support.wait_for(lambda: docker_node.docker("exec", app["Id"], "cat", "/data/out", check=False).stdout
                         == "first\n", timeout=10, what="first wrote its file")
        client.delete("v1", "pods", "first", namespace=namespace, grace_period_seconds=0)
        support.wait_for(lambda: not helpers.app_containers(docker_node, obj["metadata"]["uid"], "app"),
                         timeout=30, what="first gone")
        reader = claim_pod("second", node_agent.name, "named", {}, read_only=True)
        reader["spec"]["containers"][0]["command"] = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]
        client.create("v1", "pods", reader, namespace=namespace)
        obj = helpers.wait_pod(client, namespace, "second", helpers.running_ready, what="second Running")
        app = helpers.app_containers(docker_node, obj["metadata"]["uid"], "app")[0]
        assert docker_node.docker("exec", app["Id"], "cat", "/data/out").stdout == "first\n"  # the data stayed
        assert [m["RW"] for m in app["Mounts"] if m["Destination"] == "/data"] == [False]
        assert docker_node.docker("exec", app["Id"], "sh", "-c", "echo x > /data/out", check=False).returncode != 0
        client.delete("v1", "pods", "second", namespace=namespace, grace_period_seconds=0)
        support.wait_for(lambda: not helpers.app_containers(docker_node, obj["metadata"]["uid"], "app"),
                         timeout=30, what="second gone")
    finally:
        support.wait_for(lambda: docker_node.docker("volume", "rm", handle, check=False).returncode == 0
                         or "no such volume" in docker_node.docker("volume", "rm", handle, check=False).stderr.lower(),
                         timeout=30, what="test volume removed")


def test_refusals_name_the_volume(client, namespace, node_agent, tmp_path: Path) -> None:
    data = tmp_path / "evil"
    data.mkdir()
    (data / "escape").symlink_to("/etc")
    bind(client, namespace, "trap", source={"hostPath": {"path": str(data)}}, node=node_agent.name)
    client.create("v1", "pods", claim_pod("attacker", node_agent.name, "trap", {"subPath": "escape"}),
                  namespace=namespace)
    bind(client, namespace, "far", source={"hostPath": {"path": str(tmp_path)}}, node="some-other-node")
    client.create("v1", "pods", claim_pod("misplaced", node_agent.name, "far", {}), namespace=namespace)
    support.wait_for(lambda: any('volumeMount "data"' in m and "unexpected symlink" in m
                                 for m in warnings(client, namespace, "attacker")),
                     timeout=30, what="subPath symlink refused with an Event")
    support.wait_for(lambda: any("volume data" in m and "lives on node some-other-node" in m
                                 for m in warnings(client, namespace, "misplaced")),
                     timeout=30, what="claim on another node refused with an Event")
    for name in ("attacker", "misplaced"):
        pod = helpers.get_pod(client, namespace, name)
        assert pod["status"].get("phase") != "Running"
        assert helpers.container_status(pod, "app")["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    assert not (Path("/etc") / "out").exists()  # nothing was written through the link


def test_init_containers_prepare_the_volume_in_order(client, namespace, node_agent, docker_node) -> None:
    def init(name: str) -> dict[str, Any]:
        return helpers.container(name, command=["sh", "-c", f"echo {name} >> /work/order"],
                                 volumeMounts=[{"name": "work", "mountPath": "/work"}])
    app = helpers.container(command=["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"],
                            volumeMounts=[{"name": "work", "mountPath": "/work"}])
    body = helpers.pod("prepared", node_agent.name, app, initContainers=[init("first"), init("second")],
                       volumes=[{"name": "work", "emptyDir": {}}])
    client.create("v1", "pods", body, namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "prepared", helpers.running_ready, timeout=60, what="prepared Running")
    inits = obj["status"]["initContainerStatuses"]
    assert [(s["name"], s["state"]["terminated"]["reason"]) for s in inits] == [("first", "Completed"),
                                                                               ("second", "Completed")]
    assert helpers.condition(obj, "Initialized") == "True"
    running = helpers.app_containers(docker_node, obj["metadata"]["uid"], "app")[0]
    assert docker_node.docker("exec", running["Id"], "cat", "/work/order").stdout == "first\nsecond\n"
    # a failing init container under restartPolicy Never fails the pod; the app never starts
    bad = helpers.pod("broken", node_agent.name, helpers.container(), restartPolicy="Never",
                      initContainers=[helpers.container("fails", command=["sh", "-c", "exit 3"])])
    client.create("v1", "pods", bad, namespace=namespace)
    failed = helpers.wait_pod(client, namespace, "broken", lambda o: o["status"].get("phase") == "Failed",
                              timeout=60, what="broken Failed")
    assert helpers.condition(failed, "Initialized") == "False"
    assert failed["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert helpers.container_status(failed, "app")["state"]["waiting"]["reason"] == "PodInitializing"
    assert not helpers.app_containers(docker_node, failed["metadata"]["uid"], "app", running=False)


SLEEPER = "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"


def test_memory_empty_dir_is_a_shared_tmpfs_of_its_size_limit(client, namespace, node_agent, docker_node) -> None:
    mount = [{"name": "cache", "mountPath": "/cache"}]
    writer = helpers.container("writer", command=["sh", "-c", f"echo shared > /cache/note; {SLEEPER}"],
                               volumeMounts=mount)
    reader = helpers.container("reader", command=["sh", "-c", SLEEPER], volumeMounts=mount)
    body = helpers.pod("ram", node_agent.name, writer, reader,
                       volumes=[{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}])
    client.create("v1", "pods", body, namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "ram", helpers.running_ready, timeout=60, what="ram Running")
    uid = obj["metadata"]["uid"]
    host_dir = node_agent.state_dir / "pods" / uid / "volumes" / "empty-dir" / "cache"
    assert host_dir.is_mount()
    reader_id = helpers.app_containers(docker_node, uid, "reader")[0]["Id"]
    assert docker_node.docker("exec", reader_id, "cat", "/cache/note").stdout == "shared\n"
    df = docker_node.docker("exec", reader_id, "df", "-k", "/cache").stdout.splitlines()[-1].split()
    assert df[0] == "tmpfs" and int(df[1]) == 1024  # 1Mi, in 1K blocks
    # the kernel holds the limit: 2 MiB do not fit
    too_big = docker_node.docker("exec", reader_id, "dd", "if=/dev/zero", "of=/cache/big", "bs=1024", "count=2048",
                                 check=False)
    assert too_big.returncode != 0 and "No space left" in too_big.stderr
    client.delete("v1", "pods", "ram", namespace=namespace, grace_period_seconds=0)
    support.wait_for(lambda: not host_dir.exists(), timeout=30, what="tmpfs unmounted and removed with the pod")
    assert not safepath.mounts_under(node_agent.state_dir / "pods" / uid)


def test_disk_empty_dir_over_its_size_limit_evicts_the_pod(client, namespace, node_agent, docker_node) -> None:
    fill = "dd if=/dev/zero of=/scratch/fill bs=1024 count=2048; " + SLEEPER
    body = helpers.pod("greedy", node_agent.name,
                       helpers.container(command=["sh", "-c", fill],
                                         volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}]),
                       volumes=[{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}])
    client.create("v1", "pods", body, namespace=namespace)
    failed = helpers.wait_pod(client, namespace, "greedy", lambda o: o["status"].get("phase") == "Failed",
                              timeout=60, what="greedy evicted")
    message = 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '
    assert (failed["status"]["reason"], failed["status"]["message"]) == ("Evicted", message)
    assert message in warnings(client, namespace, "greedy")
    support.wait_for(lambda: not helpers.app_containers(docker_node, failed["metadata"]["uid"], "app"),
                     timeout=30, what="the evicted pod's container stopped")
    # within its limit, a pod with a sizeLimit keeps running
    body = helpers.pod("modest", node_agent.name,
                       helpers.container(command=["sh", "-c", "echo small > /scratch/f; " + SLEEPER],
                                         volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}]),
                       volumes=[{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}])
    client.create("v1", "pods", body, namespace=namespace)
    helpers.wait_pod(client, namespace, "modest", helpers.running_ready, timeout=60, what="modest Running")
    assert helpers.get_pod(client, namespace, "modest")["status"]["phase"] == "Running"


@pytest.mark.parametrize("policy", ["Delete", "Retain"])
def test_a_deleted_docker_volume_pv_is_reclaimed_by_its_node(client, namespace, node_agent, docker_node,
                                                             policy: str) -> None:
    """The agent marks the PV when it makes the Docker volume; once the PV is deleted (the binder
    does it under reclaim Delete) the agent removes the volume under Delete, keeps it under Retain,
    and takes its finalizer off either way (through the Node authorizer and NodeRestriction)."""
    handle = f"reclaim-{uuid.uuid4().hex[:8]}"
    pv = bind(client, namespace, "reclaimed", node=node_agent.name,
              source={"csi": {"driver": volumes.DOCKER_VOLUME_DRIVER, "volumeHandle": handle},
                      "persistentVolumeReclaimPolicy": policy})
    try:
        client.create("v1", "pods", claim_pod("user", node_agent.name, "reclaimed", {}), namespace=namespace)
        obj = helpers.wait_pod(client, namespace, "user", helpers.running_ready, what="user Running")
        assert volumes.DOCKER_VOLUME_FINALIZER in client.get("v1", "persistentvolumes", pv)["metadata"]["finalizers"]
        client.delete("v1", "pods", "user", namespace=namespace, grace_period_seconds=0)
        support.wait_for(lambda: not helpers.app_containers(docker_node, obj["metadata"]["uid"], "app", running=False),
                         timeout=30, what="user's containers gone")
        client.delete("v1", "persistentvolumes", pv)
        # pv-protection stays: no controller-manager runs in this module to take it off
        support.wait_for(lambda: client.get("v1", "persistentvolumes", pv)["metadata"]["finalizers"]
                         == ["kubernetes.io/pv-protection"], timeout=40,
                         what=f"the agent's finalizer removed; agent log:\n{node_agent.log_text()[-2000:]}")
        exists = docker_node.docker("volume", "inspect", handle, check=False).returncode == 0
        assert exists is (policy == "Retain")
    finally:
        docker_node.docker("volume", "rm", handle, check=False)
        with contextlib.suppress(errors.NotFound):
            client.patch("v1", "persistentvolumes", pv, {"metadata": {"finalizers": None}})


def test_a_pv_held_without_its_docker_volume_is_released_when_deleted(client, namespace, node_agent,
                                                                      docker_node) -> None:
    """The finalizer goes on before the Docker volume is made, so an agent stopped in between leaves
    a held PV without a volume; here the engine refuses the volume's name instead, which leaves the
    same state. The agent's note names the PV, and once the PV is deleted the sweep releases it
    (nothing to remove) and drops the note."""
    pv = bind(client, namespace, "unmade", node=node_agent.name,
              source={"csi": {"driver": volumes.DOCKER_VOLUME_DRIVER, "volumeHandle": "no/such:name"},
                      "persistentVolumeReclaimPolicy": "Delete"})
    note = node_agent.state_dir / "held-volumes" / pv
    try:
        client.create("v1", "pods", claim_pod("user", node_agent.name, "unmade", {}), namespace=namespace)
        support.wait_for(lambda: volumes.DOCKER_VOLUME_FINALIZER in
                         (client.get("v1", "persistentvolumes", pv)["metadata"].get("finalizers") or []),
                         timeout=30, what="the PV held by the agent")
        assert note.is_file()
        assert client.get("v1", "pods", "user", namespace=namespace)["status"].get("phase") != "Running"
        client.delete("v1", "pods", "user", namespace=namespace, grace_period_seconds=0)
        client.delete("v1", "persistentvolumes", pv)
        support.wait_for(lambda: client.get("v1", "persistentvolumes", pv)["metadata"]["finalizers"]
                         == ["kubernetes.io/pv-protection"], timeout=40,
                         what=f"the agent's finalizer removed; agent log:\n{node_agent.log_text()[-2000:]}")
        support.wait_for(lambda: not note.exists(), timeout=10, what="the note dropped")
    finally:
        with contextlib.suppress(errors.NotFound):
            client.patch("v1", "persistentvolumes", pv, {"metadata": {"finalizers": None}})


def test_config_map_volume_updates_in_place_and_a_sub_path_keeps_its_version(client, namespace, node_agent,
                                                                            docker_node) -> None:
    client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
                                       "data": {"mode": "one", "gone-later": "x"}}, namespace=namespace)
    app = helpers.container(command=["sh", "-c", SLEEPER], volumeMounts=[
        {"name": "settings", "mountPath": "/config"},
        {"name": "settings", "mountPath": "/pinned/mode", "subPath": "mode"}])
    client.create("v1", "pods", helpers.pod("configured", node_agent.name, app,
                                            volumes=[{"name": "settings", "configMap": {"name": "settings"}}]),
                  namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "configured", helpers.running_ready, timeout=60, what="configured")
    container = helpers.app_containers(docker_node, obj["metadata"]["uid"], "app")[0]["Id"]

    def read(path: str) -> str:
        return docker_node.docker("exec", container, "cat", path, check=False).stdout

    assert (read("/config/mode"), read("/pinned/mode")) == ("one", "one")
    client.replace("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "settings", "resourceVersion": client.get("v1", "configmaps", "settings", namespace=namespace)[
            "metadata"]["resourceVersion"]}, "data": {"mode": "two", "added": "y"}}, namespace=namespace)
    support.wait_for(lambda: read("/config/mode") == "two", timeout=40,
                     what=f"the new value in the running container; agent log:\n{node_agent.log_text()[-2000:]}")
    listing = docker_node.docker("exec", container, "ls", "-A", "/config").stdout.split()
    assert "added" in listing and "gone-later" not in listing and "..data" in listing
    assert read("/config/added") == "y"
    assert read("/pinned/mode") == "one"  # a subPath mount keeps the version it was mounted with (upstream's)
