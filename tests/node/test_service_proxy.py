"""The service proxy on real netfilter and a real dockerd: cluster IPs, node ports, endpoint changes.

Services carry an explicit spec.clusterIP and hand-written EndpointSlices pointing at the pods made
here (no allocator or slice controller involved). Traffic goes only to those pods, to cluster IPs
that translate to them, and to 127.0.0.1. The proxy's table, route and iptables rule are removed
at teardown (`reconcile proxy --cleanup`).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconcile.core import errors
from reconcile.proxy import render
from tests import docker_support, prerequisites, support
from tests.node import helpers


@pytest.fixture(scope="module", autouse=True)
def _nft_present() -> None:
    prerequisites.require_nft()  # skips, or fails under CI / make test, saying what to install


# Outside 10.64.0.0/10, where node agents' default pod CIDRs used to fall (other suites' leftover
# bridges there would make the proxy refuse the upstream default 10.96.0.0/12, rightly).
SERVICE_CIDR = "10.230.0.0/16"
SERVICE_IP = "10.230.200.10"
EMPTY_IP = "10.230.200.11"
NODE_PORT = 31080


def web(name: str) -> dict:
    """busybox httpd whose /cgi-bin/who answers `<client address> <pod name>`."""
    script = f"#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR {name}\\n"
    command = ["sh", "-c", f"mkdir -p /www/cgi-bin && printf '{script}' > /www/cgi-bin/who && "
               "chmod +x /www/cgi-bin/who && trap 'exit 0' TERM INT; httpd -f -p 8080 -h /www & wait"]
    probe = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    return helpers.container("web", command=command, ports=[{"name": "http", "containerPort": 8080}],
                             readinessProbe=probe)


def who(host: str, port: int, *, timeout: float = 2.0) -> str:
    """One request on a new connection: the answering pod's `<client> <pod>` line."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/cgi-bin/who", headers={"Connection": "close"})
        return plain(conn.getresponse().read().decode().strip())
    finally:
        conn.close()


def plain(line: str) -> str:
    """busybox httpd writes REMOTE_ADDR as `[::ffff:a.b.c.d]`: the IPv4 address alone."""
    return line.replace("[::ffff:", "").replace("]", "", 1)


def slice_body(name: str, service: str, pods: list[dict], node: str) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
            "endpoints": [{"addresses": [p["status"]["podIP"]], "conditions": {"ready": True}, "nodeName": node,
                           "targetRef": {"kind": "Pod", "name": p["metadata"]["name"]}} for p in pods]}


def service_body(name: str, ip: str, *, node_port: int | None = None) -> dict:
    port = {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}
    spec = {"clusterIP": ip, "ports": [port], "type": "ClusterIP"}
    if node_port:
        port["nodePort"] = node_port
        spec["type"] = "NodePort"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


@pytest.fixture(scope="module")
def server_args() -> tuple[str, ...]:
    """The API server allocates from the CIDR the proxy guards (stray bridges of other suites stay out of it)."""
    return ("--service-cluster-ip-range", SERVICE_CIDR)


@pytest.fixture(scope="module")
def proxy(api_server: str, node_agent: docker_support.NodeAgentProcess,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker_support.ProxyProcess]:
    p = docker_support.ProxyProcess(api_server, node=node_agent.name,
                                    log_path=Path(tmp_path_factory.mktemp("proxy")) / "proxy.log",
                                    extra_args=("--service-cluster-ip-range", SERVICE_CIDR))
    try:
        p.start()
        yield p
    finally:
        p.stop()
        p.cleanup()


