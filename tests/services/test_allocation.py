"""Service defaults, validation and allocation against a real API server on a real etcd."""

from __future__ import annotations

import concurrent.futures
import ipaddress
from collections.abc import Iterator

import pytest

from reconcile.client import api
from reconcile.core import errors
from tests import support
from tests.services.conftest import service


def _invalid(call) -> errors.Invalid:
    with pytest.raises(errors.Invalid) as caught:
        call()
    return caught.value


def test_defaults_as_upstream(client: api.Client, ns: str) -> None:
    created = client.create("v1", "services", service("web", ports=[{"port": 80}]), namespace=ns)
    spec = created["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["internalTrafficPolicy"] == "Cluster" and "externalTrafficPolicy" not in spec
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert ipaddress.ip_address(spec["clusterIP"]) in ipaddress.ip_network("10.96.0.0/22")
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    affinity = client.create("v1", "services", service("sticky", sessionAffinity="ClientIP"), namespace=ns)
    assert affinity["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    node = client.create("v1", "services", service("np", kind="NodePort",
                                                   ports=[{"name": "a", "port": 80, "targetPort": "http"}]),
                         namespace=ns)
    assert 30000 <= node["spec"]["ports"][0]["nodePort"] <= 32767
    assert node["spec"]["ports"][0]["targetPort"] == "http"
    assert node["spec"]["externalTrafficPolicy"] == "Cluster"


def test_kubernetes_service_has_the_first_address(client: api.Client) -> None:
    svc = client.get("v1", "services", "kubernetes", namespace="default")
    assert svc["spec"]["clusterIP"] == "10.96.0.1"
    assert svc["spec"]["ports"][0]["port"] == 443 and svc["spec"]["ports"][0]["name"] == "https"
    assert svc["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
    endpoints = client.get("v1", "endpoints", "kubernetes", namespace="default")
    assert endpoints["subsets"][0]["addresses"] == [{"ip": "127.0.0.1"}]
    port = endpoints["subsets"][0]["ports"][0]["port"]
    assert svc["spec"]["ports"][0]["targetPort"] == port
    slice_ = client.get("discovery.k8s.io/v1", "endpointslices", "kubernetes", namespace="default")
    assert slice_["endpoints"][0]["addresses"] == ["127.0.0.1"] and slice_["ports"][0]["port"] == port
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"


def test_static_ip_taken_or_outside_the_range(client: api.Client, ns: str) -> None:
    taken = _invalid(lambda: client.create("v1", "services", service("dup", clusterIP="10.96.0.1"), namespace=ns))
    assert taken.code == 422
    assert taken.causes == [{"reason": "FieldValueInvalid", "field": "spec.clusterIPs", "message":
                             'Invalid value: []string{"10.96.0.1"}: failed to allocate IP 10.96.0.1: '
                             'provided IP is already allocated'}]
    outside = _invalid(lambda: client.create("v1", "services", service("out", clusterIP="10.0.0.1"), namespace=ns))
    assert outside.causes[0]["message"] == (
        'Invalid value: []string{"10.0.0.1"}: failed to allocate IP 10.0.0.1: the provided IP (10.0.0.1) is not '
        'in the valid range. The range of valid IPs is 10.96.0.0/22')
    garbage = _invalid(lambda: client.create("v1", "services", service("bad", clusterIP="1.2.3"), namespace=ns))
    assert garbage.causes[0]["field"] == "spec.clusterIPs[0]"
    static = client.create("v1", "services", service("static", clusterIP="10.96.0.5"), namespace=ns)
    assert static["spec"]["clusterIPs"] == ["10.96.0.5"]


def test_node_port_taken_or_out_of_range(client: api.Client, ns: str) -> None:
    first = client.create("v1", "services", service("np1", kind="NodePort", ports=[{"port": 80, "nodePort": 30001}]),
                          namespace=ns)
    assert first["spec"]["ports"][0]["nodePort"] == 30001
    taken = _invalid(lambda: client.create("v1", "services", service(
        "np2", kind="NodePort", ports=[{"port": 80, "nodePort": 30001}]), namespace=ns))
    assert taken.causes == [{"reason": "FieldValueInvalid", "field": "spec.ports[0].nodePort",
                             "message": "Invalid value: 30001: provided port is already allocated"}]
    assert 'Service "np2" is invalid: spec.ports[0].nodePort: Invalid value: 30001: provided port is already ' \
           'allocated' == taken.message
    out = _invalid(lambda: client.create("v1", "services", service(
        "np3", kind="NodePort", ports=[{"port": 80, "nodePort": 80}]), namespace=ns))
    assert out.causes[0]["message"] == ("Invalid value: 80: provided port is not in the valid range. The range of "
                                        "valid ports is 30000-32767")
    # the failed creates gave back their cluster IPs; the node port goes with its Service
    client.delete("v1", "services", "np1", namespace=ns)
    again = client.create("v1", "services", service("np4", kind="NodePort", ports=[{"port": 80, "nodePort": 30001}]),
                          namespace=ns)
    assert again["spec"]["ports"][0]["nodePort"] == 30001


def test_failed_create_frees_its_cluster_ip(client: api.Client, ns: str) -> None:
    """The second port's node port is taken: the cluster IP claimed for the Service is given back."""
    client.create("v1", "services", service("holder", kind="NodePort", ports=[{"port": 80, "nodePort": 30002}]),
                  namespace=ns)
    _invalid(lambda: client.create("v1", "services", service(
        "loser", kind="NodePort", clusterIP="10.96.0.9",
        ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30002}]), namespace=ns))
    winner = client.create("v1", "services", service("winner", clusterIP="10.96.0.9"), namespace=ns)
    assert winner["spec"]["clusterIP"] == "10.96.0.9"


