"""The record index answers as CoreDNS's kubernetes plugin does (pure: no server, no sockets)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.dns import records
from tests.dns import fixtures as f

Z = "cluster.local"


def index(**kwargs) -> records.Index:
    found = records.Index(clock=lambda: 1_700_000_000, **kwargs)
    found.synced = True
    for ns in ("default", "other"):
        found.put_namespace(f.namespace(ns))
    return found


def data(answer: records.Answer, rtype: str | None = None) -> list:
    return [r.data for r in answer.answer if rtype is None or r.type == rtype]


def test_cluster_ip_service_has_an_a_record_even_without_endpoints() -> None:
    idx = index()
    idx.put_service(f.service("web", cluster_ip="10.96.0.20"))
    found = idx.answer(f"web.default.svc.{Z}.", "A")
    assert found.rcode == "NOERROR" and data(found) == ["10.96.0.20"]
    assert found.answer[0].ttl == records.DEFAULT_TTL == 5
    assert found.answer[0].name == f"web.default.svc.{Z}."


def test_names_match_case_insensitively_and_keep_the_asked_case() -> None:
    idx = index()
    idx.put_service(f.service("web"))
    found = idx.answer("WeB.Default.SVC.Cluster.Local.", "A")
    assert data(found) == ["10.96.0.20"] and found.answer[0].name == "WeB.Default.SVC.Cluster.Local."


def test_aaaa_on_an_ipv4_service_is_nodata_with_soa() -> None:
    idx = index()
    idx.put_service(f.service("web"))
    found = idx.answer(f"web.default.svc.{Z}.", "AAAA")
    assert found.rcode == "NOERROR" and not found.answer
    assert [r.type for r in found.authority] == ["SOA"]
    soa = found.authority[0].data
    assert soa[0] == f"ns.dns.{Z}." and soa[1] == f"hostmaster.{Z}." and soa[-1] == 5  # minimum = TTL


def test_txt_on_a_service_is_nodata_unknown_service_is_nxdomain() -> None:
    idx = index()
    idx.put_service(f.service("web"))
    assert idx.answer(f"web.default.svc.{Z}.", "TXT").rcode == "NOERROR"
    missing = idx.answer(f"nope.default.svc.{Z}.", "A")
    assert missing.rcode == "NXDOMAIN" and missing.authority[0].type == "SOA"


def test_before_sync_a_would_be_nxdomain_is_servfail() -> None:
    idx = records.Index()
    assert idx.answer(f"nope.default.svc.{Z}.", "A").rcode == "SERVFAIL"
    idx.synced = True
    assert idx.answer(f"nope.default.svc.{Z}.", "A").rcode == "NXDOMAIN"


def test_headless_service_answers_ready_endpoints_deduplicated() -> None:
    idx = index()
    idx.put_service(f.service("db", cluster_ip="None"))
    idx.put_slice(f.endpoint_slice("db", [f.endpoint("10.1.0.5"), f.endpoint("10.1.0.6", ready=None),
                                          f.endpoint("10.1.0.7", ready=False)],
                                   ports=[{"name": "a", "port": 1, "protocol": "TCP"},
                                          {"name": "b", "port": 2, "protocol": "TCP"}]))
    found = idx.answer(f"db.default.svc.{Z}.", "A")
    assert sorted(data(found)) == ["10.1.0.5", "10.1.0.6"]


def test_headless_service_without_ready_endpoints_is_nxdomain() -> None:
    idx = index()
    idx.put_service(f.service("db", cluster_ip="None"))
    assert idx.answer(f"db.default.svc.{Z}.", "A").rcode == "NXDOMAIN"
    idx.put_slice(f.endpoint_slice("db", [f.endpoint("10.1.0.7", ready=False)]))
    assert idx.answer(f"db.default.svc.{Z}.", "A").rcode == "NXDOMAIN"


def test_publish_not_ready_addresses_counts_every_endpoint() -> None:
    idx = index()
    idx.put_service(f.service("db", cluster_ip="None", publishNotReadyAddresses=True))
    idx.put_slice(f.endpoint_slice("db", [f.endpoint("10.1.0.7", ready=False)]))
    assert data(idx.answer(f"db.default.svc.{Z}.", "A")) == ["10.1.0.7"]


def test_slices_are_grouped_by_the_service_name_label_and_relabelling_moves_them() -> None:
    idx = index()
    idx.put_service(f.service("a", cluster_ip="None"))
    idx.put_service(f.service("b", cluster_ip="None"))
    eps = f.endpoint_slice("a", [f.endpoint("10.1.0.1")], name="shared")
    idx.put_slice(eps)
    assert data(idx.answer(f"a.default.svc.{Z}.", "A")) == ["10.1.0.1"]
    moved = f.endpoint_slice("b", [f.endpoint("10.1.0.1")], name="shared")
    idx.put_slice(moved)
    assert idx.answer(f"a.default.svc.{Z}.", "A").rcode == "NXDOMAIN"
    assert data(idx.answer(f"b.default.svc.{Z}.", "A")) == ["10.1.0.1"]
    idx.remove_slice(moved)
    assert idx.answer(f"b.default.svc.{Z}.", "A").rcode == "NXDOMAIN"


def test_slice_without_the_label_and_fqdn_slices_serve_nothing() -> None:
    idx = index()
    idx.put_service(f.service("db", cluster_ip="None"))
    unlabelled = f.endpoint_slice("db", [f.endpoint("10.1.0.1")])
    unlabelled["metadata"]["labels"] = {}
    idx.put_slice(unlabelled)
    fqdn = f.endpoint_slice("db", [{"addresses": ["example.com"]}], name="x", address_type="FQDN")
    idx.put_slice(fqdn)
    assert idx.answer(f"db.default.svc.{Z}.", "A").rcode == "NXDOMAIN"


def test_srv_for_a_cluster_ip_service_targets_the_service_name() -> None:
    idx = index()
    idx.put_service(f.service("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                            {"name": "dns", "port": 53, "protocol": "UDP"}]))
    found = idx.answer(f"_http._tcp.web.default.svc.{Z}.", "SRV")
    assert data(found) == [(0, 100, 80, f"web.default.svc.{Z}.")]
    assert [(r.name, r.type, r.data) for r in found.additional] == [(f"web.default.svc.{Z}.", "A", "10.96.0.20")]
    every = idx.answer(f"web.default.svc.{Z}.", "SRV")
    assert sorted(d[2] for d in data(every)) == [53, 80] and all(d[1] == 50 for d in data(every))
    assert data(idx.answer(f"_dns._udp.web.default.svc.{Z}.", "SRV")) == [(0, 100, 53, f"web.default.svc.{Z}.")]
    assert idx.answer(f"_dns._tcp.web.default.svc.{Z}.", "SRV").rcode == "NXDOMAIN"
    assert idx.answer(f"_nope._tcp.web.default.svc.{Z}.", "SRV").rcode == "NXDOMAIN"


def test_srv_for_a_headless_service_has_one_record_per_endpoint_with_host_targets() -> None:
    idx = index()
    idx.put_service(f.service("db", cluster_ip="None"))
    idx.put_slice(f.endpoint_slice("db", [f.endpoint("10.1.0.5", hostname="db-0"), f.endpoint("10.1.0.6")],
                                   ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]))
    found = idx.answer(f"_pg._tcp.db.default.svc.{Z}.", "SRV")
    assert sorted(data(found)) == [(0, 50, 5432, f"10-1-0-6.db.default.svc.{Z}."),
                                   (0, 50, 5432, f"db-0.db.default.svc.{Z}.")]
    assert sorted((r.name, r.data) for r in found.additional) == [
        (f"10-1-0-6.db.default.svc.{Z}.", "10.1.0.6"), (f"db-0.db.default.svc.{Z}.", "10.1.0.5")]


def test_headless_service_without_ports_has_a_records_but_no_srv() -> None:
    idx = index()
    idx.put_service(f.service("db", cluster_ip="None", ports=[]))
    idx.put_slice(f.endpoint_slice("db", [f.endpoint("10.1.0.5")], ports=[]))
    assert data(idx.answer(f"db.default.svc.{Z}.", "A")) == ["10.1.0.5"]
    srv = idx.answer(f"db.default.svc.{Z}.", "SRV")
    assert srv.rcode == "NOERROR" and not srv.answer


def test_endpoint_names_by_hostname_and_dashed_ip() -> None:
    idx = index()
    idx.put_service(f.service("db", cluster_ip="None"))
    idx.put_slice(f.endpoint_slice("db", [f.endpoint("10.1.0.5", hostname="db-0"), f.endpoint("10.1.0.6")]))
    assert data(idx.answer(f"db-0.db.default.svc.{Z}.", "A")) == ["10.1.0.5"]
    assert data(idx.answer(f"10-1-0-6.db.default.svc.{Z}.", "A")) == ["10.1.0.6"]
    assert idx.answer(f"10-1-0-5.db.default.svc.{Z}.", "A").rcode == "NXDOMAIN"  # it has a hostname
    assert idx.answer(f"db-1.db.default.svc.{Z}.", "A").rcode == "NXDOMAIN"


def test_endpoint_names_of_a_cluster_ip_service_work_too() -> None:
    idx = index()
    idx.put_service(f.service("web"))
    idx.put_slice(f.endpoint_slice("web", [f.endpoint("10.1.0.9", hostname="h")]))
    assert data(idx.answer(f"h.web.default.svc.{Z}.", "A")) == ["10.1.0.9"]


def test_external_name_is_a_cname_for_every_type_and_refuses_prefixes() -> None:
    idx = index()
    idx.put_service(f.service("ext", cluster_ip=None, type="ExternalName", externalName="db.example.com"))
    for qtype in ("A", "AAAA", "CNAME"):
        found = idx.answer(f"ext.default.svc.{Z}.", qtype)
        assert [(r.type, r.data) for r in found.answer] == [("CNAME", "db.example.com.")], qtype
    assert idx.answer(f"_http._tcp.ext.default.svc.{Z}.", "SRV").rcode == "NXDOMAIN"
    assert idx.answer(f"host.ext.default.svc.{Z}.", "A").rcode == "NXDOMAIN"


def test_external_name_inside_the_zone_is_chased() -> None:
    idx = index()
    idx.put_service(f.service("web"))
    idx.put_service(f.service("alias", cluster_ip=None, type="ExternalName",
                              externalName=f"web.default.svc.{Z}"))
    found = idx.answer(f"alias.default.svc.{Z}.", "A")
    assert [(r.type, r.data) for r in found.answer] == [("CNAME", f"web.default.svc.{Z}."), ("A", "10.96.0.20")]


def test_external_name_with_an_ip_value_has_no_record() -> None:
    idx = index()
    idx.put_service(f.service("ext", cluster_ip=None, type="ExternalName", externalName="192.0.2.1"))
    assert idx.answer(f"ext.default.svc.{Z}.", "A").rcode == "NXDOMAIN"


def test_pods_insecure_decodes_the_ip_when_the_namespace_exists() -> None:
    idx = index()
    assert data(idx.answer(f"10-1-2-3.default.pod.{Z}.", "A")) == ["10.1.2.3"]
    assert idx.answer(f"10-1-2-3.nowhere.pod.{Z}.", "A").rcode == "NXDOMAIN"
    assert idx.answer(f"not-an-ip.default.pod.{Z}.", "A").rcode == "NXDOMAIN"
    assert data(idx.answer(f"fd00--1.default.pod.{Z}.", "AAAA")) == ["fd00::1"]
    assert idx.answer(f"10-1-2-3.default.pod.{Z}.", "AAAA").rcode == "NOERROR"  # NODATA


def test_pods_verified_needs_such_a_pod_and_disabled_answers_nothing() -> None:
    idx = index(pods="verified")
    assert idx.answer(f"10-1-2-3.default.pod.{Z}.", "A").rcode == "NXDOMAIN"
    idx.put_pod(f.pod("p", "10.1.2.3"))
    assert data(idx.answer(f"10-1-2-3.default.pod.{Z}.", "A")) == ["10.1.2.3"]
    assert idx.answer(f"10-1-2-3.other.pod.{Z}.", "A").rcode == "NXDOMAIN"
    idx.remove_pod(f.pod("p", "10.1.2.3"))
    assert idx.answer(f"10-1-2-3.default.pod.{Z}.", "A").rcode == "NXDOMAIN"
    assert index(pods="disabled").answer(f"10-1-2-3.default.pod.{Z}.", "A").rcode == "NXDOMAIN"


def test_zone_structure_names_are_nodata_and_bad_shapes_nxdomain() -> None:
    idx = index()
    for name in (f"{Z}.", f"svc.{Z}.", f"pod.{Z}.", f"default.svc.{Z}."):
        found = idx.answer(name, "A")
        assert found.rcode == "NOERROR" and not found.answer and found.authority, name
    assert idx.answer(f"nowhere.svc.{Z}.", "A").rcode == "NXDOMAIN"
    assert idx.answer(f"web.default.foo.{Z}.", "A").rcode == "NXDOMAIN"
    assert idx.answer(f"a.b.c.d.e.default.svc.{Z}.", "A").rcode == "NXDOMAIN"


def test_apex_soa_ns_and_dns_version() -> None:
    idx = index()
    soa = idx.answer(f"{Z}.", "SOA")
    assert soa.answer[0].type == "SOA" and soa.answer[0].data[2] == 1_700_000_000
    assert data(idx.answer(f"{Z}.", "NS")) == [f"ns.dns.{Z}."]
    version = idx.answer(f"dns-version.{Z}.", "TXT")
    assert data(version) == ["1.1.0"] and version.answer[0].ttl == 28800


def test_names_outside_the_zone_are_refused_as_outside() -> None:
    idx = index()
    for name in ("example.com.", ".", "local.", "cluster.local.evil.com."):
        found = idx.answer(name, "A")
        assert found.outside and found.rcode == "REFUSED", name
    assert index(zone="Cluster.Local.").answer(f"svc.{Z}.", "A").rcode == "NOERROR"


def test_zone_transfers_are_refused() -> None:
    assert index().answer(f"{Z}.", "AXFR").rcode == "REFUSED"


def test_ptr_for_cluster_ips_and_endpoints_else_outside() -> None:
    idx = index()
    idx.put_service(f.service("web", cluster_ip="10.96.0.20"))
    idx.put_service(f.service("db", cluster_ip="None"))
    idx.put_slice(f.endpoint_slice("db", [f.endpoint("10.1.0.5", hostname="db-0")]))
    assert data(idx.answer("20.0.96.10.in-addr.arpa.", "PTR")) == [f"web.default.svc.{Z}."]
    assert data(idx.answer("5.0.1.10.in-addr.arpa.", "PTR")) == [f"db-0.db.default.svc.{Z}."]
    assert idx.answer("1.2.3.4.in-addr.arpa.", "PTR").outside


def test_removing_a_service_and_namespace_takes_their_names_away() -> None:
    idx = index()
    svc = f.service("web")
    idx.put_service(svc)
    idx.remove_service(svc)
    assert idx.answer(f"web.default.svc.{Z}.", "A").rcode == "NXDOMAIN"
    idx.remove_namespace(f.namespace("other"))
    assert idx.answer(f"other.svc.{Z}.", "A").rcode == "NXDOMAIN"


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="ttl"):
        records.Index(ttl=3601)
    with pytest.raises(ValueError, match="pods"):
        records.Index(pods="sometimes")
    with pytest.raises(ValueError, match="cluster domain"):
        records.Index(zone=".")


def test_hostile_objects_do_not_break_answers() -> None:
    """What a write could put in an object the informer caches: wrong types everywhere."""
    idx = index()
    idx.put_service({"metadata": {"name": "web", "namespace": "default"},
                     "spec": {"clusterIP": "not-an-ip", "ports": ["x", {"port": "80", "name": 3}]}})
    idx.put_slice({"metadata": {"name": "s", "namespace": "default", "labels": {records.SERVICE_NAME_LABEL: "web"}},
                   "addressType": "IPv4", "endpoints": ["x", {"addresses": [1, "999.1.1.1", "10.0.0.1"],
                                                          "conditions": None}], "ports": [None]})
    for qtype in ("A", "SRV", "TXT"):
        assert idx.answer(f"web.default.svc.{Z}.", qtype).rcode in ("NXDOMAIN", "NOERROR")
    assert idx.answer(f"10-0-0-1.web.default.svc.{Z}.", "A").rcode in ("NXDOMAIN", "NOERROR")


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)


@given(st.one_of(ipv4, ipv6))
def test_dashed_pod_names_round_trip(ip: str) -> None:
    label = records.endpoint_hostname(ip, None)
    if label.startswith("-"):  # CoreDNS does not mend a leading "::": no such name is asked
        return
    assert records.pod_ip_from_label(label) == str(ipaddress.ip_address(ip))


@given(st.lists(ipv4, min_size=1, max_size=20, unique=True), st.lists(st.booleans(), min_size=20, max_size=20))
def test_headless_answer_is_exactly_the_ready_set(ips: list[str], ready: list[bool]) -> None:
    idx = index()
    idx.put_service(f.service("db", cluster_ip="None"))
    idx.put_slice(f.endpoint_slice("db", [f.endpoint(ip, ready=r) for ip, r in zip(ips, ready, strict=False)]))
    expected = {ip for ip, r in zip(ips, ready, strict=False) if r}
    found = idx.answer(f"db.default.svc.{Z}.", "A")
    if expected:
        assert set(data(found)) == expected and len(data(found)) == len(expected)
    else:
        assert found.rcode == "NXDOMAIN"


@given(st.text(alphabet=st.sampled_from("abc.-_*019"), max_size=40), st.sampled_from(["A", "AAAA", "SRV", "TXT", "PTR"]))
def test_any_name_gets_an_answer_not_an_exception(prefix: str, qtype: str) -> None:
    idx = index()
    idx.put_service(f.service("a", cluster_ip="None"))
    idx.put_slice(f.endpoint_slice("a", [f.endpoint("10.0.0.1")]))
    found = idx.answer(f"{prefix}.svc.{Z}." if prefix else f"svc.{Z}.", qtype)
    assert found.rcode in ("NOERROR", "NXDOMAIN", "REFUSED")


def test_external_names_pointing_at_each_other_end() -> None:
    idx = index()
    idx.put_service(f.service("a", cluster_ip=None, type="ExternalName", externalName=f"b.default.svc.{Z}"))
    idx.put_service(f.service("b", cluster_ip=None, type="ExternalName", externalName=f"a.default.svc.{Z}"))
    idx.put_service(f.service("self", cluster_ip=None, type="ExternalName", externalName=f"self.default.svc.{Z}"))
    loop = idx.answer(f"a.default.svc.{Z}.", "A")
    assert loop.rcode == "NOERROR" and 1 < len(loop.answer) <= records.MAX_CNAME_DEPTH + 1
    assert all(r.type == "CNAME" for r in loop.answer)
    assert len(idx.answer(f"self.default.svc.{Z}.", "A").answer) <= records.MAX_CNAME_DEPTH + 1


def test_dual_stack_service_answers_a_and_aaaa() -> None:
    idx = index()
    svc = f.service("web")
    svc["spec"]["clusterIPs"] = ["10.96.0.20", "fd00::20"]
    idx.put_service(svc)
    assert data(idx.answer(f"web.default.svc.{Z}.", "A")) == ["10.96.0.20"]
    assert data(idx.answer(f"web.default.svc.{Z}.", "AAAA")) == ["fd00::20"]
    srv = idx.answer(f"_http._tcp.web.default.svc.{Z}.", "SRV")
    assert len(srv.answer) == 2 and {r.type for r in srv.additional} == {"A", "AAAA"}
