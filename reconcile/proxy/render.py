"""Render the whole nftables rule set of one proxy instance: a pure function of its inputs.

The shape is kube-proxy's nftables mode (pkg/proxy/nftables/proxier.go), in a table of our own
per node (`ip reconcile-proxy-<node>`), so several node agents' proxies on one host never touch
each other's rules. The text starts with `table ... {}` + `flush table ...` and then the full
contents, so `nft -f` replaces the table in ONE transaction: a restarted proxy adopts its table
and live traffic never sees a half-written or empty rule set.

Chains (priorities relative to dstnat -100 / srcnat 100, as upstream):
- `filter-input`/`filter-output`/`filter-forward` (dstnat-10): `ct state new` jumps to the
  "no endpoints" checks (so the service IP is still visible), and on input the drop of
  non-loopback traffic to 127.0.0.0/8 that kube-proxy's iptables mode adds with route_localnet;
- `filter-output-post-dnat` (dstnat+10) and `filter-forward`: `cluster-ips-check`, after DNAT:
  a packet still addressed to a cluster IP hit no service port (rejected), anything else in the
  service CIDR is unallocated (dropped) — it never follows the default route;
- `nat-prerouting`/`nat-output` (dstnat) -> `services`; `nat-postrouting` (srcnat) -> `masquerading`.

Per Service port, as upstream: `service-ips`/`service-nodeports` verdict maps (one lookup per
packet, whatever the number of Services). Then, for programming speed (bench/services.py), not
a chain per Service but a chain per endpoint count K shared by every Service with K endpoints:
`pick-K` (to a cluster IP; marks off-cluster sources for masquerading) DNATs to element
`ip . port . (numgen random mod K)` of the port's protocol's map (`cluster-endpoints-tcp`, ...);
`nodeport-pick-K` (masquerades), and for `externalTrafficPolicy: Local` a small `external-` chain
per Service leading to `nodeport-direct-K` / `nodeport-local-K`, look up `nodePort . n` in
`nodeport-endpoints-<proto>` / `nodeport-local-endpoints-<proto>`. nft and the kernel pay per chain and per rule
that binds a set (an inline vmap or a named map in each of 10,000 chains is quadratic), while
map elements are cheap. Services with session affinity keep upstream's shape: `service-` (and
`local-`, `external-`) chains that choose by `numgen random mod K == 0` rules and an `endpoint-`
chain per endpoint with its `update @affinity-`. Hairpin is one `hairpin` set (`ip . ip` per
endpoint) in `masquerading`, matched only on DNATed connections (`ct status dnat`), as upstream marks
hairpin traffic in the endpoint's chain after its DNAT decision.

Differences from upstream, on purpose: node ports are also served on 127.0.0.1 (upstream's
iptables mode does, its nftables mode does not), which needs route_localnet on the pod bridges
(netfilter.py) and the loopback firewall rule below.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from reconcile.proxy import model

TABLE_PREFIX = "reconcile-proxy-"
MASQ_MARK = 0x4000  # 1 << masqueradeBit (14), upstream's default
# Set on forwarded pod-to-pod packets and on both directions of connections we DNATed to a pod;
# netfilter.allow_pod_forwarding accepts it in iptables' filter table (Docker's FORWARD DROP).
POD_TRAFFIC_MARK = 0x20000
NAME_LIMIT = 240
DSTNAT, SRCNAT = -100, 100


@dataclass(frozen=True)
class NodeInfo:
    """What the rules need to know of the node and the cluster."""

    name: str
    service_cidr: str = "10.96.0.0/12"
    pod_cidrs: Sequence[str] = field(default_factory=tuple)  # every node's pod CIDR (the local-traffic detector)


def table_name(node: str) -> str:
    """`reconcile-proxy-<node>` (a hash when the node name is too long for an nft name)."""
    name = TABLE_PREFIX + node
    if len(name) > 200:
        name = TABLE_PREFIX + hashlib.sha256(node.encode()).hexdigest()[:16]
    return name


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648's base32 alphabet, as base64.b32encode
_UNSAFE = re.compile(r"[^A-Za-z0-9/._-]")


@functools.lru_cache(maxsize=65536)
def hashed(prefix: str, name: str) -> str:
    """kube-proxy's chain names: prefix + first 8 base32 chars of sha256(name) + "-" + name, cut at 240."""
    # the first 40 bits give exactly the first 8 base32 characters of the whole digest's encoding
    bits = int.from_bytes(hashlib.sha256(name.encode()).digest()[:5], "big")
    digest = "".join(_B32[(bits >> (35 - 5 * i)) & 31] for i in range(8))
    # names come from the API (validated there); whatever else they hold never reaches nft's parser
    full = f"{prefix}{digest}-{_UNSAFE.sub('_', name)}"
    return full if len(full) <= NAME_LIMIT else full[: NAME_LIMIT - 3] + "..."


