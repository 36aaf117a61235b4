"""Partial syncs (proxy/delta.py): a chain of deltas leaves the table the full render of the end state.

`Table` is a strict model of one nft table that executes the text the renderers write, refusing
what the kernel refuses (a rule or element naming a chain or set that does not exist, deleting a
chain that is not empty or still referenced, deleting an element that is not there) and also what
a correct delta never needs (adding an element or set that is already there). Hypothesis drives
sequences of Service states through it; where `nft` is installed, a sequence also goes through the
real kernel in a table of its own, which is deleted afterwards.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.proxy import delta, model, render
from tests import prerequisites
from tests.proxy.test_render import service_ports

NODES = [render.NodeInfo("node-a", pod_cidrs=("10.232.1.0/24", "10.232.2.0/24")),
         render.NodeInfo("node-a", pod_cidrs=("10.232.1.0/24", "10.232.3.0/24"))]
_TARGET = re.compile(r"\b(?:goto|jump) ([^\s,}]+)")
_SETREF = re.compile(r"@([^\s,}]+)")


class Refused(Exception):
    """What the kernel (or a delta's own contract) would refuse."""


@dataclass
class Table:
    hooks: dict[str, str] = field(default_factory=dict)
    chains: dict[str, list[str]] = field(default_factory=dict)
    sets: dict[str, str] = field(default_factory=dict)
    elements: dict[str, dict[str, str]] = field(default_factory=dict)

    # --- references -------------------------------------------------------------------------
    def _uses(self, name: str) -> bool:
        rules = (r for rs in self.chains.values() for r in rs)
        items = (i for es in self.elements.values() for i in es.values())
        return any(name in _TARGET.findall(x) for x in (*rules, *items))

    def _check_refs(self, text: str) -> None:
        for target in _TARGET.findall(text):
            if target not in self.chains:
                raise Refused(f"no chain {target}")
        for used in _SETREF.findall(text):
            if used not in self.sets:
                raise Refused(f"no set {used}")

    # --- commands -----------------------------------------------------------------------------
    def run(self, text: str, table: str) -> None:
        lines = iter(text.splitlines())
        for line in lines:
            prefix = f" ip {table} "
            if line in (f"table ip {table} {{}}", f"flush table ip {table}"):
                if line.startswith("flush"):
                    for rules in self.chains.values():
                        rules.clear()
                continue
            if line == f"table ip {table} {{":
                self._block(lines)
                continue
            verb, _, rest = line.partition(prefix)
            assert rest, f"a line for another table: {line!r}"
            name, _, arg = rest.partition(" ")
            if verb in ("flush set", "flush map"):
                self.elements[name] = {}
            elif verb == "add element":
                items = arg.strip("{} ").split(", ")
                for item in items:
                    self._check_refs(item)
                    key = render.element_key(item)
                    if key in self.elements.setdefault(name, {}):
                        raise Refused(f"element {key} already in {name}")
                    self.elements[name][key] = item
            elif verb == "delete element":
                for key in arg.strip("{} ").split(", "):
                    if self.elements.get(name, {}).pop(key, None) is None:
                        raise Refused(f"no element {key} in {name}")
            elif verb == "flush chain":
                if name not in self.chains:
                    raise Refused(f"no chain {name} to flush")
                self.chains[name] = []
            elif verb == "delete chain":
                if name not in self.chains or self.chains[name] or self._uses(name):
                    raise Refused(f"chain {name} missing, not empty or in use")
                del self.chains[name]
            elif verb in ("add set", "add map"):
                if name in self.sets:
                    raise Refused(f"set {name} exists")
                self.sets[name] = f"{verb[4:]} {rest}"
                self.elements[name] = {}
            elif verb == "delete set":
                if name not in self.sets or any(f"@{name}" in r for rs in self.chains.values() for r in rs):
                    raise Refused(f"set {name} missing or in use")
                del self.sets[name]
                del self.elements[name]
            elif verb == "add chain":
                self.chains.setdefault(name, [])
            elif verb == "add rule":
                if name not in self.chains:
                    raise Refused(f"no chain {name}")
                self._check_refs(arg)
                self.chains[name].append(arg)
            else:
                raise AssertionError(f"a command the model does not know: {line!r}")

    def _block(self, lines) -> None:
        chain = None
        for line in lines:
            if line == "}":
                break
            if m := re.fullmatch(r"\t(set|map) (\S+) \{.*\}", line):
                self.sets[m[2]] = line.strip()
                self.elements.setdefault(m[2], {})
            elif m := re.fullmatch(r"\tchain (\S+) \{", line):
                chain = m[1]
                self.chains.setdefault(chain, [])
            elif line == "\t}":
                chain = None
            elif line.startswith("\t\ttype "):
                self.hooks[chain] = line.strip()
            else:
                self.chains[chain].append(line.strip())
        for rules in self.chains.values():  # the kernel checks references when the block is complete
            for rule in rules:
                self._check_refs(rule)

    def state(self) -> tuple:
        return (self.hooks, {k: v for k, v in self.chains.items()}, self.sets,
                {k: v for k, v in self.elements.items()})


def full_table(rs: render.Ruleset) -> Table:
    table = Table()
    table.run(render.render_full(rs), rs.table)
    return table


@given(st.lists(st.tuples(service_ports(), st.sampled_from(NODES)), min_size=1, max_size=5))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_chain_of_deltas_leaves_exactly_the_full_render_of_the_last_state(steps) -> None:
    first = render.ruleset(*steps[0])
    live = full_table(first)
    applied = first
    for ports, node in steps[1:]:
        wanted = render.ruleset(ports, node)
        text, applied = delta.render(applied, wanted)
        live.run(text, wanted.table)
        expected = full_table(wanted)
        # the chains the delta emptied stay, empty and unreferenced, until the next sync
        assert set(live.chains) - set(expected.chains) == set(applied.stale)
        assert all(not live.chains[name] and not live._uses(name) for name in applied.stale)
        leftover = {k: v for k, v in live.chains.items() if k not in applied.stale}
        assert (live.hooks, leftover, live.sets, live.elements) == expected.state()
        again, _ = delta.render(applied, wanted)
        assert sorted(again.splitlines()) == sorted(f"delete chain ip {wanted.table} {name}" for name in applied.stale), \
            "a second delta to the same state only deletes what the first one emptied"
    # the periodic full resync, told what the live table holds, deletes the empty leftovers
    live.run(render.render_full(applied, existing_chains=list(live.chains), existing_sets=list(live.sets)),
             applied.table)
    assert live.state() == full_table(applied).state()


def test_one_changed_service_sends_only_its_own_chains_and_elements() -> None:
    def port(i: int, *ips: str, affinity: int = 0) -> model.ServicePort:
        return model.ServicePort("ns", f"svc{i}", "http", "tcp", f"10.96.0.{10 + i}", 80, affinity_seconds=affinity,
                                 endpoints=tuple(model.Endpoint(ip, 8080) for ip in ips))
    same = [port(i, "10.232.1.2", "10.232.1.3") for i in range(48)]
    before = render.ruleset([*same, port(48, "10.232.1.2", "10.232.1.3"),
                             port(49, "10.232.1.2", "10.232.1.3", affinity=30)], NODES[0])
    after = render.ruleset([*same, port(48, "10.232.1.2", "10.232.1.5"),
                            port(49, "10.232.1.2", "10.232.1.4", affinity=30)], NODES[0])
    text, applied = delta.render(before, after)
    t = before.table
    gone = render.hashed("endpoint-", "ns/svc49/tcp/http__10.232.1.3/8080")
    new = render.hashed("endpoint-", "ns/svc49/tcp/http__10.232.1.4/8080")
    # svc48 (no affinity, still two endpoints, so still `goto pick-2`): one element of the map replaced
    assert f"delete element ip {t} cluster-endpoints-tcp {{ 10.96.0.58 . 80 . 1 }}" in text
    assert f"add element ip {t} cluster-endpoints-tcp {{ 10.96.0.58 . 80 . 1 : 10.232.1.5 . 8080 }}" in text
    assert "pick-" not in text, "the pick chains are shared and unchanged"
    assert f"flush chain ip {t} {gone}" in text and f"add chain ip {t} {new}" in text
    assert f"delete set ip {t} {render.hashed('affinity-', 'ns/svc49/tcp/http__10.232.1.3/8080')}" in text
    assert f"add element ip {t} hairpin {{ 10.232.1.4 . 10.232.1.4, 10.232.1.5 . 10.232.1.5 }}" in text
    assert "10.232.1.3 . 10.232.1.3" not in text, "other Services still send to 10.232.1.3"
    assert "svc47" not in text and "10.96.0.57" not in text and "service-ips" not in text, \
        "the map still points at the same chains"
    assert applied.stale == {gone}
    text, settled = delta.render(applied, after)
    assert text == f"delete chain ip {t} {gone}\n", "the next sync deletes what this one emptied"
    assert delta.render(settled, after)[0] == ""
    text, _ = delta.render(applied, before)
    assert f"delete chain ip {t} {gone}" not in text, "a chain coming back is refilled, not deleted"
    with pytest.raises(delta.NeedsFullSync):
        delta.render(before, render.ruleset([], render.NodeInfo("node-b")))


# --- the real kernel -------------------------------------------------------------------------------

def _nft(text: str) -> None:
    done = subprocess.run(["nft", "-f", "-"], input=text, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + text[:2000]


def _live(table: str) -> tuple[set[str], dict[str, set[str]]]:
    """(chain names, {map: keys}) of a real table, from `nft -j`."""
    listed = json.loads(subprocess.run(["nft", "-j", "list", "table", "ip", table], capture_output=True,
                                       text=True, check=True).stdout)["nftables"]
    chains = {i["chain"]["name"] for i in listed if "chain" in i}
    keys: dict[str, set[str]] = {}
    for item in listed:
        if "map" in item:
            keys[item["map"]["name"]] = {json.dumps(e[0], sort_keys=True) for e in item["map"].get("elem", [])}
    return chains, keys


@given(st.lists(service_ports(), min_size=2, max_size=4))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_deltas_apply_to_the_kernel_and_leave_the_maps_of_the_full_render(states) -> None:
    prerequisites.require_nft()
    node = render.NodeInfo(f"test-delta-{uuid.uuid4().hex[:6]}", service_cidr="10.96.0.0/12",
                           pod_cidrs=("10.232.1.0/24", "10.232.2.0/24"))
    twin = render.NodeInfo(node.name + "-full", service_cidr=node.service_cidr, pod_cidrs=node.pod_cidrs)
    try:
        applied = render.ruleset(states[0], node)
        _nft(render.render_full(applied))
        for ports in states[1:]:
            text, applied = delta.render(applied, render.ruleset(ports, node))
            if text:
                _nft(text)
        _nft(render.render_full(render.ruleset(states[-1], twin)))
        chains, keys = _live(render.table_name(node.name))
        twin_chains, twin_keys = _live(render.table_name(twin.name))
        assert chains == twin_chains | applied.stale
        assert keys == twin_keys
    finally:
        for n in (node, twin):
            subprocess.run(["nft", "-f", "-"], input=render.delete(n.name), capture_output=True, text=True)
