"""Controller and SDK benchmark (issue 3): ReplicaSet scale-up, SDK handler throughput, memory.

Run by hand: `python bench/controllers.py [--pods 1000] [--things 1000] [--parts controller,sdk]
[--max-load 3] [--profile DIR [--profile-no-apiserver]]`.
In one run, against a fresh embedded etcd and an API server subprocess (prefix /bench), secured as
`reconcile up` runs it (HTTPS, client certificates, RBAC; the components get the admin's kubeconfig):
  1. baseline: the raw create rate of N pods (the exact pod a ReplicaSet's template produces,
     namespace default, no nodeName) through `reconcile.client.aio.AsyncClient` at concurrency 32,
     timed from the first request to the N-th ADDED event on a watch (the same clock as step 2);
     the pods are then deleted so step 2 starts from an empty namespace;
  2. the controller-manager subprocess (`--no-leader-elect`): PATCH /scale of a ReplicaSet 0 -> N;
     time until N pods exist (watch) and until the RS reports status.replicas == N; its VmRSS;
  3. the SDK: `reconcile operator run bench/sdk_plugin.py -A --standalone`; N Things created at
     once (concurrency 32), first with a no-op create handler, then with one that patches; time until
     every object carries the SDK's last-handled annotation (watch), handler runs/s, the operator's RSS.
Targets (issue 3): controller pod creation >= 80% of the raw rate; controller-manager RSS < 200 MB;
SDK >= 200 handler runs/s. Every phase also records the CPU seconds each process spent (API server,
etcd, controller-manager or operator, this client), which stay meaningful when other work on the
machine makes the rates noisy. It first waits (up to 15 min) for the 1-minute load average to fall
to --max-load. Prints a table (with the load average) and writes bench/results/controllers-<date>.json. Only 127.0.0.1; every process is stopped by pid in `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from secure_api import SecuredApi

from reconcile.client import aio
from reconcile.controllers import replicaset
from reconcile.etcdserver import embedded

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
NAMESPACE = "default"
CONCURRENCY = 32
RS_NAME = "bench"
APP_LABEL = {"app": "bench-rs"}
THING_API = "bench.reconcile.dev/v1"
LAST_HANDLED = "reconcile.dev/last-handled-configuration"  # the SDK's "cause finished" annotation
PATCHED = "bench.reconcile.dev/patched"
TARGET_RATIO = 0.8
TARGET_RSS_MB = 200.0
TARGET_SDK_RATE = 200.0
PHASE_TIMEOUT = 300.0


# --- processes -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """VmRSS (or VmHWM, the peak) of a process in MB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_process(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))


def stop_process(proc: subprocess.Popen[bytes] | None, *, timeout: float = 15.0) -> None:
    """SIGTERM by pid, then SIGKILL if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


async def wait_until(check: Callable[[], Any], proc: subprocess.Popen[bytes], log: Path, *, what: str,
                     timeout: float = 60.0) -> None:
    """Poll `check` (sync or async) until truthy; the process must stay alive meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}; log:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(Exception):
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return
        await asyncio.sleep(0.1)  # polling a readiness probe, not synchronizing on our own work
    raise RuntimeError(f"{what}: not ready after {timeout}s; log:\n{log.read_text()[-3000:]}")


async def http_ok(url: str, verify: Any = True) -> bool:
    async with httpx.AsyncClient(timeout=2.0, verify=verify) as http:
        return (await http.get(url)).status_code == 200


SECURE: SecuredApi | None = None  # the API server's PKI: it runs secured, as `reconcile up` runs it
API_PID = 0  # set once the API server runs: phases report its CPU time
ETCD_PID = 0
PROFILE_API = True  # --profile-no-apiserver: leave the API server alone (py-spy costs CPU)
PROFILE_DIR: Path | None = None  # --profile: py-spy collapsed stacks (py-spy raw) of the measured phases go here