def _endpoint_name(sp: model.ServicePort, ep: model.Endpoint) -> str:
    return f"{sp.id}__{ep.ip}/{ep.port}"


@dataclass
class _Builder:
    sets: list[str] = field(default_factory=list)
    set_names: set[str] = field(default_factory=set)
    chains: dict[str, list[str]] = field(default_factory=dict)
    service_ips: list[str] = field(default_factory=list)
    service_nodeports: list[str] = field(default_factory=list)
    no_endpoint_services: list[str] = field(default_factory=list)
    no_endpoint_nodeports: list[str] = field(default_factory=list)
    endpoint_maps: dict[str, list[str]] = field(default_factory=dict)  # pick map -> its elements
    picks: set[str] = field(default_factory=set)  # the shared pick chains this Service's elements go to
    cluster_ips: set[str] = field(default_factory=set)
    endpoint_ips: set[str] = field(default_factory=set)


def _target(sp: model.ServicePort, ep: model.Endpoint) -> str:
    """A choice of `ep` under session affinity: a goto to the endpoint's own chain, which
    remembers the client (Services without affinity DNAT through the pick chains' maps)."""
    return f"goto {hashed('endpoint-', _endpoint_name(sp, ep))}"


def _choices(sp: model.ServicePort, endpoints: list[model.Endpoint]) -> list[str]:
    """Uniform random choice as rules, not as an inline `numgen ... vmap { ... }`: rule i of N
    fires with probability 1/(N-i) (iptables mode's `statistic` chain, so each endpoint gets 1/N).
    An inline vmap is an anonymous set, and the kernel binds each one by walking the whole
    transaction (`__nft_set_trans_bind`): one per Service made 10,000 Services quadratic
    (minutes, with the CPU stuck in the kernel). Only a connection's first packet sees this chain."""
    targets = [_target(sp, ep) for ep in endpoints]
    rules = [f"numgen random mod {len(targets) - i} == 0 {t}" for i, t in enumerate(targets[:-1])]
    return [*rules, targets[-1]]


def _balance(b: _Builder, chain: str, sp: model.ServicePort, endpoints: list[model.Endpoint], *,
             cluster_ip_masq: bool) -> None:
    rules: list[str] = []
    if cluster_ip_masq:
        rules.append(f"ip daddr {sp.cluster_ip} {sp.protocol} dport {sp.port} ip saddr != @pod-cidrs "
                     "jump mark-for-masquerade")
    if sp.affinity_seconds:
        for ep in endpoints:
            rules.append(f"ip saddr @{hashed('affinity-', _endpoint_name(sp, ep))} "
                         f"goto {hashed('endpoint-', _endpoint_name(sp, ep))}")
    rules.extend(_choices(sp, endpoints))
    b.chains[chain] = rules


