"""kopf, unmodified, *inside a pod*: the operator of tests/compat/kopf_operator.py runs as
`python -m kopf run` in a container and logs in as kopf does in a cluster, through the official
client's `load_incluster_config()`: KUBERNETES_SERVICE_HOST/PORT (the `kubernetes` Service's cluster
IP, which the node's service proxy translates to the API server), the projected CA and the projected
ServiceAccount token. Its ServiceAccount holds only what kopf needs (tests/kopf_support.py).

The cluster is tests/node/test_operator_in_pod.py's (whose SDK operator runs the same way): the
module's HTTPS API server with RBAC and ServiceAccount tokens, its serving certificate naming the
cluster IP; the session's private dockerd with one node agent; `reconcile proxy` for that node. The
image holds this host's Python with kopf and the official client (tests/python_image.py); the
operator comes in a ConfigMap volume. Traffic goes only from the pod made here to the cluster IP;
the proxy's rules and the node's containers are removed at teardown.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconcile.client import api as client_api
from tests import docker_support, kopf_support, prerequisites, python_image, support
from tests.node import helpers, incluster

SERVICE_CIDR = "10.228.0.0/16"  # the proxy guards it; away from other suites' ranges, bridges and pod CIDRs
KUBERNETES_IP = incluster.kubernetes_ip(SERVICE_CIDR)  # the `kubernetes` Service
ACCOUNT = "gadget-operator"
# What `python -m kopf run` imports, and the official client kopf logs in with in a cluster
KOPF_MODULES = ("kopf", "kopf.__main__", "kubernetes.config", "kubernetes.client")


@pytest.fixture(scope="module", autouse=True)
def _nft_present() -> None:
    prerequisites.require_nft()  # skips, or fails under CI / make test, saying what to install


@pytest.fixture(scope="module")
def server_process(etcd_endpoint: str) -> Iterator[support.ApiServerProcess]:
    with incluster.api_server(etcd_endpoint, SERVICE_CIDR, pki_prefix="kopf-pod-pki-") as server:
        yield server


@pytest.fixture(scope="module")
def api_server(server_process: support.ApiServerProcess) -> str:
    return server_process.url


@pytest.fixture(scope="module")
def python_tag(docker_node: docker_support.DockerDaemon) -> str:
    """The Python image with kopf, imported once per daemon (its tag is the hash of what it holds)."""
    return python_image.ensure(docker_node, KOPF_MODULES, cwd=Path(__file__).resolve().parents[2])


@pytest.fixture(scope="module")
def proxy(node_agent: docker_support.NodeAgentProcess, api_server: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker_support.ProxyProcess]:
    with incluster.service_proxy(api_server, node_agent.name, SERVICE_CIDR, tmp_path_factory.mktemp("proxy")) as process:
        yield process


@pytest.fixture
def operator_namespace(client: client_api.Client, server_process: support.ApiServerProcess) -> str:
    """A namespace as the controller-manager leaves it (its `kube-root-ca.crt`), the operator's
    ServiceAccount bound to what kopf needs, the Gadget CRD, and the operator's file in a ConfigMap."""
    name = f"kopf-{uuid.uuid4().hex[:8]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert server_process.pki is not None
    client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt"},
                                       "data": {"ca.crt": server_process.pki.ca.cert.read_text()}}, namespace=name)
    client.create("v1", "serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                            "metadata": {"name": ACCOUNT}}, namespace=name)
    kopf_support.grant(client, name, kopf_support.service_account(name, ACCOUNT), kopf_support.LEAST_ROLE)
    crd = kopf_support.GADGETS
    if not any(c["metadata"]["name"] == crd["metadata"]["name"]
               for c in client.list("apiextensions.k8s.io/v1", "customresourcedefinitions")["items"]):
        client.create("apiextensions.k8s.io/v1", "customresourcedefinitions", crd)
    support.wait_for(lambda: kopf_support.served(client, kopf_support.API_VERSION, kopf_support.PLURAL),
                     timeout=20, what="the Gadget CRD served")
    client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "operator"},
                                       "data": {"kopf_operator.py": kopf_support.OPERATOR.read_text()}}, namespace=name)
    return name


def operator_pod(node: str, image: str, namespace: str) -> dict[str, Any]:
    command = ["python", "-m", "kopf", "run", "--standalone", "--verbose", "--log-format", "full",
               "--namespace", namespace, "/operator/kopf_operator.py"]
    # kopf names itself user@host: the test image has no /etc/passwd for getpass to read the user from
    env = [{"name": "USER", "value": "operator"}]
    return helpers.pod("kopf", node, helpers.container("kopf", image=image, command=command, env=env,
                                                       volumeMounts=[{"name": "operator", "mountPath": "/operator"}]),
                       serviceAccountName=ACCOUNT, volumes=[{"name": "operator", "configMap": {"name": "operator"}}])


def test_kopf_in_a_pod_serves_gadgets_with_in_cluster_config(
        client: client_api.Client, operator_namespace: str, node_agent: docker_support.NodeAgentProcess,
        docker_node: docker_support.DockerDaemon, proxy: docker_support.ProxyProcess, python_tag: str) -> None:
    namespace = operator_namespace
    client.create("v1", "pods", operator_pod(node_agent.name, python_tag, namespace), namespace=namespace)
    pod = helpers.wait_pod(client, namespace, "kopf", helpers.running_ready, timeout=60, what="kopf Running")
    box = helpers.app_containers(docker_node, pod["metadata"]["uid"], "kopf")[0]

    def log() -> str:
        found = helpers.app_containers(docker_node, pod["metadata"]["uid"], "kopf", running=False)
        return "\n".join(docker_node.docker("logs", c["Id"], check=False).stderr for c in found[:2])

    client.create(kopf_support.API_VERSION, kopf_support.PLURAL, kopf_support.gadget("g1", "in a pod", 1),
                  namespace=namespace)

    def created() -> dict[str, Any] | None:
        return (kopf_support.current(client, namespace, "g1").get("status") or {}).get("created")

    try:
        made = support.wait_for(created, timeout=60, interval=0.2, what="kopf in the pod handles g1")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; kopf's log:\n{log()[-5000:]}") from None
    assert made == {"message": "in a pod"}
    assert "kopf.zalando.org/KopfFinalizerMarker" in kopf_support.current(client, namespace, "g1")["metadata"]["finalizers"]
    support.wait_for(lambda: "GadgetCreated" in kopf_support.events_of(client, namespace, "g1"), timeout=30,
                     what="the create handler's Event")
    client.delete(kopf_support.API_VERSION, kopf_support.PLURAL, "g1", namespace=namespace)
    support.wait_for(lambda: kopf_support.gone(client, namespace, "g1"), timeout=60,
                     what="g1 goes away through kopf's finalizer")

    text = log()
    env = dict(e.split("=", 1) for e in box["Config"]["Env"])
    assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == (KUBERNETES_IP, "443")
    assert "Client is configured in cluster with service account." in text, text[-5000:]  # not a kubeconfig
    assert kopf_support.trouble(text) == [], text[-8000:]
