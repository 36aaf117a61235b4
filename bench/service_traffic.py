"""Service traffic benchmark (issue 11): HTTP through a cluster IP against the same pods reached directly.

`reconcile up` in a temporary state dir (its service proxy programs the node's nft table), a
Deployment of 3 `reconcile-hello` pods (busybox httpd on 8080: it closes every connection, so each
request is a new connection that the kernel DNATs) behind a ClusterIP Service, and a fourth pod,
`client`, not behind it: wrk (Debian's `wrk`, the host's binary) runs in the client pod's network
namespace (nsenter), so this is pod-to-Service traffic, the common case. For `--seconds` per side, in
`--rounds` slices taking turns (A B, B A, ...: the shared machine's load falls on both alike), the
same client against each side:
- ours: one wrk (3 threads, `--connections` rounded down to a multiple of 3, default 63) against
  http://CLUSTER-IP/ (the kernel DNATs each connection to a pod; a pod's traffic is not masqueraded,
  as upstream's `mark-for-masquerade` spares sources in the cluster CIDR);
- the baseline, in the same run: the same one wrk, each of its 3 threads connecting to one pod's
  http://POD-IP:8080/ (bench/spread.lua), so the pods share the connections evenly; no NAT.
Targets: >= 0.9x the direct requests/s, p99 added < 1 ms. Nothing leaves the host.

Why the two sides are comparable (the NAT itself is ~1-2% of the CPU under perf, and conntrack
shows the connections spread evenly over the pods):
- one identical client: the pods' httpd forks per connection on a 2-core machine, so the client's
  thread count alone moves the figure by ~15% (this bench once compared 3 wrk of 2 threads with 1);
- turns: on a shared machine another process's load fell on one side when they ran one after the
  other (0.59x once, 1.04x the next run);
- TIME_WAIT: wrk closes first, leaving a TIME_WAIT socket keyed by the address it dialled, which is
  ONE address for the cluster IP and three for the direct side. Past ~14,000 of them to one
  address:port every connect() scans the ephemeral range and the rate collapses (kube-proxy's
  clients would see the same). `net.ipv4.tcp_tw_reuse=1` is set in the client pod's namespace only
  (per-namespace; the host's is untouched), for both sides.
The host as a client (masqueraded: it is not a pod) is tests/node/test_service_traffic.py's.

Usage: python bench/service_traffic.py [--seconds 10] [--connections 63] [--rounds 5]
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
from collections.abc import Callable
from pathlib import Path

from streaming import HERE, poll, run

from reconcile.client import api as client_api
from reconcile.client import config as client_config
from reconcile.core import errors
from reconcile.node import containers, images
from reconcile.proxy import render

NAMESPACE = "rcbench-svc"
REPLICAS = 3
RATIO_TARGET, P99_ADDED_TARGET_MS = 0.9, 1.0


THREADS = REPLICAS  # one wrk thread per pod on the direct side


def wrk(netns_pid: int, url: str, seconds: int, connections: int, addrs: list[str] | None = None) -> dict[str, float]:
    """One wrk of THREADS threads, in the network namespace of process `netns_pid`, at `connections`
    connections to `url`, or with `addrs` (ip:port) each thread to one of them: requests/s, p99 (ms), errors."""
    env = {**os.environ, "BENCH_DIR": str(HERE), "WRK_ADDRS": " ".join(addrs or [])}
    done = subprocess.run(["nsenter", "-t", str(netns_pid), "-n", "wrk", f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
                           "--latency", "-s", str(HERE / "spread.lua"), url],
                          capture_output=True, text=True, timeout=seconds + 60, env=env)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH-RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {done.stdout}{done.stderr}")
    result = json.loads(line.removeprefix("BENCH-RESULT "))
    return {"requests": result["requests"], "seconds": result["duration_us"] / 1e6, "p99_ms": result["p99_us"] / 1000,
            "errors": result["non2xx"] + result["socket_errors"] + result["timeouts"]}


def interleaved(sides: dict[str, Callable[[int], dict[str, float]]], rounds: int,
                seconds: int) -> dict[str, dict[str, float]]:
    """`rounds` slices of `seconds` per side, alternating (A B, B A, A B, ...): on a shared machine
    whose load comes and goes, both sides see the same load (one side after the other did not).
    Per side: requests/s over all its slices, p99 the worst slice's, errors summed."""
    slices: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    names = list(sides)
    for i in range(rounds):
        for name in names if i % 2 == 0 else reversed(names):
            slices[name].append(sides[name](seconds))
    return {name: {"per_second": sum(r["requests"] for r in done) / sum(r["seconds"] for r in done),
                   "p99_ms": max(r["p99_ms"] for r in done), "errors": sum(r["errors"] for r in done)}
            for name, done in slices.items()}


def client_netns(namespace: str, pod: str) -> int:
    """The pid of a container of `pod` (its network namespace is the pod's), with tcp_tw_reuse on there."""
    listed = run("docker", "ps", "-q", "--filter", f"label={containers.LABEL_NAMESPACE}={namespace}",
                 "--filter", f"label={containers.LABEL_NAME}={pod}").split()
    if not listed:
        raise RuntimeError(f"no container of pod {namespace}/{pod}")
    pid = int(run("docker", "inspect", "-f", "{{.State.Pid}}", listed[0]).strip())
    run("nsenter", "-t", str(pid), "-n", "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1")
    return pid


def pod_spec() -> dict:
    return {"terminationGracePeriodSeconds": 1, "containers": [
        {"name": "app", "image": images.HELLO_IMAGE, "ports": [{"containerPort": 8080}],
         "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}}]}


def deployment() -> dict:
    labels = {"app": "web"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": REPLICAS, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec()}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=63)
    parser.add_argument("--rounds", type=int, default=5, help="slices per side, alternating (--seconds in all)")
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
        client.create("v1", "pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "client", "labels": {"app": "client"}}, "spec": pod_spec()}, namespace=NAMESPACE)
        service = client.create("v1", "services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
            namespace=NAMESPACE)
        cluster_ip = service["spec"]["clusterIP"]

        def ready_pod_ips() -> list[str] | None:
            pods = client.list("v1", "pods", namespace=NAMESPACE, label_selector="app=web")["items"]
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
        connections = options.connections - options.connections % THREADS
        direct = [f"{ip}:8080" for ip in pod_ips]
        poll(lambda: client.get("v1", "pods", "client", namespace=NAMESPACE).get("status", {}).get("podIP"),
             timeout=180, what="the client pod running")
        pid = client_netns(NAMESPACE, "client")
        wrk(pid, f"http://{cluster_ip}/", 1, connections)  # warm-up: ARP, conntrack, the pods' httpd
        wrk(pid, f"http://{pod_ips[0]}:8080/", 1, connections, direct)
        measured = interleaved({
            "ours": lambda seconds: wrk(pid, f"http://{cluster_ip}/", seconds, connections),
            "direct": lambda seconds: wrk(pid, f"http://{pod_ips[0]}:8080/", seconds, connections, direct)},
            options.rounds, max(1, options.seconds // options.rounds))
        ours, theirs = measured["ours"], measured["direct"]
        ratio = ours["per_second"] / theirs["per_second"] if theirs["per_second"] else 0.0
        added = ours["p99_ms"] - theirs["p99_ms"]
        print(f"service traffic, pod to Service, one wrk of {THREADS} threads, {connections} connections {options.seconds} s, {REPLICAS} pods "
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