def _endpoint_chain(b: _Builder, sp: model.ServicePort, ep: model.Endpoint) -> None:
    """Every endpoint is a hairpin candidate (set `hairpin`, matched in `masquerading`); with
    session affinity it also gets its chain, which remembers the client and DNATs."""
    b.endpoint_ips.add(ep.ip)
    if not sp.affinity_seconds:
        return
    name = hashed("endpoint-", _endpoint_name(sp, ep))
    if name in b.chains:
        return
    affinity = hashed("affinity-", _endpoint_name(sp, ep))
    b.set_names.add(affinity)
    b.sets.append(f"set {affinity} {{ type ipv4_addr; flags dynamic,timeout; timeout {sp.affinity_seconds}s; }}")
    b.chains[name] = [f"update @{affinity} {{ ip saddr }}", f"meta l4proto {sp.protocol} dnat to {ep.ip}:{ep.port}"]


PICKS = {  # the shared pick chains: name prefix -> (masquerade rule, the map they DNAT by)
    "pick": ("ip saddr != @pod-cidrs jump mark-for-masquerade", "cluster-endpoints"),  # to a cluster IP
    "nodeport-pick": ("jump mark-for-masquerade", "nodeport-endpoints"),  # to a node port (Cluster policy)
    "nodeport-direct": ("", "nodeport-endpoints"),  # Local policy, from a pod or (masqueraded) the host
    "nodeport-local": ("", "nodeport-local-endpoints"),  # Local policy, from elsewhere: client IP kept
}
# Each pick map is one per protocol (`cluster-endpoints-tcp`, ...): a map whose value is typed
# `th dport` cannot be used by a rule added in a later transaction ("conflicting protocols").
_PICK_KEYS = {"cluster-endpoints": "ip daddr . {proto} dport", "nodeport-endpoints": "{proto} dport",
              "nodeport-local-endpoints": "{proto} dport"}
PICK_MAPS = tuple(f"{name}-{proto}" for name in _PICK_KEYS for proto in model.PROTOCOLS.values())


def _pick(b: _Builder, kind: str, count: int) -> str:
    name = f"{kind}-{count}"
    b.picks.add(name)
    return name


def pick_chain(name: str) -> list[str]:
    """`pick-K` and its kin: DNAT to element `key . (random mod K)` of the chain's map. One chain
    per endpoint count serves every Service with that count, so a table of 10,000 Services has a
    few dozen chains, not 10,000 (nft and the kernel pay per chain and per rule that binds a map;
    elements are cheap: bench/services.py)."""
    kind, _, count = name.rpartition("-")
    masquerade, map_name = PICKS[kind]
    rules = [masquerade] if masquerade else []
    rules.extend(f"meta l4proto {proto} dnat to {_PICK_KEYS[map_name].format(proto=proto)} . "
                 f"numgen random mod {count} map @{map_name}-{proto}" for proto in model.PROTOCOLS.values())
    return rules


def _endpoints_into(b: _Builder, map_name: str, sp: model.ServicePort, key: str,
                    endpoints: list[model.Endpoint]) -> None:
    """Element `key . n : address . port` for the n-th endpoint, in the map of the port's protocol."""
    b.endpoint_maps.setdefault(f"{map_name}-{sp.protocol}", []).extend(
        f"{key} . {n} : {ep.ip} . {ep.port}" for n, ep in enumerate(endpoints))


