"""Service proxy benchmark: time to render and apply 1,000 and 10,000 Services with 5 endpoints each.

Applies into a table of its own (`ip reconcile-proxy-bench-<pid>`) whose addresses no packet on
this host is sent to, and deletes it afterwards. Needs root and `nft`. The wrk throughput part of
the issue's benchmark (cluster IP vs. pod IPs) is not here yet.

    python bench/services.py [--sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import sys
import time

from reconcile.proxy import model, netfilter, render


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("nft") is None:
        print("skipped: needs root and nft (apt-get install nftables)")
        return 0
    node = render.NodeInfo(f"bench-{os.getpid()}", service_cidr="10.230.0.0/16", pod_cidrs=("10.232.0.0/16",))
    table = render.table_name(node.name)
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            sps = ports(size)
            started = time.perf_counter()
            chains, sets = netfilter.table_contents(table)
            text = render.render(sps, node, existing_chains=chains, existing_sets=sets)
            rendered = time.perf_counter()
            netfilter.apply(text)
            applied = time.perf_counter()
            print(f"{size:>6} services x 5 endpoints: render {rendered - started:.3f}s, apply {applied - rendered:.3f}s, "
                  f"total {applied - started:.3f}s ({len(text) / 1e6:.1f} MB of rules)")
            # a resync of the same state (what a periodic full sync costs)
            started = time.perf_counter()
            chains, sets = netfilter.table_contents(table)
            netfilter.apply(render.render(sps, node, existing_chains=chains, existing_sets=sets))
            print(f"{size:>6} services: full resync {time.perf_counter() - started:.3f}s")
    finally:
        if table in netfilter.our_tables():
            netfilter.delete_table(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