def test_validation_messages(client: api.Client, ns: str) -> None:
    cases = [
        (service("a", ports=[{"port": 80, "nodePort": 30010}]), "spec.ports[0].nodePort",
         "Forbidden: may not be used when `type` is 'ClusterIP'"),
        (service("b", ports=[{"port": 80}, {"port": 81}]), "spec.ports[0].name", "Required value"),
        (service("c", ports=[{"port": 80, "targetPort": "Not_A_Name"}]), "spec.ports[0].targetPort",
         'Invalid value: "Not_A_Name": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)'),
        (service("d", kind="ExternalName", ports=[]), "spec.externalName", "Required value"),
        (service("e", kind="NodePort", clusterIP="None"), "spec.clusterIPs[0]",
         "Invalid value: \"None\": may not be set to 'None' for NodePort services"),
        (service("f", externalTrafficPolicy="Local"), "spec.externalTrafficPolicy",
         'Invalid value: "Local": may only be set for externally-accessible services'),
        (service("g", ipFamilies=["IPv6"]), "spec.ipFamilies[0]", 'Invalid value: "IPv6": not configured on this cluster'),
        (service("h", ports=[]), "spec.ports", "Required value"),
    ]
    for body, field, message in cases:
        error = _invalid(lambda body=body: client.create("v1", "services", body, namespace=ns))
        assert {"field": field, "message": message} in [{k: c[k] for k in ("field", "message")} for c in error.causes], \
            (body, error.causes)
    assert client.list("v1", "services", namespace=ns)["items"] == []