def _service(b: _Builder, sp: model.ServicePort, node: str) -> None:
    cluster = model.cluster_endpoints(sp)
    local = model.local_endpoints(sp, node)
    ip_key = f"{sp.cluster_ip} . {sp.protocol} . {sp.port}"
    port_key = f"{sp.protocol} . {sp.node_port}"
    b.cluster_ips.add(sp.cluster_ip)
    if not cluster:  # no usable endpoint anywhere: every key rejects at once, no nat chains
        b.no_endpoint_services.append(f"{ip_key} : goto reject-chain")
        if sp.node_port:
            b.no_endpoint_nodeports.append(f"{port_key} : goto reject-chain")
        return
    if sp.affinity_seconds:
        _service_with_affinity(b, sp, cluster, local, ip_key, port_key)
        return
    b.endpoint_ips.update(ep.ip for ep in cluster)  # every endpoint used is a hairpin candidate
    if sp.internal_local or sp.external_local:
        b.endpoint_ips.update(ep.ip for ep in local)
    if sp.internal_local and not local:
        b.no_endpoint_services.append(f"{ip_key} : drop")
    else:
        chosen = local if sp.internal_local else cluster
        b.service_ips.append(f"{ip_key} : goto {_pick(b, 'pick', len(chosen))}")
        _endpoints_into(b, "cluster-endpoints", sp, f"{sp.cluster_ip} . {sp.port}", chosen)
    if not sp.node_port:
        return
    if sp.external_local and not local:
        b.no_endpoint_nodeports.append(f"{port_key} : drop")
        return
    _endpoints_into(b, "nodeport-endpoints", sp, str(sp.node_port), cluster)
    if not sp.external_local:
        b.service_nodeports.append(f"{port_key} : goto {_pick(b, 'nodeport-pick', len(cluster))}")
        return
    _endpoints_into(b, "nodeport-local-endpoints", sp, str(sp.node_port), local)
    direct = _pick(b, "nodeport-direct", len(cluster))
    external_chain = hashed("external-", sp.id)
    b.chains[external_chain] = [
        f"ip saddr @pod-cidrs goto {direct}",  # local pods: policy ignored (LB hairpin)
        "fib saddr type local jump mark-for-masquerade",  # the host itself: masqueraded to any endpoint
        f"fib saddr type local goto {direct}",
        f"goto {_pick(b, 'nodeport-local', len(local))}",  # everyone else: node-local endpoints, client IP kept
    ]
    b.service_nodeports.append(f"{port_key} : goto {external_chain}")


def _service_with_affinity(b: _Builder, sp: model.ServicePort, cluster: list[model.Endpoint],
                           local: list[model.Endpoint], ip_key: str, port_key: str) -> None:
    """Session affinity needs a rule per endpoint that remembers the client, so these Services
    keep chains of their own: `service-` (and `local-`) choose by rules, `endpoint-` DNAT."""
    service_chain = hashed("service-", sp.id)
    local_chain = hashed("local-", sp.id)
    external_chain = hashed("external-", sp.id)
    _balance(b, service_chain, sp, cluster, cluster_ip_masq=True)
    for ep in cluster:
        _endpoint_chain(b, sp, ep)
    if local and (sp.internal_local or sp.external_local):
        _balance(b, local_chain, sp, local, cluster_ip_masq=sp.internal_local)
        for ep in local:
            _endpoint_chain(b, sp, ep)
    if not sp.internal_local:
        b.service_ips.append(f"{ip_key} : goto {service_chain}")
    elif local:
        b.service_ips.append(f"{ip_key} : goto {local_chain}")
    else:
        b.no_endpoint_services.append(f"{ip_key} : drop")
    if not sp.node_port:
        return
    if sp.external_local and not local:
        b.no_endpoint_nodeports.append(f"{port_key} : drop")
        return
    if sp.external_local:
        b.chains[external_chain] = [
            f"ip saddr @pod-cidrs goto {service_chain}",  # local pods: policy ignored (LB hairpin)
            "fib saddr type local jump mark-for-masquerade",  # the host itself: masqueraded to any endpoint
            f"fib saddr type local goto {service_chain}",
            f"goto {local_chain}",  # everyone else: node-local endpoints, client IP kept
        ]
    else:
        b.chains[external_chain] = ["jump mark-for-masquerade", f"goto {service_chain}"]
    b.service_nodeports.append(f"{port_key} : goto {external_chain}")


