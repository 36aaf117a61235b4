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

from reconcile.proxy.render import Ruleset


class NeedsFullSync(Exception):
    """The change is not one a delta can express (another table, a base chain's hook)."""


def render(old: Ruleset, new: Ruleset) -> tuple[str, Ruleset]:
    """(nft -f text, the Ruleset the table holds once it is applied); the text is "" for no change."""
    if old.table != new.table or old.hooks != new.hooks:
        raise NeedsFullSync("the table or a base chain's hook changed")
    t = new.table
    out: list[str] = []
    for name in new.elements.keys() | old.elements.keys():
        before, after = old.elements.get(name, {}), new.elements.get(name, {})
        gone = [key for key, item in before.items() if after.get(key) != item]
        if gone:
            out.append(f"delete element ip {t} {name} {{ {', '.join(gone)} }}")
    redeclared = {name for name, decl in new.sets.items() if name in old.sets and old.sets[name] != decl}
    changed = [name for name, rules in new.chains.items() if name in old.chains and (
        old.chains[name] != rules or any(f"@{s} " in f"{r} " for s in redeclared for r in old.chains[name]))]
    dropped = [name for name in old.chains if name not in new.chains]
    out.extend(f"flush chain ip {t} {name}" for name in (*changed, *dropped))
    out.extend(f"delete chain ip {t} {name}" for name in sorted(old.stale - new.chains.keys()))
    out.extend(f"delete set ip {t} {name}" for name in old.sets
               if name not in new.sets or new.sets[name] != old.sets[name])
    for name, decl in new.sets.items():
        if old.sets.get(name) != decl:
            kind, rest = decl.split(" ", 1)
            out.append(f"add {kind} ip {t} {rest}")
    added = [name for name in new.chains if name not in old.chains]
    out.extend(f"add chain ip {t} {name}" for name in added)
    for name in (*added, *changed):
        out.extend(f"add rule ip {t} {name} {rule}" for rule in new.chains[name])
    for name, after in new.elements.items():
        before = old.elements.get(name, {})
        fresh = [item for key, item in after.items() if before.get(key) != item]
        if fresh:
            out.append(f"add element ip {t} {name} {{ {', '.join(fresh)} }}")
    applied = replace(new, stale=frozenset(dropped))
    return ("\n".join(out) + "\n" if out else ""), applied
