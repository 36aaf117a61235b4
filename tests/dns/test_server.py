"""`reconcile dns` against a real API server, asked by dnspython over UDP and TCP on 127.0.0.1.

The server runs as its own identity (system:serviceaccount:kube-system:coredns, bound to
system:coredns by the default policy), so these tests also prove that role is enough. No query
ever leaves the cluster domain except the one that checks names outside it are REFUSED.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from reconcile.client import api
from reconcile.pki import cluster as pki_cluster
from reconcile.testing import wait_for
from tests import support
from tests.dns import fixtures as f
from tests.dns.helpers import DnsProcess, ask

Z = "cluster.local"


@pytest.fixture(scope="module")
def server(api_server: str) -> Iterator[DnsProcess]:
    process = DnsProcess(api_server)
    try:
        # serving and synced: a name in the zone's structure answers NOERROR (not SERVFAIL, not a timeout)
        try:
            wait_for(lambda: ask(process.port, f"kube-system.svc.{Z}").rcode() == dns.rcode.NOERROR, timeout=30,
                     what="the DNS server to serve and sync")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; log: {process.tail()}") from None
        yield process
    finally:
        process.stop()


@pytest.fixture
def client(api_server: str) -> Iterator[api.Client]:
    with api.Client(support.connection(api_server).client_config()) as c:
        yield c


@pytest.fixture
def ns(client: api.Client) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.create("v1", "namespaces", f.namespace(name))
    return name


def addresses(reply: dns.message.Message) -> list[str]:
    return sorted(rd.address for rrset in reply.answer if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
                  for rd in rrset)


def test_a_service_created_after_a_query_resolves_at_once(server: DnsProcess, client: api.Client, ns: str) -> None:
    name = f"web.{ns}.svc.{Z}"
    first = ask(server.port, name)
    assert first.rcode() == dns.rcode.NXDOMAIN and first.authority[0].rdtype == dns.rdatatype.SOA
    client.create("v1", "services", f.service("web", ns, cluster_ip="10.96.7.7"), namespace=ns)
    reply = wait_for(lambda: (r := ask(server.port, name)).rcode() == dns.rcode.NOERROR and r, timeout=5,
                     what="the new Service's A record")
    assert addresses(reply) == ["10.96.7.7"] and reply.flags & dns.flags.AA
    assert addresses(ask(server.port, name, tcp=True)) == ["10.96.7.7"]
    client.delete("v1", "services", "web", namespace=ns)
    wait_for(lambda: ask(server.port, name).rcode() == dns.rcode.NXDOMAIN, timeout=5, what="the name to go")


def test_headless_service_follows_its_endpoint_slices(server: DnsProcess, client: api.Client, ns: str) -> None:
    client.create("v1", "services", f.service("db", ns, cluster_ip="None",
                                              ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]), namespace=ns)
    eps = f.endpoint_slice("db", [f.endpoint("10.244.1.5", hostname="db-0"), f.endpoint("10.244.1.6"),
                                  f.endpoint("10.244.1.7", ready=False)], ns,
                           ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}])
    client.create("discovery.k8s.io/v1", "endpointslices", eps, namespace=ns)
    name = f"db.{ns}.svc.{Z}"
    wait_for(lambda: addresses(ask(server.port, name)) == ["10.244.1.5", "10.244.1.6"], timeout=5,
             what="the ready endpoints")
    assert addresses(ask(server.port, f"db-0.{name}")) == ["10.244.1.5"]
    srv = ask(server.port, f"_pg._tcp.{name}", "SRV")
    assert sorted((rd.port, rd.target.to_text()) for rd in srv.answer[0]) == [
        (5432, f"10-244-1-6.{name}."), (5432, f"db-0.{name}.")]
    assert sorted(rd.address for rrset in srv.additional for rd in rrset) == ["10.244.1.5", "10.244.1.6"]
    # the endpoints turn not ready: a headless Service without ready endpoints is NXDOMAIN
    current = client.get("discovery.k8s.io/v1", "endpointslices", eps["metadata"]["name"], namespace=ns)
    for endpoint in current["endpoints"]:
        endpoint["conditions"] = {"ready": False}
    client.replace("discovery.k8s.io/v1", "endpointslices", current, namespace=ns)
    wait_for(lambda: ask(server.port, name).rcode() == dns.rcode.NXDOMAIN, timeout=5, what="NXDOMAIN")


def test_srv_external_name_and_pods(server: DnsProcess, client: api.Client, ns: str) -> None:
    client.create("v1", "services", f.service("web", ns, cluster_ip="10.96.8.8"), namespace=ns)
    client.create("v1", "services", f.service("ext", ns, cluster_ip=None, type="ExternalName",
                                              externalName="db.example.com", ports=[]), namespace=ns)
    srv = wait_for(lambda: (r := ask(server.port, f"_http._tcp.web.{ns}.svc.{Z}", "SRV")).answer and r, timeout=5,
                   what="SRV")
    rd = srv.answer[0][0]
    assert (rd.priority, rd.weight, rd.port, rd.target.to_text()) == (0, 100, 80, f"web.{ns}.svc.{Z}.")
    cname = wait_for(lambda: (r := ask(server.port, f"ext.{ns}.svc.{Z}")).answer and r, timeout=5, what="CNAME")
    assert cname.answer[0].rdtype == dns.rdatatype.CNAME and cname.answer[0][0].target.to_text() == "db.example.com."
    assert addresses(ask(server.port, f"10-244-3-4.{ns}.pod.{Z}")) == ["10.244.3.4"]
    assert ask(server.port, f"10-244-3-4.no-such-ns.pod.{Z}").rcode() == dns.rcode.NXDOMAIN
    nodata = ask(server.port, f"web.{ns}.svc.{Z}", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer and nodata.authority


def test_names_outside_the_zone_are_refused_without_an_upstream(server: DnsProcess) -> None:
    reply = ask(server.port, "example.com")  # answered locally: no --upstream, nothing is forwarded
    assert reply.rcode() == dns.rcode.REFUSED and not reply.answer


def test_hostile_packets_do_not_stop_the_server(server: DnsProcess) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for junk in (b"", b"\x00", b"\xff" * 12, os.urandom(100), b"\x12\x34" + b"\x00\x00" * 5 + b"\xc0\x0c"):
            sock.sendto(junk, ("127.0.0.1", server.port))
    # a TCP client that announces a message and never sends it, and one that only connects
    with socket.create_connection(("127.0.0.1", server.port)) as slow, \
            socket.create_connection(("127.0.0.1", server.port)):
        slow.sendall(b"\x01\x00abc")
        assert ask(server.port, f"svc.{Z}").rcode() == dns.rcode.NOERROR
        assert ask(server.port, f"svc.{Z}", tcp=True).rcode() == dns.rcode.NOERROR
    assert server.process.poll() is None


def test_the_coredns_identity_may_read_no_secrets(api_server: str) -> None:
    conn = support.connection(api_server)
    pair = conn.user(pki_cluster.COREDNS.user, *pki_cluster.COREDNS.groups)
    with api.Client(conn.client_config(as_user=pair)) as dns_client:
        assert dns_client.list("v1", "services")["items"] is not None
        with pytest.raises(Exception, match="(?i)forbidden"):
            dns_client.list("v1", "secrets", namespace="kube-system")
        with pytest.raises(Exception, match="(?i)forbidden"):
            dns_client.create("v1", "services", f.service("evil", "default"), namespace="default")


def test_bad_dns_config_is_422_naming_the_field(client: api.Client, ns: str) -> None:
    from reconcile.core import errors

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "image": "x:1"}], "dnsPolicy": "None",
                    "dnsConfig": {"nameservers": ["not-an-ip"]}}}
    with pytest.raises(errors.Invalid) as caught:
        client.create("v1", "pods", pod, namespace=ns)
    assert [c["field"] for c in caught.value.causes] == ["spec.dnsConfig.nameservers[0]"]
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"selector": {"matchLabels": {"a": "b"}},
                           "template": {"metadata": {"labels": {"a": "b"}},
                                        "spec": {"containers": [{"name": "a", "image": "x:1"}], "dnsPolicy": "None"}}}}
    with pytest.raises(errors.Invalid) as caught:
        client.create("apps/v1", "deployments", deployment, namespace=ns)
    assert [c["field"] for c in caught.value.causes] == ["spec.template.spec.dnsConfig"]
    deployment["spec"]["template"]["spec"]["dnsConfig"] = {"nameservers": ["192.0.2.1"],
                                                          "options": [{"name": "ndots", "value": "2"}]}
    created = client.create("apps/v1", "deployments", deployment, namespace=ns)
    assert created["spec"]["template"]["spec"]["dnsConfig"]["options"] == [{"name": "ndots", "value": "2"}]
