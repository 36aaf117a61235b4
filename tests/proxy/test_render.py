"""The proxy's pure parts: Services + EndpointSlices -> service ports -> an nft rule set.

Property tests of the renderer (what each Service maps to, for any mix of endpoint conditions and
traffic policies) and, where `nft` is installed, `nft -c` (check only: nothing is applied) on
generated rule sets, so the text is always one valid transaction.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.proxy import model, netfilter, render
from tests import prerequisites

NODE = render.NodeInfo("node-a", pod_cidrs=("10.232.1.0/24", "10.232.2.0/24"))

endpoints = st.builds(
    model.Endpoint,
    ip=st.integers(2, 254).map(lambda i: f"10.232.{1 + i % 2}.{i}"),
    port=st.integers(1, 65535),
    node=st.sampled_from(["node-a", "node-b", ""]),
    ready=st.booleans(), serving=st.booleans(), terminating=st.booleans(),
)


@st.composite
def service_ports(draw: st.DrawFn) -> list[model.ServicePort]:
    count = draw(st.integers(0, 6))
    out = []
    for i in range(count):
        eps = draw(st.lists(endpoints, max_size=5, unique_by=lambda e: (e.ip, e.port)))
        out.append(model.ServicePort(
            namespace="ns", name=f"svc{i}", port_name=draw(st.sampled_from(["", "http", "dns"])),
            protocol=draw(st.sampled_from(["tcp", "udp", "sctp"])), cluster_ip=f"10.96.0.{10 + i}",
            port=draw(st.integers(1, 65535)), node_port=draw(st.sampled_from([0, 30000 + i])),
            affinity_seconds=draw(st.sampled_from([0, 10800, 5])), internal_local=draw(st.booleans()),
            external_local=draw(st.booleans()), endpoints=tuple(sorted(eps))))
    return out


def ip_key(sp: model.ServicePort) -> str:
    return f"{sp.cluster_ip} . {sp.protocol} . {sp.port} : "


def element_line(text: str, name: str) -> str:
    found = [line for line in text.splitlines() if line.startswith(f"add element ip {render.table_name('node-a')} {name} ")]
    return found[0] if found else ""


@given(service_ports())
@settings(max_examples=200, deadline=None)
def test_every_service_port_maps_to_exactly_what_kube_proxy_would(ports: list[model.ServicePort]) -> None:
    text = render.render(ports, NODE)
    services = element_line(text, "service-ips")
    no_endpoints = element_line(text, "no-endpoint-services")
    nodeports = element_line(text, "service-nodeports")
    no_nodeports = element_line(text, "no-endpoint-nodeports")
    for sp in ports:
        cluster = model.cluster_endpoints(sp)
        local = model.local_endpoints(sp, "node-a")
        key = ip_key(sp)
        in_services, in_rejects = key in services, key in no_endpoints
        assert in_services != in_rejects, "each cluster IP key is in exactly one map"
        if not cluster:
            assert f"{key}goto reject-chain" in no_endpoints
            assert render.hashed("service-", sp.id) not in text
        elif sp.internal_local and not local:
            assert f"{key}drop" in no_endpoints
        elif sp.affinity_seconds:
            chain = render.hashed("local-" if sp.internal_local else "service-", sp.id)
            assert f"{key}goto {chain}" in services
        else:  # a shared pick chain over this key's elements: exactly the usable endpoints, uniformly
            chosen = local if sp.internal_local else cluster
            assert f"{key}goto pick-{len(chosen)}" in services
            assert picked(text, f"cluster-endpoints-{sp.protocol}", f"{sp.cluster_ip} . {sp.port}",
                          f"pick-{len(chosen)}") == {f"{e.ip}:{e.port}": Fraction(1, len(chosen)) for e in chosen}
        if cluster and sp.affinity_seconds:  # the service chain balances over exactly the usable endpoints
            chain = _chain(text, render.hashed("service-", sp.id))
            chances = choice_probabilities(chain)
            assert set(chances) == {render.hashed("endpoint-", f"{sp.id}__{e.ip}/{e.port}") for e in cluster}
            assert set(chances.values()) == {Fraction(1, len(cluster))}, "uniform over the usable endpoints"
        if cluster:
            assert {f"{e.ip} . {e.ip}" for e in cluster} <= set(element_line(text, "hairpin").split("{ ")[1]
                                                               .rstrip(" }").split(", "))
        if sp.node_port:
            port_key = f"{sp.protocol} . {sp.node_port} : "
            assert (port_key in nodeports) != (port_key in no_nodeports)
            if not cluster:
                assert f"{port_key}goto reject-chain" in no_nodeports
            elif sp.external_local and not local:
                assert f"{port_key}drop" in no_nodeports
            elif sp.external_local or sp.affinity_seconds:
                assert f"{port_key}goto {render.hashed('external-', sp.id)}" in nodeports
            else:
                assert f"{port_key}goto nodeport-pick-{len(cluster)}" in nodeports
                assert picked(text, f"nodeport-endpoints-{sp.protocol}", str(sp.node_port),
                              f"nodeport-pick-{len(cluster)}") == {f"{e.ip}:{e.port}": Fraction(1, len(cluster))
                                                                    for e in cluster}
            if sp.external_local and local and not sp.affinity_seconds:  # outside clients: local endpoints only
                assert picked(text, f"nodeport-local-endpoints-{sp.protocol}", str(sp.node_port),
                              f"nodeport-local-{len(local)}") == {f"{e.ip}:{e.port}": Fraction(1, len(local))
                                                                   for e in local}
    assert render.render(ports, NODE) == text, "rendering is deterministic"


def map_elements(text: str, name: str) -> dict[str, str]:
    line = element_line(text, name)
    if not line:
        return {}
    items = line.split("{ ", 1)[1].rstrip(" }").split(", ")
    return dict(item.split(" : ", 1) for item in items)


def picked(text: str, map_name: str, key: str, chain_name: str) -> dict[str, Fraction]:
    """Each endpoint's chance (`ip:port`) when a pick chain looks `key . (random mod K)` up in
    `map_name`: the chain must use that map with its K, and elements 0..K-1 must all be there."""
    chain = _chain(text, chain_name)
    count = int(chain_name.rpartition("-")[2])
    assert f"numgen random mod {count} map @{map_name}" in chain
    elements = map_elements(text, map_name)
    found = [elements.get(f"{key} . {n}") for n in range(count)]
    assert None not in found and f"{key} . {count}" not in elements, (key, found)
    chances: dict[str, Fraction] = {}
    for value in found:
        address, port = value.split(" . ")
        chances[f"{address}:{port}"] = chances.get(f"{address}:{port}", Fraction(0)) + Fraction(1, count)
    return chances


def choice_probabilities(chain: str) -> dict[str, Fraction]:
    """Each endpoint's chance (by its chain, or `ip:port` when DNATed in place) from a service
    chain's choice rules (`numgen random mod K == 0 ACTION` fires with probability 1/K when
    reached; a plain ACTION ends the chain)."""
    chances: dict[str, Fraction] = {}
    reach = Fraction(1)
    action = r"(?:goto (endpoint-\S+)|meta l4proto \w+ dnat to (\S+))"
    for line in chain.splitlines():
        line = line.strip()
        if m := re.fullmatch(rf"numgen random mod (\d+) == 0 {action}", line):
            chances[m[2] or m[3]] = reach / int(m[1])
            reach -= reach / int(m[1])
        elif m := re.fullmatch(action, line):
            chances[m[1] or m[2]] = reach
            reach = Fraction(0)
    assert reach == 0, "the chain always ends in an endpoint"
    return chances


def _chain(text: str, name: str) -> str:
    start = text.index(f"\tchain {name} {{")
    return text[start:text.index("\t}", start)]


def test_not_ready_endpoints_get_nothing_while_one_is_ready_then_serving_terminating_is_the_fallback() -> None:
    ready = model.Endpoint("10.232.1.2", 80)
    not_ready = model.Endpoint("10.232.1.3", 80, ready=False, serving=False)
    terminating = model.Endpoint("10.232.1.4", 80, ready=False, serving=True, terminating=True)
    sp = model.ServicePort("ns", "web", "", "tcp", "10.96.0.10", 80, endpoints=(ready, not_ready, terminating))
    assert model.cluster_endpoints(sp) == [ready]
    assert model.cluster_endpoints(model.ServicePort(**{**sp.__dict__, "endpoints": (not_ready, terminating)})) \
        == [terminating]
    assert model.cluster_endpoints(model.ServicePort(**{**sp.__dict__, "endpoints": (not_ready,)})) == []


def test_route_localnet_for_node_ports_and_for_endpoints_on_loopback() -> None:
    pod = model.ServicePort("ns", "web", "", "tcp", "10.96.0.10", 80, endpoints=(model.Endpoint("10.232.1.2", 80),))
    assert not model.needs_route_localnet([pod])
    assert model.needs_route_localnet([pod, model.ServicePort(**{**pod.__dict__, "node_port": 30080})])
    # the `kubernetes` Service of an API server on 127.0.0.1: pods' connections are DNATed to loopback
    api = model.ServicePort("default", "kubernetes", "https", "tcp", "10.96.0.1", 443,
                            endpoints=(model.Endpoint("127.0.0.1", 6443),))
    assert model.needs_route_localnet([pod, api])


def test_affinity_keeps_client_ip_sets_with_the_timeout_and_stale_names_are_deleted() -> None:
    ep = model.Endpoint("10.232.1.2", 80)
    sp = model.ServicePort("ns", "web", "http", "tcp", "10.96.0.10", 80, affinity_seconds=30, endpoints=(ep,))
    text = render.render([sp], NODE, existing_chains=["endpoint-OLD-x", "services"],
                         existing_sets=["affinity-OLD-x", "service-ips"])
    affinity = render.hashed("affinity-", f"{sp.id}__10.232.1.2/80")
    assert f"set {affinity} {{ type ipv4_addr; flags dynamic,timeout; timeout 30s; }}" in text
    assert f"update @{affinity} {{ ip saddr }}" in text
    assert f"delete chain ip {render.table_name('node-a')} endpoint-OLD-x" in text
    assert f"delete set ip {render.table_name('node-a')} affinity-OLD-x" in text
    assert "delete chain ip reconcile-proxy-node-a services" not in text
    assert "delete set ip reconcile-proxy-node-a service-ips" not in text


def test_each_node_has_its_own_table_and_never_names_another() -> None:
    a = render.render([], render.NodeInfo("a"))
    b = render.render([], render.NodeInfo("b"))
    assert "reconcile-proxy-a " in a and "reconcile-proxy-b" not in a
    assert "reconcile-proxy-b " in b and "reconcile-proxy-a " not in b
    assert set(re.findall(r"\bip (reconcile-proxy-\S+)", a)) == {"reconcile-proxy-a"}
    long = render.table_name("n" * 253)
    assert long.startswith(render.TABLE_PREFIX) and len(long) < 64


def test_hostile_names_cannot_break_out_of_the_rule_text() -> None:
    """Names come from the API (validated there as DNS labels); the renderer still never lets one
    reach nft's parser: the readable part of a chain name keeps only [A-Za-z0-9/._-]."""
    sp = model.ServicePort("ns", 'x"; flush ruleset;\n#', "a b{}", "tcp", "10.96.0.10", 80,
                           endpoints=(model.Endpoint("10.232.1.2", 80),))
    text = render.render([sp], NODE)
    assert "flush ruleset" not in text.replace("flush_ruleset", "")
    assert all(re.fullmatch(r"[A-Za-z0-9/._-]+", name) for name in re.findall(r"goto (\S+?)(?:,| }|$)", text, re.M))
    if shutil.which("nft"):
        check = "\n".join(line for line in text.splitlines() if not line.startswith("delete ")) + "\n"
        assert subprocess.run(["nft", "-c", "-f", "-"], input=check, capture_output=True, text=True).returncode == 0


