"""The partial sync: `nft -f` input that turns the table the last sync applied into the next one.

Pure: `render(old, new)` compares two `Ruleset` values and writes only what differs, as
kube-proxy's nftables mode does after its first full sync (chains of the Services that changed,
map elements added, deleted, or deleted and re-added with a new verdict). A full rebuild of
10,000 Services costs seconds of kernel time; a delta for one changed Service costs what that
Service has, plus nft's own look-up of the table. It is still ONE transaction: the kernel takes
all of it or none of it, so a failed delta leaves the last good table serving (the proxier then
runs a full sync, which also repairs whatever made the delta fail).

Order inside the transaction (each step may only refer to what the steps before it left):
1. delete the map and set elements that are gone or whose verdict changed (they may point at
   chains about to go);
2. flush the chains whose rules changed (or that use a set declared anew: an affinity timeout
   changed) and the chains that are gone; a gone chain is left empty
   and deleted by the NEXT sync (`Ruleset.stale`), as kube-proxy does (older kernels keep a
   deleted element's reference to its chain for a moment);
3. delete the chains the previous sync left empty, and the affinity sets that are gone (only the
   endpoint chains just flushed used them);
4. add the new sets, then the new chains (all of them before any rule, so a rule may jump to
   any), then the rules of the new and changed chains;
5. add the new and changed elements.
"""

from __future__ import annotations

from dataclasses import replace

from reconcile.proxy.render import Ruleset, merge


class NeedsFullSync(Exception):
    """The change is not one a delta can express (another table, a base chain's hook)."""


def render(old: Ruleset, new: Ruleset) -> tuple[str, Ruleset]:
    """(nft -f text, the Ruleset the table holds once it is applied); the text is "" for no change.

    Only the service ports whose fragment changed are compared (an unchanged one is the same
    memoized object), so the cost follows what changed, not the size of the table.
    """
    if old.table != new.table or old.hooks != new.hooks:
        raise NeedsFullSync("the table or a base chain's hook changed")
    keys = [k for k in old.fragments.keys() | new.fragments.keys()
            if old.fragments.get(k) is not new.fragments.get(k) and old.fragments.get(k) != new.fragments.get(k)]
    keys.sort()
    before = merge(old.fragments[k] for k in keys if k in old.fragments)
    after = merge(new.fragments[k] for k in keys if k in new.fragments)
    old_chains = {**{k: v for k, v in old.base.items() if new.base.get(k) != v}, **before[0]}
    new_chains = {**{k: v for k, v in new.base.items() if old.base.get(k) != v}, **after[0]}
    old_elements = {**before[2], "pod-cidrs": {c: c for c in old.pod_cidrs}, "cluster-ips": {}, "hairpin": {}}
    new_elements = {**after[2], "pod-cidrs": {c: c for c in new.pod_cidrs}, "cluster-ips": {}, "hairpin": {}}
    if old.cluster_ips != new.cluster_ips:
        old_elements["cluster-ips"] = {ip: ip for ip in sorted(old.cluster_ips - new.cluster_ips)}
        new_elements["cluster-ips"] = {ip: ip for ip in sorted(new.cluster_ips - old.cluster_ips)}
    if keys and old.endpoint_ips != new.endpoint_ips:  # shared by Services: diffed as a whole
        old_elements["hairpin"] = {f"{ip} . {ip}": f"{ip} . {ip}" for ip in sorted(old.endpoint_ips - new.endpoint_ips)}
        new_elements["hairpin"] = {f"{ip} . {ip}": f"{ip} . {ip}" for ip in sorted(new.endpoint_ips - old.endpoint_ips)}
    stale_gone = sorted(name for name in old.stale if name not in new_chains)
    text, dropped = _diff(new.table, old_chains, new_chains, before[1], after[1], old_elements, new_elements,
                          stale_gone)
    return text, replace(new, stale=frozenset(dropped) | (old.stale - set(stale_gone) - new_chains.keys()))


def _diff(t: str, old_chains: dict[str, tuple[str, ...]], new_chains: dict[str, tuple[str, ...]],
          old_sets: dict[str, str], new_sets: dict[str, str], old_elements: dict[str, dict[str, str]],
          new_elements: dict[str, dict[str, str]], stale_gone: list[str]) -> tuple[str, list[str]]:
    """The transaction for the parts that differ (see the module docstring for the order)."""
    out: list[str] = []
    for name in sorted(new_elements.keys() | old_elements.keys()):
        before, after = old_elements.get(name, {}), new_elements.get(name, {})
        gone = [key for key, item in before.items() if after.get(key) != item]
        if gone:
            out.append(f"delete element ip {t} {name} {{ {', '.join(gone)} }}")
    redeclared = {name for name, decl in new_sets.items() if name in old_sets and old_sets[name] != decl}
    changed = [name for name, rules in new_chains.items() if name in old_chains and (
        old_chains[name] != rules or any(f"@{s} " in f"{r} " for s in redeclared for r in old_chains[name]))]
    dropped = [name for name in old_chains if name not in new_chains]
    out.extend(f"flush chain ip {t} {name}" for name in (*changed, *dropped))
    out.extend(f"delete chain ip {t} {name}" for name in stale_gone)
    out.extend(f"delete set ip {t} {name}" for name in old_sets
               if name not in new_sets or new_sets[name] != old_sets[name])
    for name, decl in new_sets.items():
        if old_sets.get(name) != decl:
            kind, rest = decl.split(" ", 1)
            out.append(f"add {kind} ip {t} {rest}")
    added = [name for name in new_chains if name not in old_chains]
    out.extend(f"add chain ip {t} {name}" for name in added)
    for name in (*added, *changed):
        out.extend(f"add rule ip {t} {name} {rule}" for rule in new_chains[name])
    for name in sorted(new_elements):
        before, after = old_elements.get(name, {}), new_elements[name]
        fresh = [item for key, item in after.items() if before.get(key) != item]
        if fresh:
            out.append(f"add element ip {t} {name} {{ {', '.join(fresh)} }}")
    return ("\n".join(out) + "\n" if out else ""), dropped
