"""Service proxy benchmark: programming 1,000 and 10,000 Services with 5 endpoints each.

For each size, in a table of its own (`ip reconcile-proxy-bench-<pid>`) whose addresses no packet
on this host is sent to:
- first program: the full render and apply into an empty table (what a proxy's first sync does);
- partial sync: one Service's endpoint replaced, then the delta applied (every later sync);
- full resync: the live table listed, flushed and rebuilt in one transaction (hourly, and after
  a failed apply);
- the proxier's read of the API objects: `model.service_ports` over every Service and
  EndpointSlice (a full sync), and the change tracker's read of one changed Service (every other
  sync; before the tracker, every sync paid the full read).
The table is deleted afterwards (also on Ctrl-C or SIGTERM), and the bench checks that it is gone.
Needs root and `nft`. The readiness-to-rules latency and the proxy's memory are bench/proxy_sync.py's, the wrk throughput through a cluster IP bench/service_traffic.py's.

    python bench/services.py [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

from reconcile.proxy import delta, model, netfilter, render

# Before partial syncs and the rule-based endpoint choice (this bench's first version, on a busy
# machine): 1,000 Services took 4.7 s to program (render 1.0 s, apply 3.7 s, 1.4 MB of rules) and
# 10.9 s to resync. 10,000 were never measured: that render's inline `numgen ... vmap` sets make the
# kernel walk the whole transaction once per Service; one try here held a CPU in the kernel for
# over 300 s (soft lockup) before it was killed.
BASELINE = {1000: {"first": 4.7, "resync": 10.9}, 10000: {"first": None, "resync": None}}
TARGET_10K = 2.0


def ports(count: int, per_service: int = 5) -> list[model.ServicePort]:
    base = int(ipaddress.ip_address("10.230.0.0"))
    pod_base = int(ipaddress.ip_address("10.232.0.0"))
    out = []
    for i in range(count):
        eps = tuple(model.Endpoint(str(ipaddress.ip_address(pod_base + (i * per_service + j) % 60000 + 2)), 8080,
                                   node="bench") for j in range(per_service))
        out.append(model.ServicePort("bench", f"svc{i}", "http", "tcp", str(ipaddress.ip_address(base + i + 1)), 80,
                                     node_port=0, endpoints=eps))
    return out


def objects(sps: list[model.ServicePort]) -> tuple[list[dict], list[dict]]:
    """The Services and EndpointSlices the proxier's informers would hold for `sps`."""
    services, slices = [], []
    for sp in sps:
        meta = {"namespace": sp.namespace, "name": sp.name}
        services.append({"metadata": meta, "spec": {"clusterIP": sp.cluster_ip, "type": "ClusterIP", "ports": [
            {"name": sp.port_name, "port": sp.port, "protocol": "TCP", "targetPort": 8080}]}})
        slices.append({"metadata": {"namespace": sp.namespace, "name": f"{sp.name}-x",
                                    "labels": {model.SERVICE_NAME_LABEL: sp.name}},
                       "addressType": "IPv4", "ports": [{"name": sp.port_name, "port": 8080, "protocol": "TCP"}],
                       "endpoints": [{"addresses": [e.ip], "conditions": {"ready": True}, "nodeName": e.node}
                                     for e in sp.endpoints]})
    return services, slices


def _baseline(size: int, key: str) -> str:
    value = BASELINE.get(size, {}).get(key)
    return f"(baseline {value:.1f}s)" if value else "(baseline: not measurable, > 300 s)" if size in BASELINE else ""