# --- model: what the proxy reads off the API objects ---------------------------------------------

def svc(name: str, **spec: object) -> dict:
    base = {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    return {"metadata": {"namespace": "ns", "name": name}, "spec": {**base, **spec}}


def eps_slice(service: str, *endpoints: dict, address_type: str = "IPv4", labels: dict | None = None,
              port_name: str = "http") -> dict:
    return {"metadata": {"namespace": "ns", "name": f"{service}-x",
                         "labels": {"kubernetes.io/service-name": service, **(labels or {})}},
            "addressType": address_type, "ports": [{"name": port_name, "port": 8080, "protocol": "TCP"}],
            "endpoints": list(endpoints)}


def test_model_skips_headless_externalname_and_other_proxies_services() -> None:
    services = [svc("headless", clusterIP="None"), svc("ext", type="ExternalName", clusterIP=None),
                svc("other", **{}), svc("ok")]
    services[2]["metadata"]["labels"] = {model.PROXY_NAME_LABEL: "someone-else"}
    assert [sp.name for sp in model.service_ports(services, [])] == ["ok"]


def test_model_matches_slices_by_label_port_name_and_family_and_defaults_conditions() -> None:
    slices = [
        eps_slice("web", {"addresses": ["10.232.1.2"]}),  # conditions absent: ready
        eps_slice("web", {"addresses": ["10.232.1.3"], "conditions": {"ready": False, "serving": True,
                                                                      "terminating": True}, "nodeName": "n1"}),
        eps_slice("web", {"addresses": ["fd00::1"]}, address_type="IPv6"),
        eps_slice("web", {"addresses": ["10.232.1.9"]}, port_name="other"),
        eps_slice("web", {"addresses": ["10.232.1.8"]}, labels={model.HEADLESS_LABEL: ""}),
        eps_slice("elsewhere", {"addresses": ["10.232.1.7"]}),
    ]
    [sp] = model.service_ports([svc("web", type="NodePort", sessionAffinity="ClientIP",
                                    ports=[{"name": "http", "port": 80, "nodePort": 30080}])], slices)
    assert [(e.ip, e.port, e.ready, e.serving, e.terminating, e.node) for e in sp.endpoints] == [
        ("10.232.1.2", 8080, True, True, False, ""), ("10.232.1.3", 8080, False, True, True, "n1")]
    assert sp.node_port == 30080 and sp.affinity_seconds == model.DEFAULT_AFFINITY_SECONDS
    assert model.service_ports([svc("web", ports=[{"name": "http", "port": 80, "nodePort": 30080}])],
                               slices)[0].node_port == 0  # ClusterIP: a stray nodePort is ignored


def test_node_pod_cidrs_are_read_normalized_and_junk_ignored() -> None:
    nodes = [{"spec": {"podCIDRs": ["10.232.2.0/24"]}}, {"spec": {"podCIDR": "10.232.1.7/24"}},
             {"spec": {"podCIDR": "junk"}}, {"spec": {"podCIDRs": ["fd00::/64"]}}, {}]
    assert model.node_pod_cidrs(nodes) == ["10.232.1.0/24", "10.232.2.0/24"]


# --- host safety ---------------------------------------------------------------------------------

ROUTES = [{"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"}, {"dst": "192.0.2.0/24", "dev": "eth0"},
          {"dst": "10.232.1.0/24", "dev": "rcn-abc"}, {"dst": "10.96.0.0/12", "dev": netfilter.DUMMY_DEVICE}]


def test_overlap_check_refuses_ranges_the_host_routes_and_allows_our_own_routes() -> None:
    netfilter.check_overlaps("10.96.0.0/12", ["10.232.1.0/24"], host_routes=ROUTES)
    with pytest.raises(netfilter.NetfilterError, match="service CIDR 192.0.2.0/25 overlaps the host's route"):
        netfilter.check_overlaps("192.0.2.0/25", [], host_routes=ROUTES)
    with pytest.raises(netfilter.NetfilterError, match="pod CIDR 192.0.2.0/26 overlaps"):
        netfilter.check_overlaps("10.96.0.0/12", ["192.0.2.0/26"], host_routes=ROUTES)
    with pytest.raises(netfilter.NetfilterError, match="overlaps the service CIDR"):
        netfilter.check_overlaps("10.96.0.0/12", ["10.100.0.0/24"], host_routes=ROUTES)
    assert netfilter.pod_devices(["10.232.1.0/24", "10.9.0.0/24"], host_routes=ROUTES) == ["rcn-abc"]


@given(service_ports())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_rule_sets_are_valid_nft_transactions(ports: list[model.ServicePort]) -> None:
    prerequisites.require_nft()
    text = render.render(ports, NODE, existing_chains=["endpoint-GONE"], existing_sets=["affinity-GONE"])
    # check mode: the kernel validates the whole transaction and applies nothing; the deletes of
    # chains that do not exist are dropped (they would fail the check on a host without the table)
    text = "\n".join(line for line in text.splitlines() if not line.startswith("delete ")) + "\n"
    done = subprocess.run(["nft", "-c", "-f", "-"], input=text, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@given(service_ports(), service_ports())
@settings(max_examples=100, deadline=None)
def test_a_render_from_the_last_texts_names_deletes_exactly_what_is_gone(before: list[model.ServicePort],
                                                                          after: list[model.ServicePort]) -> None:
    first = render.render(before, NODE)
    chains, sets = render.declared(first)
    assert {"services", "filter-input", "masquerading"} <= chains and {"service-ips", "pod-cidrs"} <= sets
    second = render.render(after, NODE, existing_chains=chains, existing_sets=sets)
    now_chains, now_sets = render.declared(second)
    table = render.table_name("node-a")
    deleted_chains = {line.split()[-1] for line in second.splitlines() if line.startswith(f"delete chain ip {table} ")}
    deleted_sets = {line.split()[-1] for line in second.splitlines() if line.startswith(f"delete set ip {table} ")}
    assert deleted_chains == chains - now_chains
    assert deleted_sets == sets - now_sets