def test_cluster_ip_is_immutable_and_kept_on_replace(client: api.Client, ns: str) -> None:
    created = client.create("v1", "services", service("keep", kind="NodePort"), namespace=ns)
    ip, node_port = created["spec"]["clusterIP"], created["spec"]["ports"][0]["nodePort"]
    body = service("keep", kind="NodePort")
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    replaced = client.replace("v1", "services", body, namespace=ns)
    assert replaced["spec"]["clusterIP"] == ip and replaced["spec"]["ports"][0]["nodePort"] == node_port
    error = _invalid(lambda: client.patch("v1", "services", "keep", {"spec": {"clusterIP": "10.96.0.77",
                                                                               "clusterIPs": ["10.96.0.77"]}},
                                          namespace=ns))
    assert {"field": "spec.clusterIP", "message": 'Invalid value: "10.96.0.77": field is immutable'} in \
        [{k: c[k] for k in ("field", "message")} for c in error.causes]
    # NodePort -> ClusterIP frees the node port; ExternalName frees the address
    client.patch("v1", "services", "keep", {"spec": {"type": "ClusterIP"}}, namespace=ns)
    reuse = client.create("v1", "services", service("reuse", kind="NodePort", ports=[{"port": 80, "nodePort": node_port}]),
                          namespace=ns)
    assert reuse["spec"]["ports"][0]["nodePort"] == node_port
    external = client.patch("v1", "services", "keep", {"spec": {"type": "ExternalName", "externalName": "example.com"}},
                            namespace=ns)
    assert "clusterIP" not in external["spec"] and "ipFamilies" not in external["spec"]
    assert client.create("v1", "services", service("reip", clusterIP=ip), namespace=ns)["spec"]["clusterIP"] == ip


def test_delete_returns_the_service(client: api.Client, ns: str, api_server: str) -> None:
    created = client.create("v1", "services", service("gone"), namespace=ns)
    http = support.connection(api_server).http_client()
    response = http.delete(f"{api_server}/api/v1/namespaces/{ns}/services/gone")
    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "Service" and body["metadata"]["uid"] == created["metadata"]["uid"]
    again = client.create("v1", "services", service("gone2", clusterIP=created["spec"]["clusterIP"]), namespace=ns)
    assert again["spec"]["clusterIP"] == created["spec"]["clusterIP"]


def test_loadbalancer_is_served_as_nodeport_with_pending_address(client: api.Client, ns: str) -> None:
    lb = client.create("v1", "services", service("lb", kind="LoadBalancer"), namespace=ns)
    assert lb["spec"]["ports"][0]["nodePort"] and lb["spec"]["externalTrafficPolicy"] == "Cluster"
    assert lb["spec"]["allocateLoadBalancerNodePorts"] is True
    assert lb["status"] == {"loadBalancer": {}}