def bench(size: int, node: render.NodeInfo, table: str) -> None:
    sps = ports(size)
    started = time.perf_counter()
    chains, sets = netfilter.table_contents(table)
    first = render.ruleset(sps, node)
    text = render.render_full(first, existing_chains=chains, existing_sets=sets)
    rendered = time.perf_counter()
    netfilter.apply(text)
    applied = time.perf_counter()
    floor = _elements_floor(first, table + "-floor")
    print(f"{size:>6} services x 5 endpoints: first program {applied - started:.3f}s "
          f"(render {rendered - started:.3f}s, apply {applied - rendered:.3f}s, {len(text) / 1e6:.1f} MB) "
          f"{_baseline(size, 'first')}; floor, the same map elements alone into a bare table: {floor:.3f}s",
          flush=True)

    # one Service changes: its last endpoint is replaced (the others' chains and elements stay)
    changed = list(sps)
    victim = changed[size // 2]
    moved = replace(victim.endpoints[-1], ip="10.233.0.2")
    changed[size // 2] = replace(victim, endpoints=(*victim.endpoints[:-1], moved))
    started = time.perf_counter()
    text, after = delta.render(first, render.ruleset(changed, node))
    rendered = time.perf_counter()
    netfilter.apply(text)
    applied = time.perf_counter()
    print(f"{size:>6} services: partial sync of one changed Service {applied - started:.3f}s "
          f"(render {rendered - started:.3f}s, apply {applied - rendered:.3f}s, {len(text.splitlines())} lines)",
          flush=True)
    started = time.perf_counter()
    text, after = delta.render(after, render.ruleset(changed, node))  # the next sync, nothing changed
    if text:  # only chains the last one emptied (endpoint chains exist with session affinity only)
        netfilter.apply(text)
    print(f"{size:>6} services: the next sync, nothing changed {time.perf_counter() - started:.3f}s "
          f"({len(text.splitlines())} lines)", flush=True)

    started = time.perf_counter()
    chains, sets = netfilter.table_contents(table)
    listed = time.perf_counter()
    netfilter.apply(render.render_full(render.ruleset(changed, node), existing_chains=chains, existing_sets=sets))
    done = time.perf_counter()
    print(f"{size:>6} services: full resync {done - started:.3f}s (list {listed - started:.3f}s) "
          f"{_baseline(size, 'resync')}", flush=True)

    services, slices = objects(changed)
    started = time.perf_counter()
    model.service_ports(services, slices)
    print(f"{size:>6} services: reading every API object (a full sync; before change tracking, every sync) "
          f"{time.perf_counter() - started:.3f}s", flush=True)
    print(f"{size:>6} services: reading the API objects of one changed Service (every other sync) "
          f"{_tracked_read(services, slices):.4f}s", flush=True)


def _tracked_read(services: list[dict], slices: list[dict]) -> float:
    """Seconds the proxier's change tracker takes for one changed slice, after a full read."""
    tracker = model.PortTracker()
    by_key = {model.service_key(svc): svc for svc in services}
    slices_of = {model.slice_service(sl): [sl] for sl in slices}
    everything, inputs = tracker.take_changes(by_key.get, lambda key: slices_of.get(key, []), lambda: services)
    tracker.update(everything, tracker.ports_of(inputs))
    started = time.perf_counter()
    tracker.slice_changed(slices[len(slices) // 2])
    everything, inputs = tracker.take_changes(by_key.get, lambda key: slices_of.get(key, []), lambda: services)
    tracker.update(everything, tracker.ports_of(inputs))
    return time.perf_counter() - started


def _elements_floor(rs: render.Ruleset, table: str) -> float:
    """Seconds `nft -f` takes for the rule set's map and set elements alone, in a table of its own
    with no hooks and every verdict replaced by `accept`: what any rendering of these Services into
    maps pays, measured in the same run (the table is deleted at once)."""
    lines = [f"table ip {table} {{"]
    lines.extend(f"\t{decl}" for decl in rs.sets.values())
    lines.append("}")
    for name, items in rs.elements.items():
        if items:
            values = [item.split(" : ", 1)[0] + " : accept" if " : goto " in item or " : jump " in item else item
                      for item in items.values()]
            lines.append(f"add element ip {table} {name} {{ {', '.join(values)} }}")
    started = time.perf_counter()
    try:
        netfilter.apply("\n".join(lines) + "\n")
        return time.perf_counter() - started
    finally:
        netfilter.delete_table(table)


def _tables() -> set[str]:
    done = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    return set(done.stdout.splitlines())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("nft") is None:
        print("skipped: needs root and nft (apt-get install nftables)")
        return 0
    node = render.NodeInfo(f"bench-{os.getpid()}", service_cidr="10.230.0.0/16", pod_cidrs=("10.232.0.0/16",))
    table = render.table_name(node.name)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the finally below still runs
    before = _tables()
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            bench(size, node, table)
            netfilter.delete_table(table)  # each size starts from an empty table
    finally:
        if table in netfilter.our_tables():
            netfilter.delete_table(table)
    left = {t for t in _tables() - before if table in t}
    print("cleanup: the bench's table is gone" if not left else f"cleanup FAILED: {sorted(left)} left", flush=True)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
