"""An operator written with our SDK runs *inside a pod* on a real node and reconciles with the
in-cluster configuration alone: `reconcile operator run` in a container finds the API server through
KUBERNETES_SERVICE_HOST/PORT (the `kubernetes` Service's cluster IP, translated by the node's service
proxy to the API server), trusts it with the projected CA and authenticates with the projected
ServiceAccount token; RBAC lets it do what its Role grants and nothing else.

The cluster: the module's HTTPS API server (its own PKI, whose serving certificate names the
`kubernetes` Service's cluster IP; RBAC; ServiceAccount tokens), the session's private dockerd with
one node agent, and `reconcile proxy` for that node. The image holds this host's Python and the
packages the operator imports (tests/python_image.py); the plugin comes in a ConfigMap volume.
Traffic goes only from the pod made here to the cluster IP, which the proxy translates to the
API server on 127.0.0.1; the proxy's rules and the node's containers are removed at teardown.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconcile.client import api as client_api
from tests import docker_support, prerequisites, python_image, support
from tests.node import helpers, incluster

SERVICE_CIDR = "10.227.0.0/16"  # the proxy guards it; away from other suites' ranges, bridges and pod CIDRs
KUBERNETES_IP = incluster.kubernetes_ip(SERVICE_CIDR)  # the `kubernetes` Service
GROUP, VERSION, PLURAL = "ops.example.com", "v1", "widgets"
ACCOUNT = "widget-operator"
# What `reconcile operator run` imports (its byte code and packages go into the image)
OPERATOR_MODULES = ("reconcile.cli.main", "reconcile.cli.operator_cmd", "reconcile.client.aio",
                    "reconcile.engine.manager", "reconcile.engine.sdk.operator", "reconcile.engine.sdk.loading",
                    "reconcile")

# The operator: each Widget gets a ConfigMap with its spec's message; its status says who the
# operator is and that listing Secrets, which its Role does not grant, was refused.
PLUGIN = f'''
import reconcile as rc

@rc.on.create("{GROUP}", "{VERSION}", "{PLURAL}")
async def made(body, name, namespace, client, **_):
    await client.create("v1", "configmaps", {{"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {{"name": name + "-out"}}, "data": {{"message": body["spec"]["message"]}}}}, namespace=namespace)
    try:
        await client.list("v1", "secrets", namespace=namespace)
        secrets = "allowed"
    except rc.errors.ApiError as exc:
        secrets = str(exc.code)
    review = await client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json={{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}})
    return {{"user": review.json()["status"]["userInfo"]["username"], "secrets": secrets,
             "server": client.config.server}}
'''

CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": f"{PLURAL}.{GROUP}"},
       "spec": {"group": GROUP, "scope": "Namespaced",
                "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{"name": VERSION, "served": True, "storage": True, "subresources": {"status": {}},
                              "schema": {"openAPIV3Schema": {
                                  "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}

# Only what the operator needs (as examples/operators/website/rbac.yaml says an SDK operator does)
ROLE_RULES = [
    {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch", "patch", "update"]},
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["get", "patch", "update"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get"]},
]


@pytest.fixture(scope="module", autouse=True)
def _nft_present() -> None:
    prerequisites.require_nft()  # skips, or fails under CI / make test, saying what to install


@pytest.fixture(scope="module")
def server_process(etcd_endpoint: str) -> Iterator[support.ApiServerProcess]:
    with incluster.api_server(etcd_endpoint, SERVICE_CIDR, pki_prefix="operator-pod-pki-") as server:
        yield server


@pytest.fixture(scope="module")
def api_server(server_process: support.ApiServerProcess) -> str:
    return server_process.url


@pytest.fixture(scope="module")
def python_tag(docker_node: docker_support.DockerDaemon) -> str:
    """The Python image, imported once per daemon (its tag is the hash of what it holds)."""
    return python_image.ensure(docker_node, OPERATOR_MODULES, cwd=Path(__file__).resolve().parents[2])


@pytest.fixture(scope="module")
def proxy(node_agent: docker_support.NodeAgentProcess, api_server: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker_support.ProxyProcess]:
    with incluster.service_proxy(api_server, node_agent.name, SERVICE_CIDR, tmp_path_factory.mktemp("proxy")) as process:
        yield process


@pytest.fixture
def cluster_namespace(client: client_api.Client, server_process: support.ApiServerProcess) -> str:
    """A namespace as the controller-manager leaves it (its `kube-root-ca.crt`), the operator's
    ServiceAccount bound to its Role, and the Widget CRD."""
    name = f"op-{uuid.uuid4().hex[:8]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert server_process.pki is not None
    client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt"},
                                       "data": {"ca.crt": server_process.pki.ca.cert.read_text()}}, namespace=name)
    client.create("v1", "serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                            "metadata": {"name": ACCOUNT}}, namespace=name)
    rbac = "rbac.authorization.k8s.io/v1"
    client.create(rbac, "roles", {"apiVersion": rbac, "kind": "Role", "metadata": {"name": ACCOUNT},
                                  "rules": ROLE_RULES}, namespace=name)
    client.create(rbac, "rolebindings", {
        "apiVersion": rbac, "kind": "RoleBinding", "metadata": {"name": ACCOUNT},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ACCOUNT},
        "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": name}]}, namespace=name)
    if not any(c["metadata"]["name"] == CRD["metadata"]["name"]
               for c in client.list("apiextensions.k8s.io/v1", "customresourcedefinitions")["items"]):
        client.create("apiextensions.k8s.io/v1", "customresourcedefinitions", CRD)
    support.wait_for(lambda: _served(client, name), timeout=20, what="the Widget CRD served")
    return name


def _served(client: client_api.Client, namespace: str) -> bool:
    try:
        client.list(f"{GROUP}/{VERSION}", PLURAL, namespace=namespace)
        return True
    except Exception:
        return False


def _can_i(server_process: support.ApiServerProcess, tmp_path: Path, namespace: str, *what: str) -> str:
    """`kubectl auth can-i WHAT --as system:serviceaccount:NS:ACCOUNT` as the admin: its answer."""
    kubeconfig = server_process.connection.write_kubeconfig(tmp_path / "kubeconfig")
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), HOME=str(tmp_path))
    done = subprocess.run(["kubectl", "auth", "can-i", *what, "-n", namespace,
                           "--as", f"system:serviceaccount:{namespace}:{ACCOUNT}"],
                          capture_output=True, text=True, env=env, timeout=30)
    return done.stdout.strip()


def operator_pod(node: str, image: str, namespace: str) -> dict[str, Any]:
    command = ["python", "-m", "reconcile", "operator", "run", "/plugin/handlers.py", "-n", namespace, "--standalone"]
    return helpers.pod("operator", node, helpers.container("operator", image=image, command=command,
                                                           volumeMounts=[{"name": "plugin", "mountPath": "/plugin"}]),
                       serviceAccountName=ACCOUNT, volumes=[{"name": "plugin", "configMap": {"name": "plugin"}}])


def test_an_sdk_operator_in_a_pod_reconciles_with_in_cluster_config(
        client: client_api.Client, cluster_namespace: str, node_agent: docker_support.NodeAgentProcess,
        docker_node: docker_support.DockerDaemon, server_process: support.ApiServerProcess,
        proxy: docker_support.ProxyProcess, python_tag: str, tmp_path: Path) -> None:
    namespace = cluster_namespace
    # what the Role allows and what it does not, as kubectl sees it
    assert _can_i(server_process, tmp_path, namespace, "create", "configmaps") == "yes"
    assert _can_i(server_process, tmp_path, namespace, "list", "secrets") == "no"
    assert _can_i(server_process, tmp_path, "default", "create", "configmaps") == "no"

    client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "plugin"},
                                       "data": {"handlers.py": PLUGIN}}, namespace=namespace)
    client.create("v1", "pods", operator_pod(node_agent.name, python_tag, namespace), namespace=namespace)
    pod = helpers.wait_pod(client, namespace, "operator", helpers.running_ready, timeout=60, what="operator Running")
    box = helpers.app_containers(docker_node, pod["metadata"]["uid"], "operator")[0]
    env = dict(e.split("=", 1) for e in box["Config"]["Env"])
    assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == (KUBERNETES_IP, "443")
    assert not any(m["Destination"] == "/var/run/secrets/kubernetes.io/serviceaccount" and m["RW"]
                   for m in box["Mounts"])

    client.create(f"{GROUP}/{VERSION}", PLURAL, {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget",
                                                 "metadata": {"name": "w1"}, "spec": {"message": "hello"}},
                  namespace=namespace)

    def handled() -> dict[str, Any] | None:
        status = (client.get(f"{GROUP}/{VERSION}", PLURAL, "w1", namespace=namespace).get("status") or {})
        return status.get("made")

    def logs() -> str:
        """The operator's log (its last two attempts) and whether the pod reaches the cluster IP at all."""
        found = helpers.app_containers(docker_node, pod["metadata"]["uid"], "operator", running=False)
        text = "\n".join(docker_node.docker("logs", c["Id"], check=False).stderr[-3000:] for c in found[:2])
        probe = docker_node.docker("exec", box["Id"], "python", "-c",
                                   f"import socket; s = socket.create_connection(('{KUBERNETES_IP}', 443), 3); "
                                   "print('connected')", check=False)
        return text + f"\nconnecting to {KUBERNETES_IP}:443 from the pod: {probe.stdout} {probe.stderr[-300:]}"

    try:
        made = support.wait_for(handled, timeout=30, interval=0.2, what="the operator in the pod handles w1")
    except Exception as exc:
        raise AssertionError(f"{exc}; operator log:\n{logs()}") from None
    out = client.get("v1", "configmaps", "w1-out", namespace=namespace)
    assert out["data"] == {"message": "hello"}
    assert made["user"] == f"system:serviceaccount:{namespace}:{ACCOUNT}"  # the projected token
    assert made["server"] == f"https://{KUBERNETES_IP}:443"  # found by the in-cluster configuration
    assert made["secrets"] == "403"  # what the Role does not grant is refused