def test_same_port_two_protocols_share_a_node_port(client: api.Client, ns: str) -> None:
    svc = client.create("v1", "services", service("dns", kind="NodePort", ports=[
        {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]),
        namespace=ns)
    first, second = (p["nodePort"] for p in svc["spec"]["ports"])
    assert first == second


def test_two_hundred_concurrent_creates_get_distinct_ips(client: api.Client, ns: str, api_server: str) -> None:
    def make(i: int) -> str:
        with api.Client(support.connection(api_server).client_config()) as c:
            return c.create("v1", "services", service(f"s{i}"), namespace=ns)["spec"]["clusterIP"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        ips = list(pool.map(make, range(200)))
    assert len(set(ips)) == 200


# --- two servers on one etcd, and restarts ---------------------------------------------------------------------

RANGE_ARGS = ("--service-cluster-ip-range", "10.96.0.0/22")


@pytest.fixture(scope="module")
def server_args() -> tuple[str, ...]:
    return RANGE_ARGS


@pytest.fixture(scope="module")
def second(etcd_endpoint: str, server_process: support.ApiServerProcess) -> Iterator[support.ApiServerProcess]:
    """Another API server on the module server's etcd prefix: the same cluster, served twice."""
    other = support.ApiServerProcess(etcd_endpoint, prefix=server_process.prefix, extra_args=RANGE_ARGS)
    other.start()
    try:
        yield other
    finally:
        other.stop()


def test_two_servers_never_double_allocate_and_restart_keeps(server_process: support.ApiServerProcess,
                                                             second: support.ApiServerProcess, ns: str) -> None:
    pair = [server_process, second]

    def make(i: int) -> tuple[str, int]:
        with api.Client(pair[i % 2].connection.client_config()) as c:
            spec = c.create("v1", "services", service(f"s{i}", kind="NodePort"), namespace=ns)["spec"]
            return spec["clusterIP"], spec["ports"][0]["nodePort"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        made = list(pool.map(make, range(100)))
    assert len({ip for ip, _ in made}) == 100 and len({port for _, port in made}) == 100
    # dynamic ones come from above the static band: upstream's min(max(16, 1022/16), 256) = 63 addresses
    base = int(ipaddress.ip_address("10.96.0.1"))
    assert all(int(ipaddress.ip_address(ip)) - base >= 63 for ip, _ in made)
    assert all(port >= 30000 + 86 for _, port in made)
    second.stop()
    second.start()
    with api.Client(second.connection.client_config()) as c:
        taken = {ip for ip, _ in made}
        for i in range(100, 110):
            assert c.create("v1", "services", service(f"s{i}"), namespace=ns)["spec"]["clusterIP"] not in taken
        for ip, port in made[:3]:
            error = _invalid(lambda ip=ip: c.create("v1", "services", service("x", clusterIP=ip), namespace=ns))
            assert "provided IP is already allocated" in error.causes[0]["message"]
            error = _invalid(lambda port=port: c.create("v1", "services", service(
                "y", kind="NodePort", ports=[{"port": 80, "nodePort": port}]), namespace=ns))
            assert error.causes[0]["message"] == f"Invalid value: {port}: provided port is already allocated"


def test_official_client_service_lifecycle(ns: str, kube_env: dict[str, str]) -> None:
    """kubernetes' Python client: create, list and delete_namespaced_service (which parses the deleted
    Service upstream answers with) and the EndpointSlice API."""
    from kubernetes import client as k8s
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=kube_env["KUBECONFIG"])
    try:
        core = k8s.CoreV1Api(api_client)
        body = k8s.V1Service(metadata=k8s.V1ObjectMeta(name="official"), spec=k8s.V1ServiceSpec(
            selector={"app": "x"}, ports=[k8s.V1ServicePort(port=80, target_port="http", name="web")]))
        created = core.create_namespaced_service(ns, body)
        assert created.spec.cluster_ip and created.spec.ports[0].target_port == "http"
        deleted = core.delete_namespaced_service("official", ns)
        assert isinstance(deleted, k8s.V1Service) and deleted.metadata.uid == created.metadata.uid
        discovery = k8s.DiscoveryV1Api(api_client)
        made = discovery.create_namespaced_endpoint_slice(ns, k8s.V1EndpointSlice(
            metadata=k8s.V1ObjectMeta(name="hand"), address_type="IPv4",
            endpoints=[k8s.V1Endpoint(addresses=["192.0.2.1"], conditions=k8s.V1EndpointConditions(ready=True))],
            ports=[k8s.DiscoveryV1EndpointPort(port=80, name="web")]))
        assert made.endpoints[0].addresses == ["192.0.2.1"]
        assert [s.metadata.name for s in discovery.list_namespaced_endpoint_slice(ns).items] == ["hand"]
    finally:
        api_client.close()


HOSTILE = [
    {"type": "ClusterIP", "clusterIPs": ["None", "10.96.0.40"], "ports": [{"port": 80}]},
    {"type": "ClusterIP", "clusterIP": "10.96.0.41", "clusterIPs": ["10.96.0.42"], "ports": [{"port": 80}]},
    {"type": "ClusterIP", "clusterIP": "fd00::1", "ports": [{"port": 80}]},
    {"type": "ClusterIP", "clusterIP": "10.96.0.0", "ports": [{"port": 80}]},  # the network address
    {"type": "ClusterIP", "clusterIP": "10.96.3.255", "ports": [{"port": 80}]},  # the broadcast address
    {"type": "ClusterIP", "ports": [{"port": 80, "targetPort": -1}]},  # (0 defaults to port, as upstream)
    {"type": "ClusterIP", "ports": [{"port": 80, "targetPort": 70000}]},
    {"type": "ClusterIP", "ports": [{"port": 80, "targetPort": "x" * 40}]},
    {"type": "ClusterIP", "ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]},
    {"type": "ClusterIP", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]},
    {"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30050},
                                   {"name": "b", "port": 81, "nodePort": 30050}]},
    {"type": "NodePort", "ports": [{"port": 80, "nodePort": 65535}]},
    {"type": "ExternalName", "externalName": "bad_name!", "ports": []},
    {"type": "ExternalName", "externalName": "ok.example.com", "clusterIP": "10.96.0.43"},
    {"type": "ClusterIP", "sessionAffinity": "None", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}},
     "ports": [{"port": 80}]},
    {"type": "ClusterIP", "ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]},
    {"type": "ClusterIP", "selector": {"app": "x"}, "ports": "nope"},
    {"type": "Weird", "ports": [{"port": 80}]},
]


