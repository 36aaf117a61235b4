"""A Deployment behind a NodePort Service on a real node, with the controllers that run it:
requests to its cluster IP (from a pod) and node port (from the host, on 127.0.0.1) are spread
over its pods, a pod made not-ready gets none, and a rolling update under load loses none.
`externalTrafficPolicy` is tried from off the node: a client in a network namespace of its own,
joined to the host by a veth pair (TEST-NET-style addresses only on that pair), reaches the node
port at the host's end of the pair. Cluster masquerades it; Local keeps the client's address and
drops what no endpoint on this node can take.

One cluster for the module: the module's API server (allocating cluster IPs from SERVICE_CIDR),
a controller-manager (Deployment, ReplicaSet, EndpointSlice controllers), the session's private
dockerd with one node agent, and `reconcile proxy` for that node. Pods are bound to the node by
their template's nodeName (no scheduler needed). Requests go only from a client pod made here to
the Service's cluster IP and from this host to 127.0.0.1, which translate to the pods made here;
the proxy's rules and the node's containers are removed at teardown. Every wait is a condition with a deadline.
"""

from __future__ import annotations

import collections
import http.client
import ipaddress
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconcile.client import api as client_api
from reconcile.proxy import render
from tests import docker_support, prerequisites, support
from tests.controllers import helpers as controller_helpers
from tests.node import helpers

SERVICE_CIDR = "10.226.0.0/16"  # the proxy guards it; away from other suites' ranges, bridges and pod CIDRs
REPLICAS = 3
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]


@pytest.fixture(scope="module", autouse=True)
def _nft_present() -> None:
    prerequisites.require_nft()  # skips, or fails under CI / make test, saying what to install


@pytest.fixture(scope="module")
def server_args() -> tuple[str, ...]:
    return ("--service-cluster-ip-range", SERVICE_CIDR)


@pytest.fixture(scope="module")
def admin(api_server: str) -> Iterator[client_api.Client]:
    c = client_api.Client(support.connection(api_server).client_config())
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def controllers(api_server: str) -> Iterator[controller_helpers.ControllerManagerProcess]:
    """Started, not waited for: it comes up while the node agent does (the pods' readiness is the wait)."""
    process = controller_helpers.ControllerManagerProcess(api_server)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def web_template(node: str, version: str) -> dict[str, Any]:
    """busybox httpd whose /cgi-bin/who answers the pod's name; Ready while /tmp/ready exists
    (made once httpd runs); on SIGTERM it keeps serving 3 s (the graceful part of a rollout)."""
    script = "#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho %s\\n"
    command = ["sh", "-c", f"mkdir -p /www/cgi-bin && printf '{script}' \"$POD_NAME\" > /www/cgi-bin/who && "
               f"printf '{script}' '$REMOTE_ADDR' > /www/cgi-bin/from && "  # the address the pod sees
               "chmod +x /www/cgi-bin/who /www/cgi-bin/from && trap 'sleep 3; exit 0' TERM; "
               "httpd -f -p 8080 -h /www & touch /tmp/ready; wait"]
    container = helpers.container(
        "web", command=command, ports=[{"name": "http", "containerPort": 8080}],
        env=[{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
             {"name": "VERSION", "value": version}],
        readinessProbe={"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1,
                        "failureThreshold": 1, "successThreshold": 1})
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 10, "containers": [container]}}


def pods_of(client: client_api.Client, namespace: str) -> list[dict[str, Any]]:
    return client.list("v1", "pods", namespace=namespace, label_selector="app=web").get("items") or []


def nft_table(node: str) -> str:
    return subprocess.run(["nft", "list", "table", "ip", render.table_name(node)], capture_output=True,
                          text=True).stdout


