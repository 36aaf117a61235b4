"""A real node agent under `--authorization-mode Node,RBAC` with NodeRestriction, as upstream's kubelet
runs: it connects with its own client certificate (`system:node:<name>`, `system:nodes`, from the
test PKI) to a TLS API server, registers, keeps its Lease, watches its pods, reads the Secret and
ConfigMap a pod uses and reports the pod Running; the same identity is refused another node's
Secret. (Nothing binds `system:node` any more: everything the agent did, the Node authorizer allowed.)"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconcile.client import api as client_api
from reconcile.core import errors
from tests import docker_support, support
from tests.node import helpers


@pytest.fixture(scope="module")
def server_process(etcd_endpoint: str) -> Iterator[support.ApiServerProcess]:
    server = support.ApiServerProcess(etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry", tls=True,
                                      extra_args=("--authorization-mode", "Node,RBAC"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(server_process: support.ApiServerProcess) -> Iterator[client_api.Client]:
    c = client_api.Client(server_process.connection.client_config())
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def node_agent(docker_node: docker_support.DockerDaemon, server_process: support.ApiServerProcess,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker_support.NodeAgentProcess]:
    name = f"node-{uuid.uuid4().hex[:6]}"
    state_dir = Path(tmp_path_factory.mktemp("agent"))
    agent = docker_support.NodeAgentProcess(docker_node, server_process.url, name=name, state_dir=state_dir,
                                            extra_args=("--lease-interval", "2"))
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()
        agent.remove_containers()


def test_a_node_agent_runs_a_pod_with_a_secret_and_a_configmap_under_node_authorization(
        client: client_api.Client, namespace: str, node_agent: docker_support.NodeAgentProcess,
        docker_node: docker_support.DockerDaemon, server_process: support.ApiServerProcess) -> None:
    name = node_agent.name
    node = client.get("v1", "nodes", name)
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == name
    lease = client.get("coordination.k8s.io/v1", "leases", name, namespace="kube-node-lease")
    assert lease["spec"]["holderIdentity"] == name

    client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                                       "data": {"greeting": "hi"}}, namespace=namespace)
    client.create("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
                                    "data": {"password": base64.b64encode(b"s3cret").decode()}}, namespace=namespace)
    client.create("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "elsewhere"},
                                    "data": {"password": base64.b64encode(b"no").decode()}}, namespace=namespace)
    env = [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}}]
    spec = helpers.pod("app", name, helpers.container(env=env, volumeMounts=[{"name": "s", "mountPath": "/etc/s"}]),
                       volumes=[{"name": "s", "secret": {"secretName": "sec"}}])
    client.create("v1", "pods", spec, namespace=namespace)
    other = helpers.pod("away", "some-other-node", helpers.container(),
                        volumes=[{"name": "s", "secret": {"secretName": "elsewhere"}}])
    client.create("v1", "pods", other, namespace=namespace)

    obj = helpers.wait_pod(client, namespace, "app", helpers.running_ready, timeout=60, what="app Running under Node,RBAC")
    found = helpers.app_containers(docker_node, obj["metadata"]["uid"], "app")[0]
    assert "GREETING=hi" in found["Config"]["Env"]
    assert docker_node.docker("exec", found["Id"], "cat", "/etc/s/password").stdout == "s3cret"

    conn = server_process.connection
    with conn.http_client(as_user=conn.user(f"system:node:{name}", "system:nodes")) as as_node:
        assert as_node.get(f"/api/v1/namespaces/{namespace}/secrets/sec").status_code == 200
        assert as_node.get(f"/api/v1/namespaces/{namespace}").status_code == 200  # the node guard reads its labels
        refused = as_node.get(f"/api/v1/namespaces/{namespace}/secrets/elsewhere")
        assert refused.status_code == 403
        assert refused.json()["message"].endswith(f"no relationship found between node '{name}' and this object")
        status = as_node.patch(f"/api/v1/namespaces/{namespace}/pods/away/status",
                               json={"status": {"phase": "Failed"}},
                               headers={"Content-Type": "application/merge-patch+json"})
        assert status.status_code == 403, status.text
    assert "forbidden" not in node_agent.log_text().lower(), node_agent.log_text()[-3000:]


def test_deleting_a_pod_is_finished_by_its_node(client: client_api.Client, namespace: str,
                                                node_agent: docker_support.NodeAgentProcess) -> None:
    """The agent deletes the pod object itself once its containers are gone: NodeRestriction allows
    a node to delete pods bound to it."""
    client.create("v1", "pods", helpers.pod("brief", node_agent.name, helpers.container()), namespace=namespace)
    helpers.wait_pod(client, namespace, "brief", helpers.running_ready, timeout=60, what="brief Running")
    client.delete("v1", "pods", "brief", namespace=namespace)

    def gone() -> bool:
        try:
            client.get("v1", "pods", "brief", namespace=namespace)
        except errors.NotFound:
            return True
        return False

    support.wait_for(gone, timeout=30, what="the node to finish the deletion")
    left = [p["metadata"]["name"] for p in client.list("v1", "pods", namespace=namespace)["items"]]
    assert "brief" not in left
