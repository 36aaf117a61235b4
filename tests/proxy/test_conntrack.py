"""The UDP conntrack cleanup's pure part: which entries of `conntrack -L -p udp` go after a sync."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconcile.proxy import conntrack, model

LISTING = """\
udp      17 22 src=10.240.0.9 dst=10.230.0.10 sport=40000 dport=53 src=10.240.0.5 dst=10.240.0.9 sport=53 dport=40000 mark=0 use=1
udp      17 25 src=10.240.0.9 dst=10.230.0.10 sport=40001 dport=53 src=10.240.0.6 dst=10.240.0.9 sport=53 dport=40001 [ASSURED] mark=0 use=1
udp      17 29 src=192.0.2.2 dst=10.230.0.10 sport=40002 dport=53 [UNREPLIED] src=10.230.0.10 dst=192.0.2.2 sport=53 dport=40002 mark=0 use=1
udp      17 29 src=192.0.2.2 dst=192.0.2.2 sport=40003 dport=30053 src=10.240.0.5 dst=192.0.2.2 sport=53 dport=40003 mark=0 use=1
udp      17 29 src=192.0.2.2 dst=192.0.2.2 sport=40004 dport=30053 src=172.16.9.9 dst=192.0.2.2 sport=53 dport=40004 mark=0 use=1
udp      17 22 src=192.0.2.2 dst=10.255.255.53 sport=58838 dport=53 src=10.255.255.53 dst=192.0.2.2 sport=53 dport=58838 mark=0 use=1
tcp      6 431999 ESTABLISHED src=10.240.0.9 dst=10.230.0.10 sport=40005 dport=53 src=10.240.0.5 dst=10.240.0.9 sport=53 dport=40005 [ASSURED] mark=0 use=1
conntrack v1.4.7 (conntrack-tools): 7 flow entries have been shown.
"""


def dns(*endpoints: model.Endpoint, protocol: str = "udp", node_port: int = 30053) -> model.ServicePort:
    return model.ServicePort(namespace="kube-system", name="dns", port_name="dns", protocol=protocol,
                             cluster_ip="10.230.0.10", port=53, node_port=node_port, endpoints=endpoints)


def test_parse_reads_udp_entries_only() -> None:
    flows = conntrack.parse(LISTING)
    assert len(flows) == 6
    assert flows[0] == conntrack.Flow("10.230.0.10", 53, "10.240.0.5")
    assert flows[2] == conntrack.Flow("10.230.0.10", 53, "10.230.0.10")  # never NATed: no endpoint then


def test_removed_endpoints_and_un_natted_flows_go_the_serving_stay() -> None:
    port = dns(model.Endpoint("10.240.0.6", 53))  # 10.240.0.5 was removed
    deletions = conntrack.plan(conntrack.parse(LISTING), [port], ["10.240.0.0/24"])
    assert deletions == [
        conntrack.Deletion("10.230.0.10", 53, "10.230.0.10"),  # made while the service had no endpoint
        conntrack.Deletion("10.230.0.10", 53, "10.240.0.5"),
        conntrack.Deletion("192.0.2.2", 30053, "10.240.0.5"),  # through the node port
    ]  # not: the serving endpoint, another cluster's node-port endpoint, another address, TCP


def test_a_not_serving_endpoint_is_stale_a_serving_terminating_one_is_not() -> None:
    port = dns(model.Endpoint("10.240.0.5", 53, ready=False, serving=False),
               model.Endpoint("10.240.0.6", 53, ready=False, serving=True, terminating=True))
    deletions = conntrack.plan(conntrack.parse(LISTING), [port], ["10.240.0.0/24"])
    assert conntrack.Deletion("10.230.0.10", 53, "10.240.0.5") in deletions
    assert all(d.reply_src != "10.240.0.6" for d in deletions)


def test_tcp_service_ports_are_never_cleaned() -> None:
    port = dns(protocol="tcp")
    assert conntrack.plan(conntrack.parse(LISTING), [port], ["10.240.0.0/24"]) == []
    assert conntrack.flush([port], []) == 0  # and nothing is even listed


def test_deletion_command() -> None:
    assert conntrack.Deletion("10.230.0.10", 53, "10.240.0.5").args() == [
        "conntrack", "-D", "-p", "udp", "--orig-dst", "10.230.0.10", "--orig-port-dst", "53",
        "--reply-src", "10.240.0.5"]


@given(st.text(max_size=300))
def test_parse_never_raises(text: str) -> None:
    for flow in conntrack.parse(text):
        assert flow.orig_dport >= 0
