"""Pure logic of Service allocation and validation (no etcd): ranges, bands, defaults, hostile specs."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.api import allocators
from reconcile.api.strategies import services


def test_parse_ranges() -> None:
    assert str(allocators.parse_cidr("10.96.0.0/12")) == "10.96.0.0/12"
    for bad, message in (("10.0.0.0/30", "at least 8"), ("fd00::/64", "IPv4"), ("10.0.0.1/24", "invalid CIDR"),
                         ("nonsense", "invalid CIDR")):
        with pytest.raises(ValueError, match=message):
            allocators.parse_cidr(bad)
    assert allocators.parse_port_range("30000-32767") == (30000, 32767)
    assert allocators.parse_port_range("31000") == (31000, 31000)
    for bad in ("a-b", "2-1", "0-10", "1-70000"):
        with pytest.raises(ValueError):
            allocators.parse_port_range(bad)


def test_bands_follow_upstream() -> None:
    ports = allocators.NodePortRange(None, "30000-32767")  # type: ignore[arg-type]
    assert ports.offset == 86  # min(max(16, 2768/32), 128)
    assert allocators.ClusterIPRange(None, "10.96.0.0/12").offset == 256  # type: ignore[arg-type]
    assert allocators.ClusterIPRange(None, "10.96.0.0/22").offset == 63  # type: ignore[arg-type]
    assert allocators.ClusterIPRange(None, "10.96.0.0/24").offset == 16  # type: ignore[arg-type]
    assert allocators.ClusterIPRange(None, "10.96.0.0/28").offset == 0  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_ip_index_is_inside_the_usable_range_only(value: int) -> None:
    ips = allocators.ClusterIPRange(None, "10.96.0.0/22")  # type: ignore[arg-type]
    ip = str(ipaddress.IPv4Address(value))
    index = ips.index(ip)
    network = ipaddress.ip_network("10.96.0.0/22")
    usable = ipaddress.IPv4Address(value) in network and ip not in ("10.96.0.0", "10.96.3.255")
    assert (index is not None) == usable
    if index is not None:
        assert ips.name(index) == ip
    assert ips.first == "10.96.0.1"


def test_defaults() -> None:
    svc = {"spec": {"type": "LoadBalancer", "ports": [{"port": 53, "protocol": "UDP"}, {"port": 80, "targetPort": 0}]}}
    services.default_service(svc)
    spec = svc["spec"]
    assert spec["ports"] == [{"port": 53, "protocol": "UDP", "targetPort": 53},
                             {"port": 80, "targetPort": 80, "protocol": "TCP"}]
    assert spec["externalTrafficPolicy"] == "Cluster" and spec["allocateLoadBalancerNodePorts"] is True
    external = {"spec": {"type": "ExternalName", "externalName": "a.example"}}
    services.default_service(external)
    assert "internalTrafficPolicy" not in external["spec"] and "ipFamilies" not in external["spec"]
    headless = {"spec": {"clusterIP": "None"}}
    services.default_service(headless)
    assert headless["spec"]["ipFamilyPolicy"] == "RequireDualStack" and services.validate_service(headless) == []


_text = st.one_of(st.text(max_size=12), st.sampled_from(["None", "10.96.0.1", "fd00::1", "http", "", "a--b"]))
_port = st.fixed_dictionaries({"port": st.integers(1, 65535)}, optional={
    "name": _text, "protocol": st.sampled_from(["TCP", "UDP", "SCTP"]),
    "targetPort": st.one_of(st.integers(-5, 70000), _text), "nodePort": st.integers(0, 65535),
    "appProtocol": _text})
_spec = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]),
    "clusterIP": _text, "clusterIPs": st.lists(_text, max_size=3), "ports": st.lists(_port, max_size=4),
    "selector": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2), "externalName": _text,
    "sessionAffinity": st.sampled_from(["None", "ClientIP"]),
    "sessionAffinityConfig": st.fixed_dictionaries({}, optional={"clientIP": st.fixed_dictionaries(
        {}, optional={"timeoutSeconds": st.integers(-1, 100000)})}),
    "ipFamilies": st.lists(st.sampled_from(["IPv4", "IPv6"]), max_size=2),
    "ipFamilyPolicy": st.sampled_from(["SingleStack", "PreferDualStack", "RequireDualStack"]),
    "externalTrafficPolicy": st.sampled_from(["Cluster", "Local"]),
    "internalTrafficPolicy": st.sampled_from(["Cluster", "Local"]), "publishNotReadyAddresses": st.booleans()})


@settings(max_examples=300, deadline=None)
@given(_spec, _spec)
def test_defaulting_and_validation_never_crash(spec: dict, old_spec: dict) -> None:
    """Any schema-valid spec, with hostile values: defaulting, validation and an update's carrying
    of allocated values answer with causes on spec fields, never an exception (a 500)."""
    svc = {"metadata": {"name": "x"}, "spec": spec}
    services.default_service(svc)
    assert all(c["field"].startswith("spec") for c in services.validate_service(svc))
    old = {"metadata": {"name": "x"}, "spec": old_spec}
    services.default_service(old)
    services.carry_allocated(old, svc)
    services.default_service(svc)
    services.validate_service(svc)
