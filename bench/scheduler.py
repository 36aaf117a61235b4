"""Scheduler benchmark (issue 4): 1,000 pods onto 100 Node objects that no agent serves -> pods bound per second.

Starts a fresh embedded etcd, an API server subprocess and a `reconcile scheduler` subprocess
(no leader election), registers 100 Ready nodes, warms the scheduler up with one pod, then
creates 1,000 pods at once (32 concurrent creates) and watches until every one is bound.
The scheduler is paused (SIGSTOP) while the pods are created, so all 1,000 are pending at once
and the create rate of the API server is not what is measured; the rate is 1,000 / (time from
SIGCONT to the last binding seen through a watch). Checks that no node got more than it can hold.
Target: >= 300 pods/s. Every process started here is stopped by pid in `finally` blocks.

Usage: python bench/scheduler.py [--nodes 100] [--pods 1000]
Environment: BENCH_SCHEDULER_ARGS (extra `reconcile scheduler` flags, e.g. "--max-in-flight 16"),
BENCH_PROFILE=PATH (run the scheduler under cProfile, stats written to PATH on exit).
CPU seconds of the scheduler, the API server and etcd during the binding window are printed, with
the load average: on a shared 2-CPU machine the rate follows the CPU the three processes get.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from secure_api import SecuredApi

from reconcile.etcdserver import embedded

HOST = "127.0.0.1"
NAMESPACE = "default"
TARGET = 300.0
EXTRA = os.environ.get("BENCH_SCHEDULER_ARGS", "").split()
CREATE_CONCURRENCY = 32
NODE_CPU, NODE_MEMORY, NODE_PODS = "4", "16Gi", "110"
POD_CPU_MILLIS, POD_MEMORY_MI = 100, 128


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start(args: list[str], log: Path) -> subprocess.Popen:
    """`python ARGS` (e.g. `-m reconcile apiserver ...`) with its output in `log`."""
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(url: str, process: subprocess.Popen, log: Path, *, timeout: float = 60.0, verify: Any = True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited: {log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/readyz", timeout=1, verify=verify).status_code == 200:
                return
        time.sleep(0.05)  # polling a starting process, not synchronizing work
    raise RuntimeError(f"not ready after {timeout}s: {log.read_text()[-3000:]}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def node(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


def node_status() -> dict:
    return {"status": {
        "capacity": {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": NODE_PODS},
        "allocatable": {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": NODE_PODS},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
    }}


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "app", "image": "bench:1", "resources": {
                "requests": {"cpu": f"{POD_CPU_MILLIS}m", "memory": f"{POD_MEMORY_MI}Mi"}}}]}}


async def bounded(n: int, items: list, fn) -> None:
    semaphore = asyncio.Semaphore(n)

    async def one(item) -> None:
        async with semaphore:
            await fn(item)

    await asyncio.gather(*(one(i) for i in items))


async def watch_bound(http: httpx.AsyncClient, rv: str, names: set[str], done: asyncio.Event,
                      placed: dict[str, str], *, started: asyncio.Event) -> None:
    """Count pods seen with spec.nodeName; set `done` when every name is bound."""
    params = {"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "false"}
    async with http.stream("GET", f"/api/v1/namespaces/{NAMESPACE}/pods", params=params, timeout=None) as response:
        started.set()
        async for line in response.aiter_lines():
            if not line:
                continue
            event = orjson.loads(line)
            obj = event.get("object") or {}
            name = (obj.get("metadata") or {}).get("name")
            node_name = (obj.get("spec") or {}).get("nodeName")
            if name in names and node_name:
                previous = placed.setdefault(name, node_name)
                if previous != node_name:
                    raise AssertionError(f"pod {name} bound twice: {previous} then {node_name}")
                if len(placed) == len(names):
                    done.set()
                    return


async def run(url: str, *, nodes: int, pods: int, scheduler_pid: int, api_pid: int, etcd_pid: int,
              verify: Any = True) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=64),
                                 verify=verify) as http:
        async def make_node(i: int) -> None:
            name = f"node-{i:03d}"
            (await http.post("/api/v1/nodes", json=node(name))).raise_for_status()
            (await http.patch(f"/api/v1/nodes/{name}/status", content=orjson.dumps(node_status()),
                              headers={"Content-Type": "application/merge-patch+json"})).raise_for_status()

        await bounded(16, list(range(nodes)), make_node)

        # Warm-up: one pod through the whole path, so imports and informer sync are not measured.
        rv = (await http.get(f"/api/v1/namespaces/{NAMESPACE}/pods")).json()["metadata"]["resourceVersion"]
        done, started, placed = asyncio.Event(), asyncio.Event(), {}
        watcher = asyncio.create_task(watch_bound(http, rv, {"warmup"}, done, placed, started=started))
        await started.wait()
        (await http.post(f"/api/v1/namespaces/{NAMESPACE}/pods", json=pod("warmup"))).raise_for_status()
        await asyncio.wait_for(done.wait(), timeout=60)
        await watcher

        names = [f"pod-{i:04d}" for i in range(pods)]
        rv = (await http.get(f"/api/v1/namespaces/{NAMESPACE}/pods")).json()["metadata"]["resourceVersion"]
        done, started, placed = asyncio.Event(), asyncio.Event(), {}
        watcher = asyncio.create_task(watch_bound(http, rv, set(names), done, placed, started=started))
        await started.wait()
        os.kill(scheduler_pid, signal.SIGSTOP)  # so all pods are pending when it looks: creates are not measured
        try:
            t_create = time.monotonic()

            async def make_pod(name: str) -> None:
                (await http.post(f"/api/v1/namespaces/{NAMESPACE}/pods", json=pod(name))).raise_for_status()

            await bounded(CREATE_CONCURRENCY, names, make_pod)
            create_seconds = time.monotonic() - t_create
            cpu_before = cpu_seconds(scheduler_pid)
            api_before = cpu_seconds(api_pid)
            etcd_before = cpu_seconds(etcd_pid)
        finally:
            os.kill(scheduler_pid, signal.SIGCONT)
        t0 = time.monotonic()
        await asyncio.wait_for(done.wait(), timeout=300)
        t1 = time.monotonic()
        await watcher
        cpu_after = cpu_seconds(scheduler_pid)
        api_after = cpu_seconds(api_pid)
        etcd_after = cpu_seconds(etcd_pid)

    per_node = collections.Counter(placed.values())
    capacity_pods = min(int(NODE_PODS), (int(NODE_CPU) * 1000) // POD_CPU_MILLIS, (16 * 1024) // POD_MEMORY_MI)
    over = {n: c for n, c in per_node.items() if c + (1 if n == "warmup" else 0) > capacity_pods}
    return {
        "pods": pods, "nodes": nodes, "seconds": t1 - t0, "create_seconds": create_seconds,
        "rate": pods / (t1 - t0), "scheduler_cpu_seconds": cpu_after - cpu_before,
        "apiserver_cpu_seconds": api_after - api_before,
        "etcd_cpu_seconds": etcd_after - etcd_before, "loadavg": os.getloadavg(),
        "nodes_used": len(per_node), "max_per_node": max(per_node.values()), "min_per_node": min(per_node.values()),
        "overcommitted_nodes": over,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods", type=int, default=1000)
    args = parser.parse_args()
    etcd = api = sched = None
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp:
        tmp_path = Path(tmp)
        try:
            etcd = embedded.EmbeddedEtcd(tmp_path / "etcd")
            etcd.start()
            port = free_port()
            secure = SecuredApi(tmp_path)  # secured as `reconcile up` runs it; the scheduler on the admin's kubeconfig
            url = secure.url(HOST, port)
            api_log = tmp_path / "apiserver.log"
            api = start(["-m", "reconcile", "apiserver", "--etcd", etcd.endpoint, "--port", str(port),
                         *secure.apiserver_args()], api_log)
            wait_ready(url, api, api_log, verify=secure.ssl_context())
            health = free_port()
            sched_log = tmp_path / "scheduler.log"
            profile = os.environ.get("BENCH_PROFILE")  # a path: run the scheduler under cProfile
            sched = start([*(["-m", "cProfile", "-o", profile] if profile else []), "-m", "reconcile", "scheduler", *secure.kubeconfig_args(url), "--no-leader-elect", "--health-port", str(health), *EXTRA], sched_log)
            wait_ready(f"http://{HOST}:{health}", sched, sched_log)
            result = asyncio.run(run(url, nodes=args.nodes, pods=args.pods, scheduler_pid=sched.pid, api_pid=api.pid, etcd_pid=etcd.pid, verify=secure.ssl_context()))
        finally:
            stop(sched)
            stop(api)
            if etcd is not None:
                etcd.stop()
    verdict = "OK" if result["rate"] >= TARGET else "BELOW TARGET"
    print(f"scheduler: {result['pods']} pods bound onto {result['nodes']} nodes in {result['seconds']:.2f} s "
          f"= {result['rate']:.0f} pods/s (target >= {TARGET:.0f}/s: {verdict})")
    print(f"  creates alone took {result['create_seconds']:.2f} s; CPU while binding: scheduler "
          f"{result['scheduler_cpu_seconds']:.2f} s, API server {result['apiserver_cpu_seconds']:.2f} s, "
          f"etcd {result['etcd_cpu_seconds']:.2f} s; "
          f"pods per node {result['min_per_node']}..{result['max_per_node']} over {result['nodes_used']} nodes; "
          f"overcommitted nodes: {result['overcommitted_nodes'] or 'none'}; "
          f"load average {result['loadavg'][0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
