"""Pods on a real dockerd get the kubelet's resolv.conf, and resolve Services through `reconcile dns`.

The agent runs with `--cluster-dns` = its pod bridge's gateway (an address of this host that its
containers reach) and a `--resolv-conf` the test writes (so dnsPolicy Default is checked without
the host's own resolvers). The DNS server listens on that gateway, port 53. Pods only ever ask
for names in the cluster domain: there is no upstream, so nothing could be forwarded anyway.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from tests import docker_support, support
from tests.dns import fixtures as f
from tests.dns.helpers import DnsProcess, ask
from tests.node import helpers

SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]
HOST_RESOLV = "nameserver 192.0.2.53\nsearch node.example\noptions timeout:1\n"


class Node:
    def __init__(self, agent: docker_support.NodeAgentProcess, gateway: str) -> None:
        self.agent, self.gateway = agent, gateway
        self.name = agent.name


@pytest.fixture(scope="module")
def node(docker_node: docker_support.DockerDaemon, api_server: str,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    state = Path(tmp_path_factory.mktemp("agent"))
    resolv = state / "host-resolv.conf"
    resolv.write_text(HOST_RESOLV)
    agent = docker_support.NodeAgentProcess(docker_node, api_server, name=f"node-{uuid.uuid4().hex[:6]}",
                                            state_dir=state / "node")
    gateway = str(next(ipaddress.ip_network(agent.pod_cidr).hosts()))
    agent.extra_args = ("--lease-interval", "2", "--cluster-dns", gateway, "--resolv-conf", str(resolv))
    agent.start()
    try:
        yield Node(agent, gateway)
    finally:
        agent.stop()
        agent.remove_containers()


@pytest.fixture(scope="module")
def cluster_dns(node: Node, api_server: str) -> Iterator[DnsProcess]:
    """`reconcile dns` on the node's bridge gateway (the bridge exists once the agent has joined)."""
    process = DnsProcess(api_server, host=node.gateway, port=53)
    try:
        support.wait_for(lambda: ask(53, "svc.cluster.local", host=node.gateway).rcode() == dns.rcode.NOERROR,
                         timeout=30, what="cluster DNS on the bridge gateway")
        yield process
    finally:
        process.stop()


def run_pod(client, namespace: str, node: Node, name: str, **spec) -> tuple[dict, str]:
    body = helpers.pod(name, node.name, helpers.container("app", command=SLEEP), **spec)
    client.create("v1", "pods", body, namespace=namespace)
    obj = helpers.wait_pod(client, namespace, name, helpers.running_ready, what=f"{name} Running")
    return obj, helpers.app_containers(node.agent.daemon, obj["metadata"]["uid"], "app")[0]["Id"]


def test_cluster_first_pod_gets_the_kubelets_resolv_conf(client, namespace, node, docker_node) -> None:
    _, container = run_pod(client, namespace, node, "first")
    text = docker_node.docker("exec", container, "cat", "/etc/resolv.conf").stdout
    assert text == (f"nameserver {node.gateway}\n"
                    f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local node.example\n"
                    "options ndots:5\n")


def test_default_and_none_policies(client, namespace, node, docker_node) -> None:
    _, default = run_pod(client, namespace, node, "default", dnsPolicy="Default")
    assert docker_node.docker("exec", default, "cat", "/etc/resolv.conf").stdout == HOST_RESOLV
    _, none = run_pod(client, namespace, node, "none", dnsPolicy="None",
                      dnsConfig={"nameservers": ["192.0.2.9"], "searches": ["a.example"],
                                 "options": [{"name": "ndots", "value": "2"}]})
    assert docker_node.docker("exec", none, "cat", "/etc/resolv.conf").stdout == (
        "nameserver 192.0.2.9\nsearch a.example\noptions ndots:2\n")


def test_policy_none_without_nameservers_is_invalid(client, namespace, node) -> None:
    body = helpers.pod("bad", node.name, helpers.container(), dnsPolicy="None")
    with pytest.raises(Exception, match="spec.dnsConfig") as caught:
        client.create("v1", "pods", body, namespace=namespace)
    assert getattr(caught.value, "code", 422) == 422


def test_a_pod_resolves_a_service_by_short_and_full_name(client, namespace, node, cluster_dns, docker_node) -> None:
    _, container = run_pod(client, namespace, node, "client")
    # created after the client pod runs: it resolves at once
    client.create("v1", "services", f.service("web", namespace, cluster_ip="10.96.44.44"), namespace=namespace)
    client.create("v1", "services", f.service("db", namespace, cluster_ip="None"), namespace=namespace)
    client.create("discovery.k8s.io/v1", "endpointslices",
                  f.endpoint_slice("db", [f.endpoint("10.97.0.5"), f.endpoint("10.97.0.6")], namespace),
                  namespace=namespace)

    def lookup(name: str) -> str:
        done = docker_node.docker("exec", container, "nslookup", name, check=False, timeout=20)
        return done.stdout + done.stderr

    short = support.wait_for(lambda: "10.96.44.44" in (out := lookup("web")) and out, timeout=15,
                             what="web by its short name")
    assert "10.96.44.44" in short
    assert "10.96.44.44" in lookup(f"web.{namespace}.svc.cluster.local")
    headless = support.wait_for(lambda: "10.97.0.6" in (out := lookup(f"db.{namespace}.svc.cluster.local")) and out,
                                timeout=15, what="the headless Service's endpoints")
    assert "10.97.0.5" in headless


def test_a_resolv_conf_that_docker_made_a_directory_is_written_again(client, namespace, node, docker_node) -> None:
    """When a pod's resolv.conf was missing as a container was created, Docker made the bind
    source an empty directory; every later sync then failed to write the file (IsADirectoryError)
    and the pod never ran again. The agent now replaces that directory with the file."""
    obj, container = run_pod(client, namespace, node, "healed")
    path = node.agent.state_dir / "pods" / obj["metadata"]["uid"] / "resolv.conf"
    assert path.is_file()
    path.unlink()
    path.mkdir()  # what Docker leaves for a missing bind source
    docker_node.docker("kill", container)

    def restarted() -> str | None:
        found = helpers.app_containers(docker_node, obj["metadata"]["uid"], "app")
        return found[0]["Id"] if found and found[0]["Id"] != container else None

    again = support.wait_for(restarted, timeout=30, what="the app container started again")
    assert path.is_file()
    assert docker_node.docker("exec", again, "cat", "/etc/resolv.conf").stdout.startswith(f"nameserver {node.gateway}\n")
