"""Cluster DNS benchmark (issue 11): `reconcile dns` vs dnsmasq serving the same names, both on 127.0.0.1.

Starts a fresh embedded etcd, a secured API server and `reconcile dns` (as the coredns identity),
creates N ClusterIP Services (explicit cluster IPs), waits until the last one resolves, and writes
the same N names with the same addresses to a hosts file that dnsmasq (Debian's `dnsmasq-base`,
no upstream, no resolv.conf) serves. Then, for each server, with `dnsperf` (Debian) over UDP:
- saturation: queries/s with 100 queries outstanding for `--seconds`;
- latency at a fixed rate (`--rate`, default 2,000/s): p50/p99 from dnsperf's per-query report.
Every query is for a name in the cluster domain, sent to 127.0.0.1 only. Targets: ours >= 0.25x
dnsmasq at saturation, p99 < 5 ms at 2,000 queries/s; the DNS server's RSS is printed too.
Every process started here is stopped by pid in `finally` blocks.

Usage: python bench/cluster_dns.py (not bench/dns.py: that name would shadow dnspython's `dns` package) [--services 1000] [--seconds 10] [--rate 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from secure_api import SecuredApi

from reconcile.client import config as client_config
from reconcile.etcdserver import embedded

HOST = "127.0.0.1"
ZONE = "cluster.local"
RATIO_TARGET, P99_TARGET_MS = 0.25, 5.0
RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start(argv: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", RECONCILE_SERVER=""))


def stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(condition, *, timeout: float, what: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what}: the process exited; log:\n{log.read_text()[-3000:]}")
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - not up yet (a refused connection, a DNS timeout)
            pass
        time.sleep(0.1)  # a foreign process's readiness: poll with a deadline
    raise SystemExit(f"{what}: not ready after {timeout:.0f}s; log:\n{log.read_text()[-3000:]}")


def start_secured_api(tmp_path: Path, *extra: str) -> tuple[embedded.EmbeddedEtcd, subprocess.Popen, SecuredApi, str]:
    """A fresh embedded etcd and a secured API server on it (`extra`: more apiserver flags), ready;
    (etcd, the server's process, its PKI, its URL). The caller stops both."""
    etcd = embedded.EmbeddedEtcd(tmp_path / "etcd")
    etcd.start()
    api_port = free_port()
    secure = SecuredApi(tmp_path)
    url = secure.url(HOST, api_port)
    api_log = tmp_path / "apiserver.log"
    api = start([sys.executable, "-m", "reconcile", "apiserver", "--etcd", etcd.endpoint, "--port", str(api_port),
                 *extra, *secure.apiserver_args()], api_log)
    try:
        verify = secure.ssl_context()
        wait_until(lambda: httpx.get(url + "/readyz", verify=verify, timeout=2).status_code == 200, timeout=60,
                   what="API server", process=api, log=api_log)
    except BaseException:
        stop(api)
        etcd.stop()
        raise
    return etcd, api, secure, url


def cluster_ip(i: int) -> str:
    return f"10.96.{1 + i // 250}.{1 + i % 250}"


async def create_services(url: str, verify, count: int) -> None:
    async with httpx.AsyncClient(base_url=url, verify=verify, timeout=30) as http:
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}"},
                    "spec": {"clusterIP": cluster_ip(i), "clusterIPs": [cluster_ip(i)],
                             "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}
            async with sem:
                response = await http.post("/api/v1/namespaces/default/services", content=orjson.dumps(body),
                                           headers={"Content-Type": "application/json"})
                if response.status_code not in (200, 201, 409):
                    raise SystemExit(f"creating svc-{i}: {response.status_code} {response.text[:300]}")

        await asyncio.gather(*(one(i) for i in range(count)))


def resolves(port: int, name: str) -> bool:
    import dns.message  # the benchmark's own client (dnspython, the server's library)
    import dns.query
    import dns.rcode

    reply = dns.query.udp(dns.message.make_query(name, "A"), HOST, port=port, timeout=1)
    return reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)


