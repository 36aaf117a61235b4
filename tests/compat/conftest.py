"""The kubectl compatibility suite: the real kubectl 1.32 (and the official Python client) against
one API server and one node agent on a private dockerd, shared by each module.

Secured as `reconcile up` runs them: the API server presents its kubelet-client certificate and
verifies the agent's serving certificate; the agent serves HTTPS, accepts only clients of the
cluster CA and authorizes each by SubjectAccessReview. The dockerd is tests/node's (one per session)."""

from __future__ import annotations

import functools
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconcile.client import api as client_api
from tests import docker_support, prerequisites, support
from tests.node import helpers
from tests.node.conftest import docker_node  # noqa: F401  (fixture)

KUBECTL_TIMEOUT = 60
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]


@functools.cache
def kubectl_binary() -> str:
    """The kubectl 1.32 to run (skips, or fails under CI, saying how to get one)."""
    return prerequisites.require_kubectl()


@pytest.fixture(scope="module", autouse=True)
def _kubectl_present() -> None:
    kubectl_binary()


@pytest.fixture(scope="module")
def server_args() -> tuple[str, ...]:
    pki = support.shared_pki()
    return ("--kubelet-client-certificate", str(pki.apiserver_kubelet_client.cert),
            "--kubelet-client-key", str(pki.apiserver_kubelet_client.key),
            "--kubelet-certificate-authority", str(pki.ca.cert))


@pytest.fixture(scope="module")
def node_agent(docker_node: docker_support.DockerDaemon, api_server: str,  # noqa: F811
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker_support.NodeAgentProcess]:
    name = f"compat-{uuid.uuid4().hex[:6]}"
    pki = support.shared_pki()
    pki.ensure(nodes=[name])  # the agent's serving certificate, from the cluster CA the API server trusts
    serving = pki.node_serving(name)
    agent = docker_support.NodeAgentProcess(
        docker_node, api_server, name=name, state_dir=Path(tmp_path_factory.mktemp("agent")),
        extra_args=("--tls-cert-file", str(serving.cert), "--tls-private-key-file", str(serving.key),
                    "--client-ca-file", str(pki.ca.cert), "--lease-interval", "2"))
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()
        agent.remove_containers()


@pytest.fixture(scope="module")
def admin(api_server: str) -> Iterator[client_api.Client]:
    c = client_api.Client(support.connection(api_server).client_config())
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def module_env(api_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A kubeconfig for the module's server, as the kube_env fixture makes one per test."""
    home = tmp_path_factory.mktemp("kube")
    kubeconfig = support.connection(api_server).write_kubeconfig(home / "kubeconfig")
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), KUBECACHEDIR=str(home / "cache"), HOME=str(home))
    env.pop("RECONCILE_SERVER", None)
    return env


@pytest.fixture(scope="module")
def workload(admin: client_api.Client, node_agent) -> str:  # noqa: F811
    """A namespace with Running pods: `web` (busybox httpd on 8080, the port named `http`; two containers: `web`, `side`)
    and `tty` (stdin + tty, a shell as PID 1, for attach)."""
    ns = f"compat-{uuid.uuid4().hex[:6]}"
    admin.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    web = helpers.pod("web", node_agent.name,
                      helpers.container("web", ports=[{"name": "http", "containerPort": 8080}]),
                      helpers.container("side", command=SLEEPER))
    web["metadata"]["labels"] = {"app": "web"}
    web["metadata"]["annotations"] = {"kubectl.kubernetes.io/default-container": "web"}
    admin.create("v1", "pods", web, namespace=ns)
    admin.create("v1", "pods", helpers.pod("tty", node_agent.name, helpers.container(
        "shell", command=["sh"], stdin=True, tty=True)), namespace=ns)
    for name in ("web", "tty"):
        helpers.wait_pod(admin, ns, name, helpers.running_ready, what=f"{name} Ready")
    return ns


def kubectl(env: dict[str, str], *args: str, input: bytes | None = None,
            timeout: float = KUBECTL_TIMEOUT) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([kubectl_binary(), *args], env=env, input=input, capture_output=True, timeout=timeout)
