"""Pods' resolv.conf as the kubelet forms it (pure), and the API's dnsConfig validation."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reconcile.api.strategies import pods as pod_strategy
from reconcile.node import dnsconfig

HOST = dnsconfig.parse("# the node's\nnameserver 192.0.2.53\nnameserver 192.0.2.54 ; second\n"
                       "search old.example\nsearch corp.example\noptions rotate\noptions timeout:2 attempts:3\n")


def pod(ns: str = "shop", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": ns}, "spec": {"containers": [{"name": "a"}], **spec}}


def form(p: dict[str, Any], *, cluster_dns: tuple[str, ...] = ("10.96.0.10",), host: Any = HOST) -> dnsconfig.Formed:
    return dnsconfig.form(p, cluster_dns=cluster_dns, cluster_domain="cluster.local", host=host)


def test_host_file_parsing_accumulates_nameservers_and_keeps_the_last_search_and_options() -> None:
    assert HOST == dnsconfig.ResolvConf(("192.0.2.53", "192.0.2.54"), ("corp.example",), ("timeout:2", "attempts:3"))


def test_cluster_first_is_the_default() -> None:
    formed = form(pod())
    assert formed.conf.render() == ("nameserver 10.96.0.10\n"
                                    "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
                                    "options ndots:5\n")
    assert formed.warnings == ()


def test_cluster_first_on_host_network_is_default_and_with_host_net_is_cluster() -> None:
    assert form(pod(hostNetwork=True)).conf == HOST
    with_host_net = form(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")).conf
    assert with_host_net.nameservers == ("10.96.0.10",)


def test_cluster_first_without_cluster_dns_falls_back_with_missing_cluster_dns() -> None:
    formed = form(pod(), cluster_dns=())
    assert formed.conf == HOST and formed.warnings[0][0] == "MissingClusterDNS"


def test_default_uses_the_node_file_and_an_empty_flag_means_localhost() -> None:
    assert form(pod(dnsPolicy="Default")).conf == HOST
    assert form(pod(dnsPolicy="Default"), host=None).conf.render() == "nameserver 127.0.0.1\nsearch .\n"


def test_none_takes_only_dns_config() -> None:
    conf = form(pod(dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.1"], "searches": ["a.example"],
                                                 "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})).conf
    assert conf.render() == "nameserver 192.0.2.1\nsearch a.example\noptions ndots:2 edns0\n"


def test_dns_config_merges_into_cluster_first_and_the_pods_option_values_win() -> None:
    conf = form(pod(dnsConfig={"nameservers": ["10.96.0.10", "192.0.2.1"], "searches": ["svc.cluster.local", "x.y"],
                               "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]})).conf
    assert conf.nameservers == ("10.96.0.10", "192.0.2.1")
    assert conf.searches == ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example", "x.y")
    assert conf.options == ("ndots:1", "single-request")


def test_limits_cut_nameservers_and_searches_with_a_warning() -> None:
    formed = form(pod(dnsConfig={"nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
                                 "searches": [f"s{i}.example" for i in range(40)]}))
    assert len(formed.conf.nameservers) == 3 and len(formed.conf.searches) == 32
    assert [reason for reason, _ in formed.warnings] == ["DNSConfigForming", "DNSConfigForming"]


@given(st.lists(st.text(alphabet="abc.", min_size=1, max_size=300), max_size=60))
def test_the_search_line_always_fits(searches: list[str]) -> None:
    conf = form(pod(dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.1"], "searches": searches})).conf
    assert len(conf.searches) <= 32 and len(" ".join(conf.searches)) <= 2048
    assert len(set(conf.searches)) == len(conf.searches)


def causes(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["field"], c["message"]) for c in pod_strategy.dns_config_causes(spec)]


def test_validation_requires_nameservers_for_policy_none() -> None:
    assert causes({"dnsPolicy": "None"}) == [
        ("spec.dnsConfig", "Required value: must provide `dnsConfig` when dnsPolicy is None")]
    assert causes({"dnsPolicy": "None", "dnsConfig": {}})[0][0] == "spec.dnsConfig.nameservers"
    assert causes({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["192.0.2.1"]}}) == []


def test_validation_names_each_bad_field() -> None:
    found = causes({"dnsConfig": {"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "nope"],
                                  "searches": ["Bad_Name", "ok.example."], "options": [{"value": "1"}]}})
    fields = [f for f, _ in found]
    assert fields == ["spec.dnsConfig.nameservers", "spec.dnsConfig.nameservers[3]", "spec.dnsConfig.searches[0]",
                      "spec.dnsConfig.options[0]"]
    assert "must not have more than 3 nameservers" in found[0][1]