def dnsperf(port: int, datafile: Path, *, seconds: float, rate: int | None = None) -> dict:
    argv = ["dnsperf", "-s", HOST, "-p", str(port), "-d", str(datafile), "-l", str(seconds), "-q", "100",
            "-t", "2"]
    if rate is not None:
        argv += ["-Q", str(rate), "-v"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    out = done.stdout
    qps = next((float(line.split()[-1]) for line in out.splitlines() if "Queries per second" in line), 0.0)
    lost = next((line.split(":", 1)[1].strip() for line in out.splitlines() if "Queries lost" in line), "?")
    found = {"qps": qps, "lost": lost}
    if rate is not None:
        latencies = sorted(float(line.split()[-1]) for line in out.splitlines()
                           if line.startswith(">") and _is_float(line.split()[-1]))
        if latencies:
            found["p50_ms"] = latencies[len(latencies) // 2] * 1000
            found["p99_ms"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
            found["answered"] = len(latencies)
    return found


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=2000)
    args = parser.parse_args()
    for tool in ("dnsperf", "dnsmasq"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install -y dnsperf dnsmasq-base")
    etcd = api = ours = theirs = None
    with tempfile.TemporaryDirectory(prefix="bench-dns-") as tmp:
        tmp_path = Path(tmp)
        try:
            etcd, api, secure, url = start_secured_api(tmp_path)
            verify = secure.ssl_context()
            asyncio.run(create_services(url, verify, args.services))

            kubeconfig = tmp_path / "coredns.kubeconfig"
            client_config.write_kubeconfig(kubeconfig, url, ca_file=secure.pki.ca.cert,
                                           cert_file=secure.pki.coredns.cert, key_file=secure.pki.coredns.key)
            our_port = free_port()
            ours_log = tmp_path / "dns.log"
            ours = start([sys.executable, "-m", "reconcile", "dns", "--kubeconfig", str(kubeconfig),
                          "--listen", f"{HOST}:{our_port}"], ours_log)
            last = f"svc-{args.services - 1}.default.svc.{ZONE}"
            wait_until(lambda: resolves(our_port, last), timeout=60, what="reconcile dns", process=ours, log=ours_log)

            names = [f"svc-{i}.default.svc.{ZONE}" for i in range(args.services)]
            hosts = tmp_path / "hosts"
            hosts.write_text("".join(f"{cluster_ip(i)} {name}\n" for i, name in enumerate(names)))
            their_port = free_port()
            theirs_log = tmp_path / "dnsmasq.log"
            theirs = start(["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                            f"--addn-hosts={hosts}", f"--listen-address={HOST}", "--bind-interfaces",
                            f"--port={their_port}", "--cache-size=10000", "--local-ttl=5", "--user=root",
                            "--pid-file=", "--local=/cluster.local/"], theirs_log)
            wait_until(lambda: resolves(their_port, last), timeout=30, what="dnsmasq", process=theirs, log=theirs_log)

            queries = tmp_path / "queries.txt"
            shuffled = names[:]
            random.Random(11).shuffle(shuffled)
            queries.write_text("".join(f"{name} A\n" for name in shuffled))
            result = {"services": args.services, "seconds": args.seconds, "rate": args.rate}
            for label, port in (("reconcile", our_port), ("dnsmasq", their_port)):
                result[label] = {"saturation": dnsperf(port, queries, seconds=args.seconds),
                                 "fixed_rate": dnsperf(port, queries, seconds=min(args.seconds, 5), rate=args.rate)}
            result["reconcile"]["rss_mb"] = rss_mb(ours.pid)
        finally:
            stop(theirs)
            stop(ours)
            stop(api)
            if etcd is not None:
                etcd.stop()
    report(result)


def report(result: dict) -> None:
    ours, theirs = result["reconcile"], result["dnsmasq"]
    ratio = ours["saturation"]["qps"] / theirs["saturation"]["qps"] if theirs["saturation"]["qps"] else 0.0
    p99 = ours["fixed_rate"].get("p99_ms", float("inf"))
    result["ratio"] = ratio
    print(f"dns: {result['services']} Services; saturation (dnsperf, 100 outstanding, {result['seconds']:.0f} s): "
          f"reconcile dns {ours['saturation']['qps']:,.0f} q/s (lost {ours['saturation']['lost']}), "
          f"dnsmasq {theirs['saturation']['qps']:,.0f} q/s (lost {theirs['saturation']['lost']}) = {ratio:.2f}x "
          f"(target >= {RATIO_TARGET}x: {'OK' if ratio >= RATIO_TARGET else 'BELOW TARGET'})")
    for label, found in (("reconcile dns", ours["fixed_rate"]), ("dnsmasq", theirs["fixed_rate"])):
        print(f"  at {result['rate']:,}/s: {label} p50 {found.get('p50_ms', float('nan')):.2f} ms, "
              f"p99 {found.get('p99_ms', float('nan')):.2f} ms ({found.get('answered', 0)} answers, "
              f"lost {found['lost']})")
    print(f"  p99 target < {P99_TARGET_MS} ms: {'OK' if p99 < P99_TARGET_MS else 'MISSED'}; "
          f"reconcile dns RSS {ours['rss_mb']:.1f} MB; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster_dns.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