@pytest.fixture(scope="module")
def web(controllers, admin: client_api.Client, node_agent: docker_support.NodeAgentProcess,
        docker_node: docker_support.DockerDaemon, api_server: str,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The namespace, its 3-replica Deployment behind Service `web`, a client pod's container, and
    the node's proxy (started while the pods start)."""
    namespace = f"traffic-{uuid.uuid4().hex[:6]}"
    admin.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": "web"}},
                           "strategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                           "template": web_template(node_agent.name, "1")}}
    admin.create("apps/v1", "deployments", deployment, namespace=namespace)
    service = admin.create("v1", "services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
        namespace=namespace)
    admin.create("v1", "pods", helpers.pod("client", node_agent.name, helpers.container("client", command=SLEEPER)),
                 namespace=namespace)
    proxy = docker_support.ProxyProcess(api_server, node=node_agent.name,
                                        log_path=Path(tmp_path_factory.mktemp("proxy")) / "proxy.log",
                                        extra_args=("--service-cluster-ip-range", SERVICE_CIDR))
    try:
        proxy.start()
        yield from _serving(admin, namespace, service, docker_node, node_agent)
    finally:
        proxy.stop()
        proxy.cleanup()


def _serving(admin: client_api.Client, namespace: str, service: dict[str, Any], docker_node: docker_support.DockerDaemon,
             node_agent: docker_support.NodeAgentProcess) -> Iterator[dict[str, Any]]:
    client_pod = helpers.wait_pod(admin, namespace, "client", helpers.running_ready, timeout=60)
    box = helpers.app_containers(docker_node, client_pod["metadata"]["uid"], "client")[0]["Id"]
    ip = service["spec"]["clusterIP"]

    def all_serving() -> list[dict[str, Any]] | None:
        pods = [p for p in pods_of(admin, namespace) if helpers.running_ready(p)]
        table = nft_table(node_agent.name)
        if len(pods) == REPLICAS and all(f"{p['status']['podIP']} . 8080" in table for p in pods):
            return pods
        return None

    support.wait_for(all_serving, timeout=60, interval=0.2, what="3 ready pods programmed behind the cluster IP")
    yield {"namespace": namespace, "ip": ip, "box": box, "daemon": docker_node, "node": node_agent.name,
           "node_port": service["spec"]["ports"][0]["nodePort"]}


def requests(web: dict[str, Any], count: int) -> list[str]:
    """`count` sequential requests, each a new connection, from the client pod: the answers in order
    (a failed one fails the test)."""
    loop = (f"i=0; while [ $i -lt {count} ]; do i=$((i+1)); "
            f"timeout 3 wget -q -O- http://{web['ip']}/cgi-bin/who 2>/tmp/err$$ || echo FAIL $(cat /tmp/err$$); done")
    out = web["daemon"].docker("exec", web["box"], "sh", "-c", loop, timeout=120).stdout
    return answers_of(out)


def answers_of(out: str) -> list[str]:
    """The answering pods' names, in order; any `FAIL <error>` line fails the test, naming the error."""
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    failures = [line for line in lines if line.startswith("FAIL")]
    assert not failures, failures[:5]
    return lines


def from_host(port: int) -> str:
    """One request on a new connection from this host to 127.0.0.1:`port` (the Service's node port)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/cgi-bin/who", headers={"Connection": "close"})
        return conn.getresponse().read().decode().strip()
    finally:
        conn.close()


def test_requests_are_spread_over_all_pods(web, admin):
    names = {p["metadata"]["name"] for p in pods_of(admin, web["namespace"])}
    for answers in (requests(web, 300), [from_host(web["node_port"]) for _ in range(300)]):
        counts = collections.Counter(answers)  # from a client pod to the cluster IP, from the host to the node port
        assert len(answers) == 300 and set(counts) == names, counts
        assert min(counts.values()) >= 30, counts  # each pod at least 10%


def test_a_pod_made_not_ready_gets_no_requests(web, admin):
    namespace = web["namespace"]
    pod = sorted(pods_of(admin, namespace), key=lambda p: p["metadata"]["name"])[0]
    name, address = pod["metadata"]["name"], pod["status"]["podIP"]
    path = f"/api/v1/namespaces/{namespace}/pods/{name}/exec"
    done = admin.request("POST", path, json={"command": ["rm", "/tmp/ready"]}).json()
    assert done["exitCode"] == 0, done

    def out_of_rotation() -> bool:
        slices = admin.list("discovery.k8s.io/v1", "endpointslices", namespace=namespace,
                            label_selector="kubernetes.io/service-name=web")["items"]
        endpoint = [e for s in slices for e in s.get("endpoints") or [] if e["addresses"] == [address]]
        return bool(endpoint) and endpoint[0]["conditions"]["ready"] is False and \
            f"{address} . 8080" not in nft_table(web["node"])

    support.wait_for(out_of_rotation, timeout=10, interval=0.1, what=f"{name} not ready and out of the rules")
    answers = requests(web, 60)
    assert len(answers) == 60 and name not in answers, collections.Counter(answers)
    assert len(set(answers)) == REPLICAS - 1

    done = admin.request("POST", path, json={"command": ["touch", "/tmp/ready"]}).json()
    assert done["exitCode"] == 0, done
    support.wait_for(lambda: f"{address} . 8080" in nft_table(web["node"]), timeout=10, interval=0.1,
                     what=f"{name} back in the rules")


def test_a_rolling_update_under_load_fails_no_request(web, admin):
    namespace = web["namespace"]
    before = {p["metadata"]["name"] for p in pods_of(admin, namespace)}
    # the client loop: at most 3000 requests, ended early by the file /tmp/stop in the client pod
    loop = (f"rm -f /tmp/stop; i=0; while [ $i -lt 3000 ] && [ ! -f /tmp/stop ]; do i=$((i+1)); "
            f"timeout 3 wget -q -O- http://{web['ip']}/cgi-bin/who 2>/tmp/err$$ || echo FAIL $(cat /tmp/err$$); done")
    client = subprocess.Popen(["docker", "--host", web["daemon"].host, "exec", web["box"], "sh", "-c", loop],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deployment = admin.get("apps/v1", "deployments", "web", namespace=namespace)
        deployment["spec"]["template"] = web_template(web["node"], "2")
        generation = admin.replace("apps/v1", "deployments", deployment, namespace=namespace)["metadata"]["generation"]

        def rolled_out() -> bool:
            d = admin.get("apps/v1", "deployments", "web", namespace=namespace)
            status = d.get("status") or {}
            pods = pods_of(admin, namespace)
            return (status.get("observedGeneration", 0) >= generation and status.get("updatedReplicas") == REPLICAS
                    and status.get("availableReplicas") == REPLICAS and status.get("replicas") == REPLICAS
                    and len(pods) == REPLICAS and not {p["metadata"]["name"] for p in pods} & before
                    and all(helpers.running_ready(p) for p in pods))

        support.wait_for(rolled_out, timeout=90, interval=0.2, what="the rollout to finish")
        after = {p["metadata"]["name"] for p in pods_of(admin, namespace)}
        # a few requests on the new pods, then stop the loop
        support.wait_for(lambda: after <= set(requests(web, 12)), timeout=20, what="the new pods answer")
    finally:
        web["daemon"].docker("exec", web["box"], "touch", "/tmp/stop", check=False)
        try:
            out, err = client.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            client.kill()
            out, err = client.communicate()
    assert client.returncode == 0, err
    counts = collections.Counter(answers_of(out))  # zero failed requests
    assert set(counts) & before and set(counts) & after, counts  # the loop ran across the update


class Outside:
    """A client off the node: a network namespace joined to the host by a veth pair, the host's end
    HOST_ADDRESS, the client's CLIENT_ADDRESS (a /30 of the benchmarking range, on nothing else).
    No rule of the test lets its packets through the host's FORWARD chain (which a Docker engine
    with iptables on makes DROP by policy): the proxy's own accept rule for DNATed pod traffic must.
    The namespace and the pair go at teardown."""

    HOST_ADDRESS = "198.18.226.1"
    CLIENT_ADDRESS = "198.18.226.2"

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.namespace, self.host_end, self.client_end = f"rcx-{tag}", f"rcxh{tag}", f"rcxn{tag}"

    def create(self) -> None:
        taken = subprocess.run(["ip", "-4", "route", "show", "to", "match", self.CLIENT_ADDRESS],
                               capture_output=True, text=True, check=True).stdout
        assert "198.18.226." not in taken, f"the host already routes {self.CLIENT_ADDRESS}'s range: {taken}"
        for command in (["ip", "netns", "add", self.namespace],
                        ["ip", "link", "add", self.host_end, "type", "veth", "peer", "name", self.client_end,
                         "netns", self.namespace],
                        ["ip", "addr", "add", f"{self.HOST_ADDRESS}/30", "dev", self.host_end],
                        ["ip", "link", "set", self.host_end, "up"],
                        ["ip", "-n", self.namespace, "addr", "add", f"{self.CLIENT_ADDRESS}/30", "dev", self.client_end],
                        ["ip", "-n", self.namespace, "link", "set", self.client_end, "up"],
                        ["ip", "-n", self.namespace, "link", "set", "lo", "up"]):
            subprocess.run(command, capture_output=True, text=True, check=True)
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            assert f.read().strip() == "1", "the host does not forward IPv4 (Docker engines turn it on)"

    def remove(self) -> None:
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True)  # takes the pair with it
        subprocess.run(["ip", "link", "del", self.host_end], capture_output=True)

    def fetch(self, port: int, path: str) -> str | None:
        """One GET from the namespace to the host's end of the pair; None when nothing answered in 2 s."""
        done = subprocess.run(["ip", "netns", "exec", self.namespace, sys.executable, "-c", FETCH,
                               self.HOST_ADDRESS, str(port), path], capture_output=True, text=True, timeout=20)
        return done.stdout.strip() if done.returncode == 0 else None