@pytest.mark.parametrize("spec", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_specs_get_a_clear_4xx_and_hold_nothing(client: api.Client, ns: str, spec: dict) -> None:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hostile"}, "spec": spec}
    with pytest.raises(errors.ApiError) as caught:
        client.create("v1", "services", body, namespace=ns)
    assert caught.value.code in (400, 422), caught.value
    assert client.list("v1", "services", namespace=ns)["items"] == []


def test_delete_collection_frees_addresses(client: api.Client, ns: str, api_server: str) -> None:
    client.create("v1", "services", service("c1", kind="NodePort", clusterIP="10.96.0.50",
                                            ports=[{"port": 80, "nodePort": 30060}]), namespace=ns)
    http = support.connection(api_server).http_client()
    assert http.delete(f"{api_server}/api/v1/namespaces/{ns}/services").status_code == 200
    again = client.create("v1", "services", service("c2", kind="NodePort", clusterIP="10.96.0.50",
                                                    ports=[{"port": 80, "nodePort": 30060}]), namespace=ns)
    assert again["spec"]["clusterIP"] == "10.96.0.50" and again["spec"]["ports"][0]["nodePort"] == 30060


def test_dry_run_holds_nothing(client: api.Client, ns: str) -> None:
    client.create("v1", "services", service("dry", clusterIP="10.96.0.51"), namespace=ns, dry_run=True)
    real = client.create("v1", "services", service("real", clusterIP="10.96.0.51"), namespace=ns)
    assert real["spec"]["clusterIP"] == "10.96.0.51"


def test_a_dry_run_is_given_what_a_create_would_get_and_refused_what_it_would_be(client: api.Client, ns: str) -> None:
    """As upstream's dry-run allocators: a cluster IP and node ports filled in (kubectl diff and
    `create --dry-run=server` show them), a taken one refused, and nothing kept."""
    dry = client.create("v1", "services", service("dry-np", kind="NodePort", ports=[{"port": 80}]), namespace=ns,
                        dry_run=True)
    ip, node_port = dry["spec"]["clusterIP"], dry["spec"]["ports"][0]["nodePort"]
    assert ip and dry["spec"]["clusterIPs"] == [ip] and 30000 <= node_port <= 32767
    kept = client.create("v1", "services", service("holds", kind="NodePort", clusterIP=ip,
                                                   ports=[{"port": 80, "nodePort": node_port}]), namespace=ns)
    assert kept["spec"]["clusterIP"] == ip, "the dry run kept nothing"
    with pytest.raises(errors.Invalid, match="provided port is already allocated"):
        client.create("v1", "services", service("taken", kind="NodePort", ports=[{"port": 80, "nodePort": node_port}]),
                      namespace=ns, dry_run=True)
