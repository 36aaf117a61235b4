"""charts/webapp on a real node: `chart install --wait`, `--atomic` after an image that cannot start,
and `chart test`, whose hook Pod calls the release's Service by name.

It lives with the node tests to share their session's private dockerd (tests/node/conftest.py: the
test images are built once). One cluster for the module: that dockerd, the module's API server,
scheduler and controller-manager (Deployments, ReplicaSets, EndpointSlices), one node agent whose
pods resolve names through `reconcile dns` on the pod bridge's gateway, and `reconcile proxy` for
the Service's cluster IP. The chart's own values are used except the test image (the node has only
the locally built images: `reconcile-hello:1.0` is busybox, with wget). Everything is stopped by pid;
the proxy's rules and the node's containers are removed at teardown.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.rcode
import pytest

from reconcile.client import api as client_api
from tests import docker_support, prerequisites, support
from tests.dns.helpers import DnsProcess, ask

ROOT = Path(__file__).resolve().parents[2]
WEBAPP = str(ROOT / "charts" / "webapp")
SERVICE_CIDR = "10.229.0.0/16"  # the proxy guards it; away from other suites' bridges and pod CIDRs
TEST_IMAGE = ("--set", "tests.image=reconcile-hello:1.0")


class Component:
    """`python -m reconcile ARGS` logging to a file, stopped by pid."""

    def __init__(self, name: str, *args: str) -> None:
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"charts-{name}-", suffix=".log")[1])
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "reconcile", *args], stdout=log,
                                            stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def server_args() -> tuple[str, ...]:
    return ("--service-cluster-ip-range", SERVICE_CIDR)


@pytest.fixture(scope="module")
def node(docker_node: docker_support.DockerDaemon, api_server: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The whole cluster; yields the node's name."""
    prerequisites.require_nft()  # skips, or fails under CI / make test, saying what to install
    args = support.connection(api_server).component_args()
    state = Path(tmp_path_factory.mktemp("chart-node"))
    agent = docker_support.NodeAgentProcess(docker_node, api_server, name=f"chartnode-{uuid.uuid4().hex[:6]}",
                                            state_dir=state / "node")
    gateway = str(next(ipaddress.ip_network(agent.pod_cidr).hosts()))
    resolv = state / "host-resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\noptions timeout:1\n")  # nothing outside the cluster resolves
    agent.extra_args = ("--lease-interval", "2", "--cluster-dns", gateway, "--resolv-conf", str(resolv))
    proxy = docker_support.ProxyProcess(api_server, node=agent.name, log_path=state / "proxy.log",
                                        extra_args=("--service-cluster-ip-range", SERVICE_CIDR))
    # every stop runs even when one before it fails (or a timeout interrupts it): nothing is orphaned
    with contextlib.ExitStack() as stack:
        stack.callback(agent.remove_containers)
        stack.callback(proxy.cleanup)
        for name in ("scheduler", "controller-manager"):
            stack.callback(Component(name, name, *args, "--no-leader-elect").stop)
        stack.callback(agent.stop)
        agent.start()
        stack.callback(DnsProcess(api_server, host=gateway, port=53).stop)  # the bridge exists once the agent joined
        stack.callback(proxy.stop)
        proxy.start()
        support.wait_for(lambda: ask(53, "svc.cluster.local", host=gateway).rcode() == dns.rcode.NOERROR,
                         timeout=30, what="cluster DNS on the bridge gateway")
        yield agent.name


@pytest.fixture(scope="module")
def client(api_server: str) -> Iterator[client_api.Client]:
    with client_api.Client(support.connection(api_server).client_config()) as c:
        yield c


