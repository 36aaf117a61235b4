"""Service traffic benchmark (issue 11): HTTP through a cluster IP against the same pods reached directly.

`reconcile up` in a temporary state dir (its service proxy programs the node's nft table), a
Deployment of 3 `reconcile-hello` pods (busybox httpd on 8080: it closes every connection, so each
request is a new connection that the kernel DNATs) behind a ClusterIP Service, then with wrk
(Debian's `wrk`) at `--connections` (default 64) for `--seconds`:
- ours: one wrk against http://CLUSTER-IP/ (the kernel picks a pod per connection);
- the baseline, in the same run: one wrk per pod against http://POD-IP:8080/ at the same total
  number of connections, started together; requests/s summed, p99 the worst of the three.
Targets: >= 0.9x the direct requests/s, p99 added < 1 ms. Both reach the same containers; nothing
leaves the host (the cluster IP and the pods' bridge are local).

Usage: python bench/service_traffic.py [--seconds 10] [--connections 64]
Stops what it started with `reconcile down --remove-containers` and deletes its state dir.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from streaming import poll, run, wrk

from reconcile.client import api as client_api
from reconcile.client import config as client_config
from reconcile.core import errors
from reconcile.node import images
from reconcile.proxy import render

NAMESPACE = "rcbench-svc"
REPLICAS = 3
RATIO_TARGET, P99_ADDED_TARGET_MS = 0.9, 1.0


def direct(pod_ips: list[str], seconds: int, connections: int) -> dict[str, float]:
    """One wrk per pod, started together, the connections shared out: the same load, no NAT."""
    shares = [connections // len(pod_ips) + (1 if i < connections % len(pod_ips) else 0) for i in range(len(pod_ips))]
    with ThreadPoolExecutor(len(pod_ips)) as pool:
        results = list(pool.map(lambda pair: wrk(f"http://{pair[0]}:8080/", seconds, pair[1]), zip(pod_ips, shares, strict=True)))
    return {"per_second": sum(r["per_second"] for r in results), "p99_ms": max(r["p99_ms"] for r in results),
            "errors": sum(r["errors"] for r in results)}


def deployment() -> dict:
    labels = {"app": "web"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": REPLICAS, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                                      {"name": "app", "image": images.HELLO_IMAGE,
                                       "ports": [{"containerPort": 8080}],
                                       "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                                          "periodSeconds": 1}}]}}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    if os.geteuid() != 0 or shutil.which("nft") is None:
        raise SystemExit("needs root and nft (the service proxy): apt-get install -y nftables")

    state_dir = Path(tempfile.mkdtemp(prefix="rcbench-svc-"))
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILE_SERVER", "KUBECONFIG")}
    env["RECONCILE_STATE_DIR"] = str(state_dir)
    with socket.socket() as sock:  # a free port for the API server
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run(sys.executable, "-m", "reconcile", "up", "--api-port", str(port), env=env)
    state = json.loads((state_dir / "state.json").read_text())
    node = state["components"]["node"]["node"]
    client = client_api.Client(client_config.load_config(kubeconfig=state["kubeconfig"]))
    try:
        client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        client.create("apps/v1", "deployments", deployment(), namespace=NAMESPACE)
        service = client.create("v1", "services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
            namespace=NAMESPACE)
        cluster_ip = service["spec"]["clusterIP"]

        def ready_pod_ips() -> list[str] | None:
            pods = client.list("v1", "pods", namespace=NAMESPACE)["items"]
            ready = [p["status"]["podIP"] for p in pods if any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in p.get("status", {}).get("conditions", []))]
            return sorted(ready) if len(ready) == REPLICAS else None

        pod_ips = poll(ready_pod_ips, timeout=180, what=f"{REPLICAS} pods Ready")
        table = render.table_name(node)

        def programmed() -> bool:
            listed = subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True).stdout
            return f"{cluster_ip} . tcp . 80 : goto pick-{REPLICAS}" in listed and all(
                f"{ip} . 8080" in listed for ip in pod_ips)

        poll(programmed, timeout=60, what="the Service's three endpoints programmed")
        wrk(f"http://{cluster_ip}/", 2, options.connections)  # warm-up: ARP, conntrack, the pods' httpd
        ours = wrk(f"http://{cluster_ip}/", options.seconds, options.connections)
        theirs = direct(pod_ips, options.seconds, options.connections)
        ratio = ours["per_second"] / theirs["per_second"] if theirs["per_second"] else 0.0
        added = ours["p99_ms"] - theirs["p99_ms"]
        print(f"service traffic, wrk {options.connections} connections {options.seconds} s, {REPLICAS} pods "
              f"(a new connection per request): cluster IP {ours['per_second']:,.0f}/s, p99 {ours['p99_ms']:.1f} ms "
              f"({ours['errors']:.0f} errors); pod IPs directly {theirs['per_second']:,.0f}/s, p99 "
              f"{theirs['p99_ms']:.1f} ms ({theirs['errors']:.0f} errors): {ratio:.2f}x "
              f"(target >= {RATIO_TARGET}x: {'OK' if ratio >= RATIO_TARGET else 'MISSED'}), p99 added "
              f"{added:+.1f} ms (target < {P99_ADDED_TARGET_MS:.0f} ms: "
              f"{'OK' if added < P99_ADDED_TARGET_MS else 'MISSED'}); load average {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} CPUs", flush=True)
    finally:
        try:
            client.delete("v1", "namespaces", NAMESPACE)
        except errors.ApiError as exc:
            print(f"cleanup: {exc}", file=sys.stderr)
        client.close()
        run(sys.executable, "-m", "reconcile", "down", "--remove-containers", env=env)
        subprocess.run(["docker", "network", "rm", f"reconcile-{node}"], capture_output=True, timeout=60)
        shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