@contextlib.contextmanager
def profiled(name: str, pid: int) -> Any:
    """With --profile, `py-spy record` the process `pid` while the block runs (SIGINT writes the file)."""
    if PROFILE_DIR is None or not pid:
        yield
        return
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(["py-spy", "record", "-r", "100", "-f", "raw", "-o", str(PROFILE_DIR / f"{name}.txt"), "--pid", str(pid)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # py-spy attaches
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(spy.pid, signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop_process(spy)


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def wait_for_quiet(*, threshold: float, max_wait: float) -> dict[str, Any]:
    """Wait (polling every minute) while the 1-minute load average is above `threshold`."""
    start = time.monotonic()
    while True:
        load = load_average()
        waited = time.monotonic() - start
        if load[0] <= threshold or waited >= max_wait:
            return {"load_before": list(load), "waited_seconds": round(waited), "quiet": load[0] <= threshold}
        print(f"load average {load[0]:.2f} > {threshold}: waiting ({waited:.0f}s so far)", flush=True)
        time.sleep(60)


# --- objects ---------------------------------------------------------------------------------------

def replicaset_body() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": RS_NAME, "namespace": NAMESPACE},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": dict(APP_LABEL)},
            "template": {
                "metadata": {"labels": {**APP_LABEL, "tier": "web"}},
                "spec": {
                    "containers": [{
                        "name": "app",
                        "image": "reconcile-hello:1.0",
                        "ports": [{"containerPort": 8080, "name": "http"}],
                        "env": [{"name": "MODE", "value": "bench"}],
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    }],
                },
            },
        },
    }


def thing_body(name: str, mode: str) -> dict[str, Any]:
    return {"apiVersion": THING_API, "kind": "Thing",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"bench.reconcile.dev/mode": mode}},
            "spec": {"size": 1, "note": "sdk benchmark"}}