MAPS = ("service-ips", "service-nodeports", "no-endpoint-services", "no-endpoint-nodeports", *PICK_MAPS)
SETS = ("pod-cidrs", "cluster-ips", "hairpin")
_FIXED_SETS = {
    "pod-cidrs": "set pod-cidrs { type ipv4_addr; flags interval; }",
    "cluster-ips": "set cluster-ips { type ipv4_addr; }",
    # `ip . ip` for every endpoint: after DNAT, a packet from an endpoint to itself is a hairpin
    "hairpin": "set hairpin { type ipv4_addr . ipv4_addr; }",
    "service-ips": "map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }",
    "service-nodeports": "map service-nodeports { type inet_proto . inet_service : verdict; }",
    "no-endpoint-services": "map no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict; }",
    "no-endpoint-nodeports": "map no-endpoint-nodeports { type inet_proto . inet_service : verdict; }",
    # key . (random mod K) -> the endpoint's address . port, for the pick chains (`typeof`: the
    # modulus there only names the key's type, numgen's 32-bit integer)
    **{f"{name}-{proto}": f"map {name}-{proto} {{ typeof {_PICK_KEYS[name].format(proto=proto)} . numgen random mod 2 "
       f": ip daddr . {proto} dport; }}" for name in _PICK_KEYS for proto in model.PROTOCOLS.values()},
}


@dataclass(frozen=True)
class _Fragment:
    """What one service port adds to the table (memoized: in a sync of 10,000 Services of which
    one changed, 9,999 fragments are the very objects of the last sync, and a delta skips them)."""

    chains: tuple[tuple[str, tuple[str, ...]], ...]
    sets: tuple[tuple[str, str], ...]
    elements: tuple[tuple[str, str], ...]  # (map name, element text)
    cluster_ip: str
    endpoint_ips: frozenset[str] = frozenset()
    picks: frozenset[str] = frozenset()  # the shared pick chains its elements name


@dataclass(frozen=True)
class Ruleset:
    """The whole table as data: what `render_full` writes out and `delta.render` diffs.

    `fragments` holds each service port's part, by its id; `base` the base and helper chains.
    `stale` are chains a partial sync emptied and left for the next sync to delete (as
    kube-proxy, which deletes a chain no earlier than the sync after the one that dropped the
    last map element pointing at it). `chains`, `sets` and `elements` are the whole table
    (`elements`: each set or map -> {key: element text}; a map's element text is `key : verdict`)."""

    table: str
    hooks: dict[str, str]  # base chain -> its `type ... hook ... priority ...; policy ...;` line
    base: dict[str, tuple[str, ...]]
    pod_cidrs: tuple[str, ...]
    fragments: dict[str, _Fragment]
    stale: frozenset[str] = frozenset()

    @functools.cached_property
    def _merged(self) -> tuple[dict[str, tuple[str, ...]], dict[str, str], dict[str, dict[str, str]]]:
        return merge(self.fragments.values())

    @functools.cached_property
    def chains(self) -> dict[str, tuple[str, ...]]:
        """Every chain -> its rules: base and helper chains first, then the services' sorted."""
        return {**self.base, **dict(sorted(self._merged[0].items()))}

    @functools.cached_property
    def sets(self) -> dict[str, str]:
        return {**_FIXED_SETS, **self._merged[1]}

    @functools.cached_property
    def elements(self) -> dict[str, dict[str, str]]:
        out = {name: dict(items) for name, items in self._merged[2].items()}
        out["pod-cidrs"] = {cidr: cidr for cidr in self.pod_cidrs}
        out["cluster-ips"] = {ip: ip for ip in sorted(self.cluster_ips)}
        out["hairpin"] = {f"{ip} . {ip}": f"{ip} . {ip}" for ip in sorted(self.endpoint_ips)}
        return {name: out[name] for name in (*SETS, *MAPS)}

    @functools.cached_property
    def cluster_ips(self) -> frozenset[str]:
        return frozenset(f.cluster_ip for f in self.fragments.values())

    @functools.cached_property
    def endpoint_ips(self) -> frozenset[str]:
        """Shared by Services (a pod backs several): a set of the whole table, diffed whole."""
        return frozenset().union(*(f.endpoint_ips for f in self.fragments.values()))