@pytest.fixture(scope="module")
def web_pods(api_server: str, node_agent: docker_support.NodeAgentProcess) -> Iterator[tuple[str, list[dict]]]:
    from reconcile.client import api as client_api

    client = client_api.Client(support.connection(api_server).client_config())
    namespace = f"svc-{uuid.uuid4().hex[:6]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    names = ["web-0", "web-1", "web-2"]
    for name in names:
        client.create("v1", "pods", helpers.pod(name, node_agent.name, web(name)), namespace=namespace)
    pods = [helpers.wait_pod(client, namespace, n, helpers.running_ready, timeout=60) for n in names]
    try:
        yield namespace, pods
    finally:
        client.close()


def nft_table(node: str) -> str:
    return subprocess.run(["nft", "list", "table", "ip", render.table_name(node)], capture_output=True,
                          text=True).stdout


def test_cluster_ip_spreads_follows_endpoints_and_rejects_when_empty(client, proxy, web_pods, node_agent, docker_node):
    namespace, pods = web_pods
    ns = {"namespace": namespace}
    client.create("v1", "services", service_body("web", SERVICE_IP, node_port=NODE_PORT), **ns)
    client.create("discovery.k8s.io/v1", "endpointslices", slice_body("web-1", "web", pods, node_agent.name), **ns)
    support.wait_for(lambda: f"{SERVICE_IP} . tcp . 80 : goto pick-" in nft_table(node_agent.name)
                     and pods[2]["status"]["podIP"] in nft_table(node_agent.name), timeout=10,
                     what="service programmed")

    # from the host: 90 new connections reach all three pods
    seen = {who(SERVICE_IP, 80).split()[1] for _ in range(90)}
    assert seen == {"web-0", "web-1", "web-2"}
    # a node port on 127.0.0.1 (masqueraded, route_localnet on the pod bridge only)
    assert who("127.0.0.1", NODE_PORT).split()[1] in seen
    # from a client pod: the pod's own address arrives (no masquerade for pod sources)
    client_pod = helpers.app_containers(docker_node, pods[0]["metadata"]["uid"], "web")[0]["Id"]
    loop = f"for i in $(seq 30); do wget -qO- http://{SERVICE_IP}/cgi-bin/who; done"
    lines = docker_node.docker("exec", client_pod, "sh", "-c", loop).stdout.split("\n")
    answers = [plain(line).split() for line in lines if line.strip()]
    assert len(answers) == 30 and {a[1] for a in answers} == {"web-0", "web-1", "web-2"}
    # hairpin: web-0 reached itself through the Service, masqueraded (else its reply never returns)
    assert {a[0] for a in answers if a[1] != "web-0"} == {pods[0]["status"]["podIP"]}

    # an endpoint removed gets no new connection once 1 s has passed
    removed = pods[2]["status"]["podIP"]
    current = client.get("discovery.k8s.io/v1", "endpointslices", "web-1", **ns)
    current["endpoints"] = [e for e in current["endpoints"] if e["addresses"] != [removed]]
    started = time.monotonic()
    client.replace("discovery.k8s.io/v1", "endpointslices", current, **ns)
    support.wait_for(lambda: f"{removed} . 8080" not in nft_table(node_agent.name), timeout=1.0, interval=0.01,
                     what="endpoint gone from the rules within 1 s")
    assert time.monotonic() - started < 1.0
    assert {who(SERVICE_IP, 80).split()[1] for _ in range(40)} == {"web-0", "web-1"}

    # no endpoints: refused at once, not a timeout
    current = client.get("discovery.k8s.io/v1", "endpointslices", "web-1", **ns)
    current["endpoints"] = []
    client.replace("discovery.k8s.io/v1", "endpointslices", current, **ns)
    support.wait_for(lambda: f"{SERVICE_IP} . tcp . 80 : goto reject-chain" in nft_table(node_agent.name),
                     timeout=2, what="service rejected")
    for target in ((SERVICE_IP, 80), ("127.0.0.1", NODE_PORT)):
        started = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(target, timeout=3).close()
        assert time.monotonic() - started < 0.5