async def create_all(count: int, make: Callable[[int], Any]) -> float:
    """`count` calls of `make(i)` with CONCURRENCY in flight; returns the monotonic time of the last answer."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with gate:
            await make(i)

    await asyncio.gather(*(one(i) for i in range(count)))
    return time.monotonic()


class Counter:
    """A watch in the background that counts objects satisfying `done(obj)` (by name)."""

    def __init__(self, client: aio.AsyncClient, api_version: str, plural: str, done: Callable[[dict], bool],
                 *, target: int, label_selector: str | None = None) -> None:
        self.client, self.api_version, self.plural = client, api_version, plural
        self.done, self.target, self.label_selector = done, target, label_selector
        self.names: set[str] = set()
        self.first_at: float | None = None
        self.reached_at: float | None = None
        self.reached = asyncio.Event()
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        body = await self.client.list(self.api_version, self.plural, namespace=NAMESPACE,
                                      label_selector=self.label_selector)
        for obj in body.get("items") or []:
            self._see(obj)
        self._task = asyncio.get_running_loop().create_task(self._run(body["metadata"]["resourceVersion"]))
        await self.ready.wait()

    async def _run(self, rv: str) -> None:
        stream = self.client.watch(self.api_version, self.plural, namespace=NAMESPACE, resource_version=rv,
                                   label_selector=self.label_selector, allow_bookmarks=False)
        self.ready.set()  # the request is sent on the first iteration; events after rv are not lost
        async with contextlib.aclosing(stream):
            async for event in stream:
                if event.get("type") in ("ADDED", "MODIFIED"):
                    self._see(event["object"])

    def _see(self, obj: dict) -> None:
        name = obj["metadata"]["name"]
        if name in self.names or not self.done(obj):
            return
        self.names.add(name)
        now = time.monotonic()
        self.first_at = self.first_at or now
        if len(self.names) >= self.target and self.reached_at is None:
            self.reached_at = now
            self.reached.set()

    async def wait(self, timeout: float = PHASE_TIMEOUT) -> float:
        await asyncio.wait_for(self.reached.wait(), timeout)
        assert self.reached_at is not None
        return self.reached_at

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


async def wait_count(client: aio.AsyncClient, api_version: str, plural: str, count: int, *,
                     label_selector: str | None = None, timeout: float = 60.0) -> None:
    """Poll a list until it holds exactly `count` objects (used between phases only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = await client.list(api_version, plural, namespace=NAMESPACE, label_selector=label_selector)
        if len(body.get("items") or []) == count:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{plural} never reached {count}")


# --- phases ----------------------------------------------------------------------------------------

async def baseline(client: aio.AsyncClient, rs: dict[str, Any], pods: int) -> dict[str, Any]:
    """Raw client create rate of the ReplicaSet's own pod, then delete them again."""
    selector = ",".join(f"{k}={v}" for k, v in APP_LABEL.items())
    counter = Counter(client, "v1", "pods", lambda _: True, target=pods, label_selector=selector)
    await counter.start()
    api_cpu, own_cpu = cpu_seconds(API_PID), time.process_time()
    try:
        start = time.monotonic()
        last_answer = await create_all(
            pods, lambda i: client.create("v1", "pods", replicaset.pod_from_template(rs), namespace=NAMESPACE))
        seen = await counter.wait()
    finally:
        await counter.stop()
    api_cpu, own_cpu = cpu_seconds(API_PID) - api_cpu, time.process_time() - own_cpu
    await client.delete_collection("v1", "pods", namespace=NAMESPACE, label_selector=selector)
    await wait_count(client, "v1", "pods", 0, label_selector=selector)
    elapsed = seen - start
    return {"pods": pods, "seconds": round(elapsed, 3), "pods_per_second": round(pods / elapsed, 1),
            "seconds_to_last_answer": round(last_answer - start, 3),
            "pods_per_second_by_answers": round(pods / (last_answer - start), 1),
            "apiserver_cpu_seconds": round(api_cpu, 2), "client_cpu_seconds": round(own_cpu, 2)}


async def controller_phase(client: aio.AsyncClient, server: str, pods: int, workdir: Path) -> dict[str, Any]:
    """Scale the ReplicaSet 0 -> N under the controller-manager subprocess."""
    health = free_port()
    log = workdir / "controller-manager.log"
    assert SECURE is not None
    proc = start_process([sys.executable, "-m", "reconcile", "controller-manager", *SECURE.kubeconfig_args(server),
                          "--no-leader-elect", "--health-port", str(health)], log)
    try:
        await wait_until(lambda: http_ok(f"http://{HOST}:{health}/readyz"), proc, log, what="controller-manager")
        await asyncio.sleep(1.0)  # let the freshly started controllers settle (informers synced, idle)
        rss_idle = rss_mb(proc.pid)
        selector = ",".join(f"{k}={v}" for k, v in APP_LABEL.items())
        pods_counter = Counter(client, "v1", "pods", lambda _: True, target=pods, label_selector=selector)
        status_counter = Counter(client, "apps/v1", "replicasets",
                                 lambda rs: (rs.get("status") or {}).get("replicas") == pods, target=1)
        await pods_counter.start()
        await status_counter.start()
        cpu_before, api_cpu = cpu_seconds(proc.pid), cpu_seconds(API_PID)
        try:
            with profiled("controller-manager", proc.pid), profiled("apiserver-controller", API_PID if PROFILE_API else 0):
                start = time.monotonic()
                await client.patch("apps/v1", "replicasets", RS_NAME, {"spec": {"replicas": pods}},
                                   namespace=NAMESPACE, subresource="scale")
                pods_at = await pods_counter.wait()
                status_at = await status_counter.wait()
        finally:
            await pods_counter.stop()
            await status_counter.stop()
        cpu, api_cpu = cpu_seconds(proc.pid) - cpu_before, cpu_seconds(API_PID) - api_cpu
        await asyncio.sleep(2.0)  # events and the last status writes land; RSS "with 1,000 pods" at rest
        rss = rss_mb(proc.pid)
        peak = rss_mb(proc.pid, "VmHWM")
        pods_elapsed = pods_at - start
        return {
            "pods": pods,
            "seconds_to_pods": round(pods_elapsed, 3),
            "seconds_to_status": round(status_at - start, 3),
            "pods_per_second": round(pods / pods_elapsed, 1),
            "cpu_seconds": round(cpu, 2),
            "apiserver_cpu_seconds": round(api_cpu, 2),
            "rss_mb_idle": round(rss_idle, 1),
            "rss_mb": round(rss, 1),
            "rss_mb_peak": round(peak, 1),
            "pid": proc.pid,
        }
    finally:
        stop_process(proc)


async def install_crd(client: aio.AsyncClient) -> None:
    crd = yaml.safe_load((HERE / "thing-crd.yaml").read_text())
    await client.create("apiextensions.k8s.io/v1", "customresourcedefinitions", crd)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            await client.list(THING_API, "things", namespace=NAMESPACE)
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("Thing CRD not served")


async def sdk_round(client: aio.AsyncClient, count: int, mode: str, pid: int) -> dict[str, Any]:
    """Create `count` Things of one mode at once; time until every one is handled."""
    def handled(obj: dict) -> bool:
        annotations = obj["metadata"].get("annotations") or {}
        return LAST_HANDLED in annotations and (mode != "patch" or PATCHED in annotations)

    counter = Counter(client, THING_API, "things", handled, target=count,
                      label_selector=f"bench.reconcile.dev/mode={mode}")
    await counter.start()
    cpu_before, api_cpu, etcd_cpu, own_cpu = cpu_seconds(pid), cpu_seconds(API_PID), cpu_seconds(ETCD_PID), time.process_time()
    try:
        start = time.monotonic()
        created_at = await create_all(
            count, lambda i: client.create(THING_API, "things", thing_body(f"{mode}-{i:05d}", mode),
                                           namespace=NAMESPACE))
        done_at = await counter.wait()
    finally:
        await counter.stop()
    elapsed = done_at - start
    return {"objects": count, "handler_runs": count, "seconds_to_all_handled": round(elapsed, 3),
            "seconds_to_all_created": round(created_at - start, 3),
            "handler_runs_per_second": round(count / elapsed, 1),
            "operator_cpu_seconds": round(cpu_seconds(pid) - cpu_before, 2),
            "apiserver_cpu_seconds": round(cpu_seconds(API_PID) - api_cpu, 2),
            "etcd_cpu_seconds": round(cpu_seconds(ETCD_PID) - etcd_cpu, 2),
            "bench_cpu_seconds": round(time.process_time() - own_cpu, 2)}


async def sdk_phase(client: aio.AsyncClient, server: str, count: int, workdir: Path) -> dict[str, Any]:
    """The SDK plugin under `reconcile operator run --standalone`: a no-op round, then a patching round."""
    await install_crd(client)
    assert SECURE is not None
    log = workdir / "operator.log"
    proc = start_process([sys.executable, "-m", "reconcile", "operator", "run", str(HERE / "sdk_plugin.py"),
                          "-A", "--standalone", *SECURE.kubeconfig_args(server)], log)
    try:
        await wait_until(lambda: "operator started" in log.read_text(), proc, log, what="operator")
        rss_idle = rss_mb(proc.pid)
        with profiled("operator", proc.pid), profiled("apiserver-sdk", API_PID if PROFILE_API else 0):
            noop = await sdk_round(client, count, "noop", proc.pid)
            patch = await sdk_round(client, count, "patch", proc.pid)
        await asyncio.sleep(1.0)
        return {"noop": noop, "patch": patch, "rss_mb_idle": round(rss_idle, 1),
                "rss_mb": round(rss_mb(proc.pid), 1), "rss_mb_peak": round(rss_mb(proc.pid, "VmHWM"), 1)}
    finally:
        stop_process(proc)


# --- main ------------------------------------------------------------------------------------------

async def run(pods: int, things: int, workdir: Path, parts: set[str]) -> dict[str, Any]:
    etcd = embedded.EmbeddedEtcd(workdir / "etcd").start()
    api_log = workdir / "apiserver.log"
    api_proc: subprocess.Popen[bytes] | None = None
    try:
        port = free_port()
        global API_PID, ETCD_PID, SECURE
        SECURE = SecuredApi(workdir)
        server = SECURE.url(HOST, port)
        api_proc = start_process([sys.executable, "-m", "reconcile", "apiserver", "--etcd", etcd.endpoint,
                                  "--port", str(port), "--etcd-prefix", "/bench", *SECURE.apiserver_args()], api_log)
        await wait_until(lambda: http_ok(f"{server}/readyz", SECURE.ssl_context()), api_proc, api_log,
                         what="apiserver")
        API_PID, ETCD_PID = api_proc.pid, etcd.pid or 0
        results: dict[str, Any] = {"apiserver_pid": api_proc.pid}
        async with aio.AsyncClient(SECURE.client_config(server)) as client:
            rs = await client.create("apps/v1", "replicasets", replicaset_body(), namespace=NAMESPACE)
            if "controller" in parts:
                results["baseline"] = await baseline(client, rs, pods)
                results["controller"] = await controller_phase(client, server, pods, workdir)
            if "sdk" in parts:
                results["sdk"] = await sdk_phase(client, server, things, workdir)
        results["apiserver_rss_mb"] = round(rss_mb(api_proc.pid), 1)
        return results
    finally:
        stop_process(api_proc)
        etcd.stop()


def table(r: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if "controller" in r:
        base, ctl = r["baseline"], r["controller"]
        ratio = ctl["pods_per_second"] / base["pods_per_second"]
        rows += [
            {"figure": f"pod creation, pods/s ({ctl['pods']} pods)", "ours": ctl["pods_per_second"],
             "baseline": base["pods_per_second"], "ratio": round(ratio, 2), "target": f">= {TARGET_RATIO:.0%} raw",
             "pass": ratio >= TARGET_RATIO},
            {"figure": "time to all pods exist, s", "ours": ctl["seconds_to_pods"], "baseline": base["seconds"],
             "ratio": round(ctl["seconds_to_pods"] / base["seconds"], 2), "target": "-", "pass": None},
            {"figure": "time to RS status.replicas, s", "ours": ctl["seconds_to_status"], "baseline": "-",
             "ratio": "-", "target": "-", "pass": None},
            {"figure": "controller-manager RSS, MB", "ours": ctl["rss_mb"], "baseline": "-", "ratio": "-",
             "target": f"< {TARGET_RSS_MB:.0f}", "pass": ctl["rss_mb"] < TARGET_RSS_MB},
        ]
    if "sdk" in r:
        sdk = r["sdk"]
        for mode in ("noop", "patch"):
            s = sdk[mode]
            rows.append({"figure": f"SDK {mode} handler runs/s ({s['objects']} objects)",
                         "ours": s["handler_runs_per_second"], "baseline": "-", "ratio": "-",
                         "target": f">= {TARGET_SDK_RATE:.0f}", "pass": s["handler_runs_per_second"] >= TARGET_SDK_RATE})
            rows.append({"figure": f"SDK {mode} time to all handled, s", "ours": s["seconds_to_all_handled"],
                         "baseline": "-", "ratio": "-", "target": "-", "pass": None})
        rows.append({"figure": "operator RSS, MB", "ours": sdk["rss_mb"], "baseline": "-", "ratio": "-",
                     "target": "-", "pass": None})
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    header = ("figure", "ours", "baseline", "ratio", "target", "pass/fail")
    cells = [[str(row["figure"]), str(row["ours"]), str(row["baseline"]), str(row["ratio"]), str(row["target"]),
              "-" if row["pass"] is None else ("PASS" if row["pass"] else "FAIL")] for row in rows]
    widths = [max(len(header[i]), *(len(c[i]) for c in cells)) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--things", type=int, default=1000)
    parser.add_argument("--parts", default="controller,sdk", help="comma-separated: controller, sdk")
    parser.add_argument("--max-load", type=float, default=3.0, help="wait while the 1-min load average is above")
    parser.add_argument("--max-wait", type=float, default=900.0, help="give up waiting for a quiet machine after")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here instead of bench/results/")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy collapsed stacks of the phases into DIR")
    parser.add_argument("--profile-no-apiserver", action="store_true", help="with --profile: skip the API server")
    args = parser.parse_args()
    global PROFILE_DIR, PROFILE_API
    PROFILE_DIR, PROFILE_API = args.profile, not args.profile_no_apiserver
    quiet = wait_for_quiet(threshold=args.max_load, max_wait=args.max_wait)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rc-bench-") as tmp:
        results = asyncio.run(run(args.pods, args.things, Path(tmp), set(args.parts.split(","))))
    results.update(quiet)
    results["load_after"] = list(load_average())
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    results["cpus"] = os.cpu_count()
    results["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    rows = table(results)
    results["table"] = rows
    print()
    print_table(rows)
    print(f"\nload average before {results['load_before']}, after {results['load_after']}; "
          f"{results['cpus']} CPUs; wall {results['wall_seconds']} s")
    if not args.no_save:
        out = args.out or HERE / "results" / f"controllers-{datetime.date.today().isoformat()}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