def merge(fragments: Iterable[_Fragment]) -> tuple[dict[str, tuple[str, ...]], dict[str, str],
                                                   dict[str, dict[str, str]]]:
    """(chains, affinity sets, {map: {key: element}}) of some fragments together."""
    chains: dict[str, tuple[str, ...]] = {}
    sets: dict[str, str] = {}
    elements: dict[str, dict[str, str]] = {name: {} for name in MAPS}
    for frag in fragments:
        chains.update(frag.chains)
        sets.update(frag.sets)
        for name, item in frag.elements:
            elements[name][element_key(item)] = item
    return chains, sets, elements


@functools.lru_cache(maxsize=1 << 15)
def _fragment(sp: model.ServicePort, node: str) -> _Fragment:
    b = _Builder()
    _service(b, sp, node)
    sets = tuple((line.split()[1], line) for line in b.sets)
    elements = tuple((name, item) for name, items in (
        ("service-ips", b.service_ips), ("service-nodeports", b.service_nodeports),
        ("no-endpoint-services", b.no_endpoint_services), ("no-endpoint-nodeports", b.no_endpoint_nodeports),
        *sorted(b.endpoint_maps.items()))
        for item in items)
    return _Fragment(tuple((k, tuple(v)) for k, v in b.chains.items()), sets, elements, sp.cluster_ip,
                     frozenset(b.endpoint_ips), frozenset(b.picks))


def element_key(item: str) -> str:
    """A set element is its own key; a map element's key is what comes before ` : `."""
    return item.split(" : ", 1)[0]


def ruleset(ports: Iterable[model.ServicePort], node: NodeInfo) -> Ruleset:
    """The table `ports` need on `node`: pure and deterministic."""
    fragments = {sp.id: _fragment(sp, node.name) for sp in ports}
    base: dict[str, tuple[str, ...]] = {name: tuple(rules) for name, (_, rules) in _BASE_CHAINS.items()}
    base.update((k, tuple(v)) for k, v in _helpers(node).items())
    picks: set[str] = set()
    for frag in fragments.values():
        picks |= frag.picks
    base.update((name, tuple(pick_chain(name))) for name in sorted(picks, key=_pick_order))
    return Ruleset(table=table_name(node.name), hooks={name: hook for name, (hook, _) in _BASE_CHAINS.items()},
                   base=base, pod_cidrs=tuple(node.pod_cidrs), fragments=fragments)


def _pick_order(name: str) -> tuple[str, int]:
    kind, _, count = name.rpartition("-")
    return kind, int(count)


def render(ports: Iterable[model.ServicePort], node: NodeInfo, *, existing_chains: Iterable[str] = (),
           existing_sets: Iterable[str] = ()) -> str:
    """The complete `nft -f` input that turns this node's table into the rules for `ports`."""
    return render_full(ruleset(ports, node), existing_chains=existing_chains, existing_sets=existing_sets)


def render_full(rs: Ruleset, *, existing_chains: Iterable[str] = (), existing_sets: Iterable[str] = ()) -> str:
    """The full sync: one transaction that rebuilds the table whatever it holds.

    Create the table if missing, flush every rule, (re)declare sets, maps and chains, flush the
    sets' and maps' elements and add the new ones, then delete the chains and affinity sets of the
    live table (`existing_*`, as the act step listed them) that are gone. Affinity sets that stay
    keep their members (a sync does not reset session affinity).
    """
    table = rs.table
    out = [f"table ip {table} {{}}", f"flush table ip {table}", f"table ip {table} {{"]
    out.extend(f"\t{decl}" for decl in rs.sets.values())
    for name, rules in rs.chains.items():
        out.append(f"\tchain {name} {{")
        if name in rs.hooks:
            out.append(f"\t\t{rs.hooks[name]}")
        out.extend(f"\t\t{r}" for r in rules)
        out.append("\t}")
    out.append("}")
    out.extend(f"flush set ip {table} {name}" for name in SETS)
    out.extend(f"flush map ip {table} {name}" for name in MAPS)
    for name in (*SETS, *MAPS):
        if items := rs.elements.get(name):
            out.append(f"add element ip {table} {name} {{ {', '.join(items.values())} }}")
    out.extend(f"delete chain ip {table} {name}" for name in sorted(set(existing_chains) - set(rs.chains)))
    out.extend(f"delete set ip {table} {name}" for name in sorted(set(existing_sets) - set(rs.sets)))
    return "\n".join(out) + "\n"