@pytest.fixture(scope="module")
def ns(client: client_api.Client, node: str) -> str:
    name = f"chartnode-{uuid.uuid4().hex[:6]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def chart_cli(server: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """`reconcile chart ARGS` as the admin, with rich drawing as on a terminal (TTY_COMPATIBLE=1 is rich's
    switch for that: the --wait view is its table)."""
    env = dict(support.connection(server).env(), TTY_COMPATIBLE="1", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "reconcile", "chart", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def deployment(client: client_api.Client, ns: str, name: str) -> dict[str, Any]:
    return client.get("apps/v1", "deployments", name, namespace=ns)


def endpoints(client: client_api.Client, ns: str, service: str) -> list[dict[str, Any]]:
    """The Service's endpoints, terminating ones too (the proxy, as upstream's, still routes to a
    terminating pod that serves when no other is ready)."""
    slices = client.list("discovery.k8s.io/v1", "endpointslices", namespace=ns,
                         label_selector=f"kubernetes.io/service-name={service}")["items"]
    return [e for s in slices for e in s.get("endpoints") or []]


@pytest.mark.timeout(300)  # a dockerd with the test images built and six processes, on a loaded 2-core machine
def test_install_waits_for_the_deployment_then_atomic_rolls_back_and_test_calls_the_service(
        api_server: str, client: client_api.Client, ns: str) -> None:
    release = "web"
    full = f"{release}-webapp"
    done = chart_cli(api_server, "install", release, WEBAPP, "-n", ns, "--wait", "--timeout", "50s", *TEST_IMAGE)
    assert done.returncode == 0, done.stdout + done.stderr
    # returned only once the Deployment is available (read straight after: no waiting here)
    status = deployment(client, ns, full)["status"]
    assert status.get("availableReplicas") == 1 and status.get("updatedReplicas") == 1, status
    # the live view: rich's table of the release's objects, first not ready, last all ready
    assert "waiting: 2/2 ready" in done.stdout, done.stdout
    first = done.stdout.index("waiting: ")
    assert done.stdout[first:first + 18] in ("waiting: 0/2 ready", "waiting: 1/2 ready"), done.stdout
    assert f"Deployment/{ns}/{full}" in done.stdout and "OBJECT" in done.stdout and "READY" in done.stdout
    assert "STATUS: deployed\nREVISION: 1" in done.stdout

    # an image that cannot start (pull policy Never, not on the node): --wait times out, --atomic rolls back
    bad = chart_cli(api_server, "upgrade", release, WEBAPP, "-n", ns, "--wait", "--timeout", "5s", "--atomic",
                    "--set", "image.repository=reconcile-absent", "--set", "image.pullPolicy=Never", *TEST_IMAGE)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "has been rolled back due to atomic being set" in bad.stderr, bad.stderr
    assert "timed out waiting for the condition" in bad.stderr and f"Deployment/{ns}/{full}" in bad.stderr
    history = json.loads(chart_cli(api_server, "history", release, "-n", ns, "-o", "json").stdout)
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "failed"), (3, "deployed")]
    image = deployment(client, ns, full)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "reconcile-hello:1.0"
    support.wait_for(lambda: (deployment(client, ns, full).get("status") or {}).get("availableReplicas") == 1
                     and (deployment(client, ns, full).get("status") or {}).get("updatedReplicas") == 1,
                     timeout=40, what="the rolled-back Deployment available again")

    # the chart's test hook: a Pod that wgets http://web-webapp:80/ (cluster DNS, then the proxy's cluster IP)
    tested = chart_cli(api_server, "test", release, "-n", ns, "--timeout", "40s")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert f"TEST SUITE:     Pod/{ns}/{full}-test-connection (test): Succeeded" in tested.stdout
    support.wait_for(lambda: not client.list("v1", "pods", namespace=ns,
                                             field_selector=f"metadata.name={full}-test-connection")["items"],
                     timeout=30, what="the succeeded test Pod deleted (hook-succeeded)")

    # with no endpoint behind the Service the same hook fails: it really calls the Service
    client.patch("apps/v1", "deployments", full, {"spec": {"replicas": 0}}, namespace=ns, patch_type="merge")
    support.wait_for(lambda: not endpoints(client, ns, full), timeout=40, what="the Service without endpoints")
    failed = chart_cli(api_server, "test", release, "-n", ns, "--timeout", "40s")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"test hook Pod/{ns}/{full}-test-connection failed: Pod phase Failed" in failed.stderr
