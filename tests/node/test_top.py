"""`kubectl top` through metrics.k8s.io: the API server reads the node agent's sampled Docker stats."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from reconcile.core import errors, quantities
from tests import support
from tests.node import helpers

BURN = ["sh", "-c", "trap 'exit 0' TERM; while :; do :; done"]
IDLE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]
METRICS = "/apis/metrics.k8s.io/v1beta1"
# A busy loop takes a whole core on a quiet machine; on a loaded 2-core one, still far more than this.
BUSY_MILLIS, IDLE_MILLIS = 100, 50


@pytest.fixture(scope="module")
def agent_args() -> tuple[str, ...]:
    return ("--lease-interval", "2", "--stats-interval", "1")


@pytest.fixture(scope="module")
def workload(api_server, node_agent):
    """A pod that burns a core and one that sleeps, both Ready, in a namespace of their own."""
    from reconcile.client import api as client_api

    client = client_api.Client(support.connection(api_server).client_config())
    ns = f"top-{uuid.uuid4().hex[:6]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    burner = helpers.pod("burner", node_agent.name, helpers.container("burn", command=BURN))
    burner["metadata"]["labels"] = {"app": "burn"}
    client.create("v1", "pods", burner, namespace=ns)
    client.create("v1", "pods", helpers.pod("idler", node_agent.name, helpers.container("idle", command=IDLE)),
                  namespace=ns)
    for name in ("burner", "idler"):
        helpers.wait_pod(client, ns, name, helpers.running_ready, what=f"{name} Ready")
    yield ns
    for name in ("burner", "idler"):  # the burner must not keep a core busy for the rest of the suite
        client.delete("v1", "pods", name, namespace=ns)
    client.close()


def _cpu_millis(metrics: dict) -> int:
    return sum(quantities.parse_cpu_millis(c["usage"]["cpu"]) for c in metrics["containers"])


def test_pod_metrics_show_the_burning_pod(client, workload, node_agent):
    def burning() -> dict | None:
        try:
            found = client.request("GET", f"{METRICS}/namespaces/{workload}/pods/burner").json()
        except errors.NotFound:
            return None
        return found if _cpu_millis(found) >= BUSY_MILLIS else None

    burner = support.wait_for(burning, timeout=30, interval=0.2, what="burner's CPU sampled")
    assert burner["kind"] == "PodMetrics" and burner["metadata"]["labels"] == {"app": "burn"}
    assert [c["name"] for c in burner["containers"]] == ["burn"], "the infra container is not listed"
    assert quantities.parse_bytes(burner["containers"][0]["usage"]["memory"]) > 0
    listed = client.request("GET", f"{METRICS}/namespaces/{workload}/pods").json()
    assert listed["kind"] == "PodMetricsList"
    by_name = {m["metadata"]["name"]: m for m in listed["items"]}
    assert set(by_name) == {"burner", "idler"} and _cpu_millis(by_name["idler"]) < IDLE_MILLIS
    selected = client.request("GET", f"{METRICS}/namespaces/{workload}/pods", params={"labelSelector": "app=burn"})
    assert [m["metadata"]["name"] for m in selected.json()["items"]] == ["burner"]
    node = client.request("GET", f"{METRICS}/nodes/{node_agent.name}").json()
    assert node["kind"] == "NodeMetrics" and quantities.parse_cpu_millis(node["usage"]["cpu"]) >= BUSY_MILLIS
    with pytest.raises(errors.NotFound):
        client.request("GET", f"{METRICS}/namespaces/{workload}/pods/nope")


def test_kubectl_top(kube_env, workload, node_agent, client):
    support.wait_for(lambda: _cpu_millis(client.request("GET", f"{METRICS}/namespaces/{workload}/pods/burner").json())
                     >= BUSY_MILLIS, timeout=30, interval=0.2, what="burner's CPU sampled")
    pods = subprocess.run(["kubectl", "top", "pod", "-n", workload], env=kube_env, capture_output=True, text=True,
                          timeout=30)
    assert pods.returncode == 0, pods.stderr
    lines = pods.stdout.splitlines()
    assert lines[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"burner", "idler"}
    assert quantities.parse_cpu_millis(rows["burner"][1]) >= BUSY_MILLIS
    nodes = subprocess.run(["kubectl", "top", "node", node_agent.name], env=kube_env, capture_output=True,
                           text=True, timeout=30)
    assert nodes.returncode == 0, nodes.stderr
    assert nodes.stdout.splitlines()[0].split()[:3] == ["NAME", "CPU(cores)", "CPU(%)"]
    assert nodes.stdout.splitlines()[1].split()[0] == node_agent.name
    denied = subprocess.run(["kubectl", "top", "pod", "-n", workload, "--as", "nobody-in-particular"], env=kube_env,
                            capture_output=True, text=True, timeout=30)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