_BASE_CHAINS = {
    "filter-input": (f"type filter hook input priority {DSTNAT - 10}; policy accept;", [
        "ct state new jump nodeport-endpoints-check",
        "ct state new jump service-endpoints-check",
        # route_localnet is on for the pod bridges (127.0.0.1 node ports): nothing from off the
        # host may reach a loopback address through them (kube-proxy's KUBE-FIREWALL rule)
        'iifname != "lo" ip daddr 127.0.0.0/8 ct state != { established, related } ct status & dnat == 0 drop',
    ]),
    "filter-forward": (f"type filter hook forward priority {DSTNAT - 10}; policy accept;", [
        "ct state new jump service-endpoints-check", "ct state new jump cluster-ips-check",
        f"ip saddr @pod-cidrs ip daddr @pod-cidrs meta mark set meta mark or {POD_TRAFFIC_MARK:#x}",
        f"ct status dnat ip daddr @pod-cidrs meta mark set meta mark or {POD_TRAFFIC_MARK:#x}",
        f"ct status dnat ip saddr @pod-cidrs meta mark set meta mark or {POD_TRAFFIC_MARK:#x}"]),
    "filter-output": (f"type filter hook output priority {DSTNAT - 10}; policy accept;", [
        "ct state new jump service-endpoints-check"]),
    "filter-output-post-dnat": (f"type filter hook output priority {DSTNAT + 10}; policy accept;", [
        "ct state new jump cluster-ips-check"]),
    "nat-prerouting": (f"type nat hook prerouting priority {DSTNAT}; policy accept;", ["jump services"]),
    "nat-output": (f"type nat hook output priority {DSTNAT}; policy accept;", ["jump services"]),
    "nat-postrouting": (f"type nat hook postrouting priority {SRCNAT}; policy accept;", ["jump masquerading"]),
}


def _helpers(node: NodeInfo) -> dict[str, list[str]]:
    return {
        "mark-for-masquerade": [f"meta mark set meta mark or {MASQ_MARK:#x}"],
        # hairpin: only a connection the proxy DNATed (an endpoint reaching itself through its Service);
        # an endpoint that is a host address (the API server's 127.0.0.1) must leave the host's own traffic alone
        "masquerading": [f"ct status dnat ip saddr . ip daddr @hairpin meta mark set meta mark or {MASQ_MARK:#x}",
                         f"meta mark & {MASQ_MARK:#x} == 0 return",
                         f"meta mark set meta mark xor {MASQ_MARK:#x}", "masquerade fully-random"],
        "services": ["ip daddr . meta l4proto . th dport vmap @service-ips",
                     "fib daddr type local meta l4proto . th dport vmap @service-nodeports"],
        "service-endpoints-check": ["ip daddr . meta l4proto . th dport vmap @no-endpoint-services"],
        "nodeport-endpoints-check": ["fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports"],
        "reject-chain": ["reject"],
        "cluster-ips-check": ["ip daddr @cluster-ips reject", f"ip daddr {node.service_cidr} drop"],
    }


_DECLARED = re.compile(r"^\t(chain|set|map) (\S+) \{", re.M)


def declared(text: str) -> tuple[set[str], set[str]]:
    """(chains, sets and maps) a rendered text leaves in the table: the next render's `existing_*`
    without asking nft to list a table of thousands of chains."""
    chains: set[str] = set()
    sets: set[str] = set()
    for kind, name in _DECLARED.findall(text):
        (chains if kind == "chain" else sets).add(name)
    return chains, sets


def delete(node: str) -> str:
    """`nft -f` input that removes this node's table (and is harmless when there is none)."""
    table = table_name(node)
    return f"table ip {table} {{}}\ndelete table ip {table}\n"
