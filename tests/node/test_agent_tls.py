"""The node agent's port over TLS, as `reconcile up` wires it: a serving certificate from the cluster
CA, only clients of that CA, each request authorized by SubjectAccessReview (nodes/proxy), and the
API server proxying logs and exec with its kubelet-client certificate.

Attacks: plain HTTP, no certificate, a certificate of another CA, a cluster user RBAC does not allow,
an expired certificate of the cluster CA: each refused by the agent itself."""

from __future__ import annotations

import datetime
import json
import ssl
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconcile.client import api as client_api
from reconcile.core import execstream
from reconcile.pki import certs
from reconcile.pki import cluster as pki_cluster
from tests import docker_support, support
from tests.node import helpers

NODE = f"tls-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def secured(etcd_endpoint: str) -> Iterator[support.ApiServerProcess]:
    pki = pki_cluster.ClusterPki(Path(tempfile.mkdtemp(prefix="agent-tls-pki-")) / "pki")
    pki.ensure(nodes=[NODE])
    server = support.ApiServerProcess(
        etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry", tls=True, pki=pki,
        extra_args=("--authorization-mode", "Node,RBAC", "--kubelet-client-certificate", str(pki.apiserver_kubelet_client.cert),
                    "--kubelet-client-key", str(pki.apiserver_kubelet_client.key),
                    "--kubelet-certificate-authority", str(pki.ca.cert)))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def agent(docker_node: docker_support.DockerDaemon, secured: support.ApiServerProcess,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker_support.NodeAgentProcess]:
    pki = secured.pki
    assert pki is not None
    state = Path(tmp_path_factory.mktemp("agent-tls"))
    kubeconfig = secured.connection.write_kubeconfig(state / "node.kubeconfig", as_user=pki.node(NODE))
    process = docker_support.NodeAgentProcess(
        docker_node, secured.url, name=NODE, state_dir=state / "node", connect=("--kubeconfig", str(kubeconfig)),
        extra_args=("--tls-cert-file", str(pki.node_serving(NODE).cert), "--tls-private-key-file",
                    str(pki.node_serving(NODE).key), "--client-ca-file", str(pki.ca.cert), "--lease-interval", "2"))
    process.start()
    try:
        yield process
    finally:
        process.stop()
        process.remove_containers()


@pytest.fixture(scope="module")
def admin(secured: support.ApiServerProcess) -> Iterator[client_api.Client]:
    client = client_api.Client(secured.connection.client_config())
    yield client
    client.close()


@pytest.fixture(scope="module")
def agent_url(admin: client_api.Client, agent: docker_support.NodeAgentProcess) -> str:
    node = admin.get("v1", "nodes", NODE)
    return f"https://127.0.0.1:{node['status']['daemonEndpoints']['kubeletEndpoint']['Port']}"


@pytest.fixture(scope="module")
def pod(admin: client_api.Client, agent: docker_support.NodeAgentProcess) -> str:
    ns = f"tls-{uuid.uuid4().hex[:6]}"
    admin.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    admin.create("v1", "pods", helpers.pod("web", NODE, helpers.container(
        command=["sh", "-c", "echo hello-tls; while :; do sleep 3600 & wait; done"])), namespace=ns)
    helpers.wait_pod(admin, ns, "web", helpers.running_ready, what="web Ready", timeout=60)
    return ns