def test_a_service_without_a_slice_refuses_and_unallocated_addresses_stay_on_the_host(client, proxy, web_pods,
                                                                                      node_agent):
    namespace, _ = web_pods
    client.create("v1", "services", service_body("empty", EMPTY_IP), namespace=namespace)
    support.wait_for(lambda: f"{EMPTY_IP} . tcp . 80 : goto reject-chain" in nft_table(node_agent.name),
                     timeout=10, what="empty service rejected")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((EMPTY_IP, 80), timeout=3).close()
    # a known cluster IP on a port it does not serve: rejected (cluster-ips-check)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((EMPTY_IP, 81), timeout=3).close()
    # an address of the range no Service has: routed into the dummy device, never to the gateway
    route = subprocess.run(["ip", "route", "get", "10.230.123.123"], capture_output=True, text=True).stdout
    assert "dev rcsvc0" in route and "eth0" not in route and "via" not in route

    # a proxy that stops leaves its rules serving; started again it adopts them (one atomic replace)
    proxy.stop()
    assert f"{EMPTY_IP} . tcp . 80 : goto reject-chain" in nft_table(node_agent.name)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((EMPTY_IP, 80), timeout=3).close()
    proxy.start()
    assert f"{EMPTY_IP} . tcp . 80 : goto reject-chain" in nft_table(node_agent.name)


def test_plain_loopback_traffic_is_never_masqueraded(proxy, node_agent):
    """The `kubernetes` Service's endpoint is this API server's 127.0.0.1, so `127.0.0.1 . 127.0.0.1`
    is a hairpin candidate; only a connection the proxy DNATed may be masqueraded for it. Before,
    every loopback connection of the host was (its source became the host's address), for as long
    as a proxy ran: audit logs and anything else that reads the peer saw the wrong client."""
    support.wait_for(lambda: "127.0.0.1 . 127.0.0.1" in nft_table(node_agent.name), timeout=10,
                     what="this API server's address among the hairpin candidates")
    peers: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)

        def serve() -> None:
            conn, peer = listener.accept()
            peers.append(peer[0])
            conn.close()

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        socket.create_connection(listener.getsockname(), timeout=5).close()
        server.join(timeout=5)
    assert peers == ["127.0.0.1"]


