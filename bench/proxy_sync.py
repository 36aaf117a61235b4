"""Service proxy benchmark against a real API server (issue 11): readiness change to kernel rules,
and the proxy's memory with 1,000 Services and 10,000 endpoints.

Starts a fresh embedded etcd, a secured API server (service range 10.237.0.0/16) and
`reconcile proxy` for a bench node (its table `ip reconcile-proxy-bench-proxy-<pid>`), creates
`--services` ClusterIP Services with one EndpointSlice of `--endpoints` endpoints each (pod
addresses in 10.236.0.0/16 that nothing here ever sends a packet to; the service range is routed
into the proxy's port-less bridge), waits until every Service is programmed, then:
- memory: the proxy's RSS (target < 150 MB);
- readiness to rules: `--trials` times, one endpoint of one Service flips ready/not ready; the time
  from the PATCH to the moment `nft monitor` shows the Service's map element pointing at the pick
  chain of its new endpoint count (target p99
  < 500 ms; kube-proxy's default minimum sync period is 1 s), beside the floor every proxy pays in
  the same run: PATCH to the slice's watch event at a plain watch client. Trials are paced by the
  proxy's minimum sync period (an isolated change, as upstream measures it).
Every process is stopped by pid; the table, the forwarding rule and the route go in `finally`.

    python bench/proxy_sync.py [--services 1000] [--endpoints 10] [--trials 40]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson
from cluster_dns import RESULTS, rss_mb, start, start_secured_api, stop, wait_until

from reconcile.proxy import netfilter, render

HOST = "127.0.0.1"
SERVICE_CIDR = "10.237.0.0/16"
MIN_SYNC_PERIOD = 1.0
RSS_TARGET_MB, P99_TARGET_MS = 150.0, 500.0
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


def cluster_ip(i: int) -> str:
    return f"10.237.{1 + i // 250}.{1 + i % 250}"


def pod_ip(i: int) -> str:
    return f"10.236.{i // 250}.{2 + i % 250}"


def endpoints(service: int, count: int, *, first_ready: bool = True) -> list[dict]:
    return [{"addresses": [pod_ip(service * count + j)], "conditions": {"ready": first_ready or j > 0}}
            for j in range(count)]


def create(http: httpx.Client, services: int, count: int) -> None:
    for i in range(services):
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}"},
               "spec": {"clusterIP": cluster_ip(i), "clusterIPs": [cluster_ip(i)], "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}}
        sl = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": f"svc-{i}-x", "labels": {"kubernetes.io/service-name": f"svc-{i}"}},
              "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
              "endpoints": endpoints(i, count)}
        for path, body in (("/api/v1/namespaces/default/services", svc), (SLICES, sl)):
            answer = http.post(path, content=orjson.dumps(body), headers={"Content-Type": "application/json"})
            if answer.status_code not in (200, 201):
                raise SystemExit(f"creating {path} {body['metadata']['name']}: {answer.status_code} {answer.text[:300]}")


def programmed(table: str) -> int:
    """The bench's Services in the table's cluster-IP map (the API server's `kubernetes` one left out)."""
    done = subprocess.run(["nft", "list", "map", "ip", table, "service-ips"], capture_output=True, text=True)
    return done.stdout.count("10.237.") - done.stdout.count("10.237.0.") if done.returncode == 0 else 0


class Seen:
    """Lines of a stream with the monotonic time each arrived, read by a thread."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []
        self.cond = threading.Condition()

    def add(self, line: str) -> None:
        with self.cond:
            self.lines.append((time.monotonic(), line))
            self.cond.notify_all()

    def wait(self, after: float, match, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for at, line in self.lines:
                    if at >= after and match(line):
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)


def watch_slices(url: str, verify, seen: Seen, stop_event: threading.Event) -> None:
    """A plain watch client: each slice event's name, as it arrives (the floor of any proxy)."""
    try:
        with httpx.Client(base_url=url, verify=verify, timeout=None) as http:
            rv = http.get(SLICES, params={"limit": 1}).json()["metadata"]["resourceVersion"]
            with http.stream("GET", SLICES, params={"watch": "true", "resourceVersion": rv}) as stream:
                for line in stream.iter_lines():
                    if stop_event.is_set():
                        return
                    if line:
                        event = orjson.loads(line)
                        ready = event["object"].get("endpoints", [{}])[0].get("conditions", {}).get("ready")
                        seen.add(f"{event['object']['metadata']['name']} ready={ready}")
    except httpx.HTTPError:
        return  # the API server stopped at the end of the run


def trials(http: httpx.Client, count: int, services: int, per_service: int, monitor: Seen,
           watch: Seen) -> tuple[list[float], list[float]]:
    to_rules, to_watch = [], []
    last_sync = time.monotonic()
    for trial in range(count):
        while time.monotonic() < last_sync + MIN_SYNC_PERIOD + 0.3:  # pacing: an isolated change
            time.sleep(0.05)
        ready = trial % 2 == 1  # an even trial takes an endpoint out, the odd one after it brings it back
        i = ((trial // 2) * 37) % services
        # the Service's cluster-IP element now leads to the pick chain of its new endpoint count
        element = f"{cluster_ip(i)} . tcp . 80 : goto pick-{per_service if ready else per_service - 1} "
        body = {"endpoints": endpoints(i, per_service, first_ready=ready)}
        sent = time.monotonic()
        answer = http.patch(f"{SLICES}/svc-{i}-x", content=orjson.dumps(body),
                            headers={"Content-Type": "application/merge-patch+json"})
        if answer.status_code != 200:
            raise SystemExit(f"patching svc-{i}-x: {answer.status_code} {answer.text[:300]}")
        at = monitor.wait(sent, lambda line, element=element: line.startswith("add element") and element in line, 10.0)
        seen = watch.wait(sent, lambda line, i=i, ready=ready: line == f"svc-{i}-x ready={ready}", 10.0)
        if at is None or seen is None:
            raise SystemExit(f"trial {trial}: the change was not seen (rules {at}, watch {seen}) in 10 s")
        to_rules.append((at - sent) * 1000)
        to_watch.append((seen - sent) * 1000)
        last_sync = at
    return to_rules, to_watch


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--trials", type=int, default=40)
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("nft") is None:
        raise SystemExit("needs root and nft (apt-get install nftables)")
    node = f"bench-proxy-{os.getpid()}"
    table = render.table_name(node)
    etcd = api = proxy = monitor_process = None
    stop_watch = threading.Event()
    result: dict = {"services": args.services, "endpoints_per_service": args.endpoints}
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        tmp_path = Path(tmp)
        try:
            etcd, api, secure, url = start_secured_api(tmp_path, "--service-cluster-ip-range", SERVICE_CIDR)
            verify = secure.ssl_context()
            with httpx.Client(base_url=url, verify=verify, timeout=30) as http:
                started = time.monotonic()
                create(http, args.services, args.endpoints)
                result["create_seconds"] = time.monotonic() - started
                monitor = Seen()
                monitor_process = subprocess.Popen(["nft", "monitor", "elements"], stdout=subprocess.PIPE, text=True)
                threading.Thread(target=lambda: [monitor.add(line) for line in monitor_process.stdout],
                                 daemon=True).start()
                watch = Seen()
                threading.Thread(target=watch_slices, args=(url, verify, watch, stop_watch), daemon=True).start()
                proxy_log = tmp_path / "proxy.log"
                started = time.monotonic()
                proxy = start([sys.executable, "-m", "reconcile", "proxy", "--node", node,
                               *secure.kubeconfig_args(url), "--service-cluster-ip-range", SERVICE_CIDR,
                               "--min-sync-period", str(MIN_SYNC_PERIOD)], proxy_log)
                wait_until(lambda: programmed(table) == args.services, timeout=300, what="the proxy's first sync",
                           process=proxy, log=proxy_log)
                result["first_sync_seconds"] = time.monotonic() - started
                result["rss_mb"] = rss_mb(proxy.pid)
                to_rules, to_watch = trials(http, args.trials, args.services, args.endpoints, monitor, watch)
                result["rss_mb_after"] = rss_mb(proxy.pid)
                result["readiness_to_rules_ms"] = {"p50": statistics.median(to_rules), "p99": p99(to_rules)}
                result["patch_to_watch_ms"] = {"p50": statistics.median(to_watch), "p99": p99(to_watch)}
        finally:
            stop_watch.set()
            stop(proxy)
            stop(monitor_process)
            stop(api)
            if etcd is not None:
                etcd.stop()
            netfilter.cleanup(node)
            subprocess.run(["ip", "route", "del", SERVICE_CIDR], capture_output=True)
    report(result, table)


def report(result: dict, table: str) -> None:
    rules, watch = result["readiness_to_rules_ms"], result["patch_to_watch_ms"]
    print(f"proxy: {result['services']} Services x {result['endpoints_per_service']} endpoints: "
          f"first sync {result['first_sync_seconds']:.1f} s after start (objects created in "
          f"{result['create_seconds']:.1f} s); RSS {result['rss_mb']:.1f} MB, {result['rss_mb_after']:.1f} MB after "
          f"the trials (target < {RSS_TARGET_MB:.0f} MB: {'OK' if result['rss_mb_after'] < RSS_TARGET_MB else 'OVER'})")
    print(f"  readiness change to rules in the kernel: p50 {rules['p50']:.0f} ms, p99 {rules['p99']:.0f} ms "
          f"(target p99 < {P99_TARGET_MS:.0f} ms: {'OK' if rules['p99'] < P99_TARGET_MS else 'MISSED'}); "
          f"baseline, the same PATCH to a plain watch client's event: p50 {watch['p50']:.0f} ms, "
          f"p99 {watch['p99']:.0f} ms; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    left = table in netfilter.our_tables()
    print("cleanup: the bench's table is gone" if not left else f"cleanup FAILED: {table} left", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "proxy_sync.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