def _context(pki: pki_cluster.ClusterPki, pair: pki_cluster.Pair | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    if pair is not None:
        context.load_cert_chain(str(pair.cert), str(pair.key))
    return context


def _exec_path(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/pods/web/exec"


def test_logs_and_exec_through_the_api_server(admin: client_api.Client, pod: str) -> None:
    logs = support.wait_for(lambda: admin.request("GET", f"/api/v1/namespaces/{pod}/pods/web/log").text or None,
                            what="the pod's log")
    assert logs == "hello-tls\n"
    answer = admin.request("POST", _exec_path(pod), json={"command": ["sh", "-c", "echo out; exit 4"]}).json()
    assert answer == {"exitCode": 4, "output": "out\n"}


def test_the_agent_serves_a_certificate_of_the_cluster_ca(secured: support.ApiServerProcess, agent_url: str) -> None:
    assert secured.pki is not None
    # verified with the cluster CA and the node's address: what --kubelet-certificate-authority checks
    answer = httpx.get(agent_url + "/healthz", verify=_context(secured.pki, secured.pki.apiserver_kubelet_client),
                       timeout=10)
    assert answer.status_code == 200 and answer.text == "ok"


def test_plain_http_is_refused(agent_url: str) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(agent_url.replace("https:", "http:") + "/healthz", timeout=5)


def test_no_client_certificate_is_refused(secured: support.ApiServerProcess, agent_url: str) -> None:
    assert secured.pki is not None
    with pytest.raises(httpx.HTTPError):
        httpx.post(agent_url + "/exec/x/y/z", json={"command": ["id"]}, verify=_context(secured.pki, None), timeout=5)
    curl = subprocess.run(["curl", "-sS", "-k", "--max-time", "5", agent_url + "/healthz"], capture_output=True,
                          text=True)
    assert curl.returncode != 0 and "ok" not in curl.stdout


def test_a_certificate_of_another_ca_is_refused(secured: support.ApiServerProcess, agent_url: str,
                                                tmp_path: Path) -> None:
    assert secured.pki is not None
    other = pki_cluster.ClusterPki(tmp_path / "other")
    other.ensure()
    # the same identity as the API server's kubelet client, signed by a CA the agent does not trust
    forged = certs.issue(other.ca.read(), common_name="kube-apiserver-kubelet-client",
                         organizations=("system:masters",), client=True)
    pair = other.pair("forged")
    pair.cert.write_bytes(forged.cert)
    pair.key.write_bytes(forged.key)
    with pytest.raises(httpx.HTTPError):
        httpx.post(agent_url + "/exec/x/y/z", json={"command": ["id"]}, verify=_context(secured.pki, pair), timeout=5)


def test_an_expired_certificate_of_the_cluster_ca_is_refused(secured: support.ApiServerProcess, agent_url: str,
                                                             tmp_path: Path) -> None:
    assert secured.pki is not None
    old = certs.issue(secured.pki.ca.read(), common_name="kube-apiserver-kubelet-client",
                      organizations=("system:masters",), client=True, days=1,
                      start=certs.now() - datetime.timedelta(days=3))
    pair = pki_cluster.Pair(tmp_path / "old.crt", tmp_path / "old.key")
    pair.cert.write_bytes(old.cert)
    pair.key.write_bytes(old.key)
    with pytest.raises(httpx.HTTPError):
        httpx.get(agent_url + "/healthz", verify=_context(secured.pki, pair), timeout=5)


def test_a_cluster_user_without_nodes_proxy_is_forbidden(secured: support.ApiServerProcess, agent_url: str,
                                                         pod: str) -> None:
    """Authenticated by the CA, but RBAC grants no nodes/proxy: the agent's SubjectAccessReview says no."""
    mallory = secured.connection.user("mallory", "developers")
    answer = httpx.post(f"{agent_url}/exec/{pod}/web/app", json={"command": ["cat", "/etc/shadow"]},
                        verify=_context(secured.pki, mallory), timeout=10)
    assert answer.status_code == 403, answer.text
    status = answer.json()
    assert status["kind"] == "Status" and status["reason"] == "Forbidden"
    assert "user=mallory" in status["message"] and "subresource=proxy" in status["message"]
    # another node's identity is no better
    other_node = secured.connection.user("system:node:other", "system:nodes")
    answer = httpx.get(f"{agent_url}/containerLogs/{pod}/web/app", verify=_context(secured.pki, other_node), timeout=10)
    assert answer.status_code == 403


def test_a_user_granted_nodes_proxy_may_exec(secured: support.ApiServerProcess, admin: client_api.Client,
                                             agent_url: str, pod: str) -> None:
    """The decision is RBAC's: bind nodes/proxy and the same kind of caller gets in."""
    name = f"proxy-{uuid.uuid4().hex[:6]}"
    admin.create("rbac.authorization.k8s.io/v1", "clusterroles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
        "rules": [{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["create", "get"]}]})
    admin.create("rbac.authorization.k8s.io/v1", "clusterrolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}]})
    operator = secured.connection.user(name)

    def ran() -> httpx.Response | None:
        answer = httpx.post(f"{agent_url}/exec/{pod}/web/app", json={"command": ["echo", "granted"]},
                            verify=_context(secured.pki, operator), timeout=10)
        return answer if answer.status_code == 200 and b"granted" in answer.content else None

    answer = support.wait_for(ran, timeout=20, what="exec allowed once nodes/proxy is bound")
    frames = execstream.Decoder().feed(answer.content)
    assert frames[0] == (execstream.STDOUT, b"granted\n")
    assert frames[-1][0] == execstream.STATUS and execstream.exit_code(json.loads(frames[-1][1])) == 0