def test_refuses_a_service_cidr_the_host_routes(api_server, node_agent):
    connection = support.connection(api_server)
    as_user = connection.user("system:kube-proxy") if connection.tls else None
    host_routes = json.loads(subprocess.run(["ip", "-j", "route", "show"], capture_output=True, text=True).stdout)
    routed = next(r["dst"] for r in host_routes if "/" in r.get("dst", "")
                  and not r.get("dev", "").startswith(("rcsvc", "rcn-", "rctest")))
    node = f"refuse-{uuid.uuid4().hex[:4]}"
    try:
        done = subprocess.run([sys.executable, "-m", "reconcile", "proxy", "--node", node,
                               *connection.component_args(as_user=as_user), "--service-cluster-ip-range", routed],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "overlaps the host's route" in done.stderr
        assert render.table_name(node) not in subprocess.run(["nft", "list", "tables"], capture_output=True,
                                                             text=True).stdout
    finally:
        subprocess.run([sys.executable, "-m", "reconcile", "proxy", "--cleanup", "--node", node], capture_output=True,
                       timeout=60)


@pytest.fixture(scope="module")
def second_node(api_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker_support.NodeAgentProcess]:
    """Node B: its own dockerd, bridge and pod CIDR on this host, and its service proxy run by
    `node join --proxy-kubeconfig` in the agent's process."""
    connection = support.connection(api_server)
    proxy_kubeconfig = connection.kubeconfig(as_user=connection.user("system:kube-proxy") if connection.tls else None)
    name = f"node-b-{uuid.uuid4().hex[:4]}"
    with docker_support.running_daemon() as daemon:
        agent = docker_support.NodeAgentProcess(daemon, api_server, name=name,
                                                state_dir=Path(tmp_path_factory.mktemp("agent-b")),
                                                extra_args=("--lease-interval", "2", "--proxy-kubeconfig",
                                                            str(proxy_kubeconfig), "--service-cluster-ip-range",
                                                            SERVICE_CIDR))
        try:
            agent.start()
            yield agent
        finally:
            agent.stop()
            agent.remove_containers()
            subprocess.run([sys.executable, "-m", "reconcile", "proxy", "--cleanup", "--node", name],
                           capture_output=True, timeout=60)


@pytest.mark.timeout(300)  # a second dockerd (with the test images built) on a loaded machine
def test_pods_on_two_nodes_reach_each_other_by_pod_ip_and_service_with_the_source_kept(
        client, namespace, proxy, node_agent, second_node, docker_node):
    client.create("v1", "pods", helpers.pod("a", node_agent.name, web("a")), namespace=namespace)
    client.create("v1", "pods", helpers.pod("b", second_node.name, web("b")), namespace=namespace)
    a = helpers.wait_pod(client, namespace, "a", helpers.running_ready, timeout=60)
    b = helpers.wait_pod(client, namespace, "b", helpers.running_ready, timeout=60)
    a_ip, b_ip = a["status"]["podIP"], b["status"]["podIP"]
    assert a_ip.split(".")[:3] != b_ip.split(".")[:3], "each node has its own pod CIDR"
    a_box = helpers.app_containers(docker_node, a["metadata"]["uid"], "web")[0]["Id"]
    b_box = helpers.app_containers(second_node.daemon, b["metadata"]["uid"], "web")[0]["Id"]

    def fetch(daemon: docker_support.DockerDaemon, box: str, url: str) -> str:
        return plain(daemon.docker("exec", box, "wget", "-qO-", url).stdout.strip())

    assert fetch(docker_node, a_box, f"http://{b_ip}:8080/cgi-bin/who") == f"{a_ip} b"
    assert fetch(second_node.daemon, b_box, f"http://{a_ip}:8080/cgi-bin/who") == f"{b_ip} a"
    # through a Service whose only endpoint runs on node B: still no NAT of the pod's address
    ip = "10.230.200.20"
    client.create("v1", "services", service_body("remote", ip), namespace=namespace)
    client.create("discovery.k8s.io/v1", "endpointslices", slice_body("remote-1", "remote", [b], second_node.name),
                  namespace=namespace)
    support.wait_for(lambda: f"{ip} . tcp . 80 : goto pick-" in nft_table(node_agent.name), timeout=10,
                     what="remote service programmed")
    assert fetch(docker_node, a_box, f"http://{ip}/cgi-bin/who") == f"{a_ip} b"
    # node B's proxy (in its agent's process) programs its own table; A's is its own proxy's
    support.wait_for(lambda: f"{ip} . tcp . 80 : goto pick-" in nft_table(second_node.name), timeout=10,
                     what="node B's proxy programmed")
    assert fetch(second_node.daemon, b_box, f"http://{ip}/cgi-bin/who").endswith(" b")  # hairpin on B
    assert render.table_name(second_node.name) not in nft_table(node_agent.name)


class _UdpNamer:
    """A UDP server on one of this host's addresses that answers every datagram with its name."""

    def __init__(self, address: str, port: int, name: str) -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.sock.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                _, peer = self.sock.recvfrom(100)
            except TimeoutError:
                continue
            except OSError:
                return
            self.sock.sendto(self.name.encode(), peer)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()


def proxy_tables() -> list[str]:
    """The text of every `reconcile-proxy-*` table on this host."""
    names = [line.split()[-1] for line in subprocess.run(["nft", "list", "tables"], capture_output=True,
                                                         text=True).stdout.splitlines()
             if line.startswith("table ip reconcile-proxy-")]
    return [subprocess.run(["nft", "list", "table", "ip", n], capture_output=True, text=True).stdout for n in names]


def udp_flows(ip: str) -> str:
    return subprocess.run(["conntrack", "-L", "-p", "udp", "--orig-dst", ip], capture_output=True, text=True).stdout


def test_udp_flows_leave_removed_endpoints_and_find_new_ones(client, proxy, web_pods, node_agent, docker_node):
    """One client socket (one source port, as a resolver keeps) through a UDP cluster IP: its flow
    moves off an endpoint that is removed, and off the un-NATed entry it made while the Service had
    no endpoint, because the proxy deletes those conntrack entries (kube-proxy's UDP cleanup).
    The endpoints are two addresses of this host the suite made (the node's pod bridge gateway
    and its dockerd's bridge)."""
    prerequisites.require_conntrack()
    namespace, _ = web_pods
    ns = {"namespace": namespace}
    ip, port = "10.230.200.30", 9053
    addresses = [str(next(ipaddress.ip_network(node_agent.pod_cidr).hosts())), docker_node.bridge_cidr.split("/")[0]]
    servers = {a: _UdpNamer(a, port, f"udp-{i}") for i, a in enumerate(addresses)}
    names = {s.name: a for a, s in servers.items()}
    try:
        client.create("v1", "services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "udp"},
                                         "spec": {"clusterIP": ip, "ports": [{"name": "dns", "protocol": "UDP",
                                                                              "port": 53, "targetPort": port}]}}, **ns)

        def set_endpoints(*ips: str) -> None:
            body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": "udp-1", "labels": {"kubernetes.io/service-name": "udp"}},
                    "addressType": "IPv4", "ports": [{"name": "dns", "protocol": "UDP", "port": port}],
                    "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in ips]}
            try:
                current = client.get("discovery.k8s.io/v1", "endpointslices", "udp-1", **ns)
            except errors.NotFound:
                client.create("discovery.k8s.io/v1", "endpointslices", body, **ns)
                return
            current["endpoints"] = body["endpoints"]
            client.replace("discovery.k8s.io/v1", "endpointslices", current, **ns)

        def programmed(*ips: str) -> None:
            """In every proxy table on this host that serves the address (node B's proxy of this
            module too, when it runs: its rules see this host's own packets as well)."""
            def done() -> bool:
                tables = [nft_table(node_agent.name)] + [t for t in proxy_tables() if f"{ip} . udp . 53" in t]
                return all(all((f"{a} . {port}" in table) == (a in ips) for a in addresses)
                           and (f"{ip} . udp . 53 : goto reject-chain" in table) == (not ips) for table in tables)
            support.wait_for(done, timeout=10, interval=0.05, what=f"udp endpoints {ips} programmed")

        set_endpoints(*addresses)
        programmed(*addresses)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.connect((ip, 53))

            def ask() -> str:
                sock.send(b"?")
                return sock.recv(100).decode()

            first = ask()
            assert {ask() for _ in range(5)} == {first}  # one flow, one endpoint
            other = next(a for a in addresses if a != names[first])
            set_endpoints(other)
            programmed(other)
            support.wait_for(lambda: f"src={names[first]} " not in udp_flows(ip), timeout=5, interval=0.05,
                             what="the flow to the removed endpoint deleted")
            assert ask() == servers[other].name  # the same source port, now on the endpoint left

            # no endpoint: refused; the flow made then is not NATed, and must not outlive it
            set_endpoints()
            programmed()
            support.wait_for(lambda: f"src={other} " not in udp_flows(ip), timeout=5, interval=0.05,
                             what="the flow to the last endpoint deleted")
            with pytest.raises(PermissionError):  # rejected in this host's own output path: EPERM
                ask()
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # the reject's ICMP, pending on the socket
            set_endpoints(other)
            programmed(other)
            support.wait_for(lambda: f"src={ip} " not in udp_flows(ip), timeout=5, interval=0.05,
                             what="the un-NATed flow deleted")
            assert ask() == servers[other].name
    finally:
        for server in servers.values():
            server.close()