# one GET on a new connection, the body on stdout; run inside the client's namespace
FETCH = """
import http.client, sys
conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=2)
conn.request("GET", sys.argv[3], headers={"Connection": "close"})
answer = conn.getresponse()
sys.stdout.write(answer.read().decode())
sys.exit(0 if answer.status == 200 else 1)
"""


@pytest.fixture(scope="module")
def outside() -> Iterator[Outside]:
    client = Outside()
    try:
        client.create()
        yield client
    finally:
        client.remove()


def client_address(seen: str) -> str:
    """The client address a pod's CGI saw: busybox httpd listens on IPv6 and writes IPv4 clients as
    `[::ffff:a.b.c.d]`."""
    address = ipaddress.ip_address(seen.strip("[]"))
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return str(mapped or address)


def node_port_service(admin: client_api.Client, namespace: str, name: str, policy: str,
                      selector: dict[str, str] | None) -> int:
    spec: dict[str, Any] = {"type": "NodePort", "externalTrafficPolicy": policy,
                            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    if selector is not None:
        spec["selector"] = selector
    created = admin.create("v1", "services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                                              "spec": spec}, namespace=namespace)
    return int(created["spec"]["ports"][0]["nodePort"])


def test_local_policy_keeps_the_off_node_clients_address_and_cluster_masquerades_it(web, admin, outside):
    namespace = web["namespace"]
    local_port = node_port_service(admin, namespace, "web-local", "Local", {"app": "web"})
    names = {p["metadata"]["name"] for p in pods_of(admin, namespace) if helpers.running_ready(p)}
    # the pods are all on this node: Local answers from them, seeing the client as it is
    seen = support.wait_for(lambda: outside.fetch(local_port, "/cgi-bin/from"), timeout=30, interval=0.2,
                            what="the Local node port answering the off-node client")
    assert client_address(seen) == Outside.CLIENT_ADDRESS
    assert {outside.fetch(local_port, "/cgi-bin/who") for _ in range(30)} <= names
    # Cluster (the module's Service `web`): masqueraded, so the pod sees the node's address
    seen = support.wait_for(lambda: outside.fetch(web["node_port"], "/cgi-bin/from"), timeout=30, interval=0.2,
                            what="the Cluster node port answering the off-node client")
    assert client_address(seen) != Outside.CLIENT_ADDRESS


def test_local_policy_drops_what_no_endpoint_on_this_node_can_take(web, admin, outside):
    """A Service without a selector whose only endpoint (a real pod of ours) is said to be on
    another node: under Cluster the off-node client gets that pod; switched to Local, nothing."""
    namespace = web["namespace"]
    pod = next(p for p in pods_of(admin, namespace) if helpers.running_ready(p))
    port = node_port_service(admin, namespace, "far", "Cluster", None)
    admin.create("discovery.k8s.io/v1", "endpointslices", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "far-1", "labels": {"kubernetes.io/service-name": "far"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [pod["status"]["podIP"]], "conditions": {"ready": True},
                       "nodeName": "a-node-elsewhere"}]}, namespace=namespace)
    answer = support.wait_for(lambda: outside.fetch(port, "/cgi-bin/who"), timeout=30, interval=0.2,
                              what="the Cluster node port of `far` answering")
    assert answer == pod["metadata"]["name"]

    service = admin.get("v1", "services", "far", namespace=namespace)
    service["spec"]["externalTrafficPolicy"] = "Local"
    admin.replace("v1", "services", service, namespace=namespace)
    support.wait_for(lambda: f"{port} : drop" in nft_table(web["node"]), timeout=10, interval=0.1,
                     what="the node port of `far` dropped for want of a local endpoint")
    assert outside.fetch(port, "/cgi-bin/who") is None
    assert outside.fetch(web["node_port"], "/cgi-bin/who") in {p["metadata"]["name"] for p in pods_of(admin, namespace)}
