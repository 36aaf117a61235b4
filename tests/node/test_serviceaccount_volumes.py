"""In-cluster credentials on a real node agent and dockerd: the ServiceAccount admission plugin's
`kube-api-access-*` projected volume is rendered (a pod-bound token from the TokenRequest API, the
cluster CA, the namespace) atomically into the pod's volume directory, mounted read-only at
/var/run/secrets/kubernetes.io/serviceaccount, and the token authenticates; containers get
KUBERNETES_SERVICE_HOST/PORT (the `kubernetes` Service). The API server is HTTPS with the cluster PKI's sa.key, the agent
connects with its own node certificate."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconcile.client import api as client_api
from reconcile.pki import cluster as pki_cluster
from tests import docker_support, support
from tests.node import helpers

MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture(scope="module")
def server_process(etcd_endpoint: str) -> Iterator[support.ApiServerProcess]:
    pki = pki_cluster.ClusterPki(Path(tempfile.mkdtemp(prefix="sa-node-pki-")) / "pki")
    pki.ensure()
    server = support.ApiServerProcess(
        etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry", tls=True, pki=pki,
        extra_args=("--service-account-key-file", str(pki.sa_pub),
                    "--service-account-signing-key-file", str(pki.sa_key)))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def node_agent(docker_node: docker_support.DockerDaemon, server_process: support.ApiServerProcess,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker_support.NodeAgentProcess]:
    name = f"node-{uuid.uuid4().hex[:6]}"
    state = Path(tmp_path_factory.mktemp("agent"))
    agent = docker_support.NodeAgentProcess(docker_node, server_process.url, name=name, state_dir=state,
                                            extra_args=("--lease-interval", "2"))
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()
        agent.remove_containers()


@pytest.fixture
def client(server_process: support.ApiServerProcess) -> Iterator[client_api.Client]:
    c = client_api.Client(server_process.connection.client_config())
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def namespace(client: client_api.Client, server_process: support.ApiServerProcess) -> str:
    """A namespace as the controller-manager leaves it: its `default` account and `kube-root-ca.crt`."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    client.create("v1", "serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                            "metadata": {"name": "default"}}, namespace=name)
    assert server_process.pki is not None
    client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt"},
                                       "data": {"ca.crt": server_process.pki.ca.cert.read_text()}}, namespace=name)
    return name


def test_projected_token_ca_and_namespace_in_the_container(client: client_api.Client, namespace: str,
                                                          node_agent: docker_support.NodeAgentProcess,
                                                          docker_node: docker_support.DockerDaemon,
                                                          server_process: support.ApiServerProcess) -> None:
    client.create("v1", "pods", helpers.pod("incluster", node_agent.name, helpers.container()), namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "incluster", helpers.running_ready, what="incluster Ready", timeout=60)
    volume = next(v["name"] for v in obj["spec"]["volumes"] if v["name"].startswith("kube-api-access-"))
    found = helpers.app_containers(docker_node, obj["metadata"]["uid"], "app")[0]

    def cat(name: str) -> str:
        done = docker_node.docker("exec", found["Id"], "cat", f"{MOUNT}/{name}")
        assert done.returncode == 0, done.stderr
        return done.stdout

    token = cat("token")
    assert cat("namespace") == namespace
    assert server_process.pki is not None and cat("ca.crt") == server_process.pki.ca.cert.read_text()
    listing = docker_node.docker("exec", found["Id"], "ls", "-a", MOUNT).stdout.split()
    assert {"..data", "token", "ca.crt", "namespace"} <= set(listing)
    assert docker_node.docker("exec", found["Id"], "touch", f"{MOUNT}/x", check=False).returncode != 0  # read-only
    env = dict(e.split("=", 1) for e in found["Config"]["Env"])
    # the `kubernetes` Service (the first address of the default range), as upstream's kubelet gives them
    service = client.get("v1", "services", "kubernetes", namespace="default")
    assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == (service["spec"]["clusterIP"], "443")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    mount = next(m for m in found["Mounts"] if m["Destination"] == MOUNT)
    assert mount["RW"] is False and mount["Source"].endswith(f"/volumes/projected/{volume}")

    # the token is the pod's: it authenticates as the ServiceAccount, bound to this pod
    with server_process.connection.http_client(anonymous=True) as anonymous:
        whoami = anonymous.post("/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                headers={"Authorization": f"Bearer {token}"},
                                json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert whoami.status_code == 201, whoami.text
    info = whoami.json()["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{namespace}:default"
    assert info["extra"]["authentication.kubernetes.io/pod-uid"] == [obj["metadata"]["uid"]]

    # deleted, the pod's token no longer authenticates
    client.delete("v1", "pods", "incluster", namespace=namespace, grace_period_seconds=0)

    def refused() -> bool:
        with server_process.connection.http_client(anonymous=True) as anonymous:
            return anonymous.get(f"/api/v1/namespaces/{namespace}/pods",
                                 headers={"Authorization": f"Bearer {token}"}).status_code == 401

    support.wait_for(refused, timeout=60, what="the deleted pod's token refused")


def test_no_token_without_automount_and_the_container_waits_for_the_ca(
        client: client_api.Client, namespace: str, node_agent: docker_support.NodeAgentProcess,
        docker_node: docker_support.DockerDaemon) -> None:
    quiet = helpers.pod("quiet", node_agent.name, helpers.container(), automountServiceAccountToken=False)
    client.create("v1", "pods", quiet, namespace=namespace)
    obj = helpers.wait_pod(client, namespace, "quiet", helpers.running_ready, what="quiet Ready", timeout=60)
    found = helpers.app_containers(docker_node, obj["metadata"]["uid"], "app")[0]
    assert all(m["Destination"] != MOUNT for m in found["Mounts"])
    client.delete("v1", "configmaps", "kube-root-ca.crt", namespace=namespace)
    client.create("v1", "pods", helpers.pod("waits", node_agent.name, helpers.container()), namespace=namespace)

    def config_error() -> bool:
        statuses = (helpers.get_pod(client, namespace, "waits").get("status") or {}).get("containerStatuses") or []
        waiting = [((s.get("state") or {}).get("waiting") or {}) for s in statuses]
        return any(w.get("reason") == "CreateContainerConfigError" and "kube-root-ca.crt" in w.get("message", "")
                   for w in waiting)

    support.wait_for(config_error, timeout=60, what="waits in CreateContainerConfigError")
