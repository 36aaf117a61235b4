"""What field ownership costs (issue 13): server-side apply of 1,000 objects against plain PATCH
merges of the same change, on one API server.

Run by `make bench`. Starts an embedded etcd and one API server subprocess (plain HTTP, as bench/api.py
does), then, with CONCURRENCY requests in flight over kept-alive connections:
  1. apply-create: 1,000 ConfigMaps (~2 KB, bench/api.py's object) created by
     `PATCH application/apply-patch+yaml?fieldManager=bench` (201 each);
  2. apply-update: the same 1,000 re-applied with one changed key and one key dropped (the server
     prunes it: ownership tracked, managedFields rewritten);
  3. apply-noop: the same configuration applied again (nothing written);
  4. merge: the same kind of change as `PATCH application/merge-patch+json` by another manager
     (an Update entry each).
Prints requests per second and p50/p99 for each, and apply-update / merge as the ratio. Only 127.0.0.1;
every process started here is stopped by pid in `finally` blocks. Writes bench/results/ssa-<date>.json.
The machine is shared: figures are noisy.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import api as api_bench  # bench/api.py: process helpers, the table printer
import httpx
import orjson
import uvloop

from reconcile.etcdserver import embedded

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
OBJECTS = 1_000
CONCURRENCY = 16
COLLECTION = "/api/v1/namespaces/default/configmaps"
APPLY = {"Content-Type": "application/apply-patch+yaml"}
MERGE = {"Content-Type": "application/merge-patch+json"}
TARGET = 0.5  # apply-update at least half as fast as a merge patch of the same change


def _config(name: str, revision: str, *, extra: bool) -> bytes:
    obj = orjson.loads(api_bench.object_body().replace(b"__NAME__", name.encode()))
    obj["data"]["revision"] = revision
    if extra:
        obj["data"]["extra"] = "dropped by the next apply"
    return orjson.dumps(obj)


Request = tuple[str, bytes, dict[str, str], int] | tuple[str, bytes, dict[str, str], int, str]


async def _round(url: str, requests: list[Request]) -> dict[str, Any]:
    """Send (path, body, headers, expected status[, field manager]) with CONCURRENCY in flight;
    latencies and rate."""
    latencies: list[float] = []
    queue: asyncio.Queue[Request] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    failures: list[str] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            path, body, headers, expected, *manager = queue.get_nowait()
            started = time.perf_counter()
            response = await client.patch(path, content=body, headers=headers,
                                          params={"fieldManager": manager[0] if manager else "bench"})
            latencies.append(time.perf_counter() - started)
            if response.status_code != expected:
                failures.append(f"{response.status_code}: {response.text[:200]}")

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60,
                                 limits=httpx.Limits(max_connections=CONCURRENCY)) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return {"requests": len(requests), "seconds": round(elapsed, 2), "per_second": round(len(requests) / elapsed, 1),
            "p50_ms": round(api_bench.percentile(latencies, 50) * 1000, 1),
            "p99_ms": round(api_bench.percentile(latencies, 99) * 1000, 1)}


async def bench(tmp: Path, results: dict[str, Any], procs: list[Any]) -> None:
    results["loadavg_at_start"] = os.getloadavg()
    etcd = embedded.EmbeddedEtcd(tmp / "etcd").start()
    procs.append(etcd)
    port = api_bench.free_port()
    url = f"http://{HOST}:{port}"
    log = tmp / "apiserver.log"
    server = api_bench.start_process([sys.executable, "-m", "reconcile", "apiserver", "--etcd", etcd.endpoint,
                                      "--port", str(port), "--etcd-prefix", "/bench-ssa"], log)
    procs.append(server)
    await api_bench.wait_ready(url, server, log)
    names = [f"ssa-{i:04d}" for i in range(OBJECTS)]
    path = f"{COLLECTION}/{{}}"
    api_bench.say("1. apply-create ...")
    results["apply_create"] = await _round(url, [(path.format(n), _config(n, "0", extra=True), APPLY, 201)
                                                 for n in names])
    api_bench.say(f"  {results['apply_create']}")
    api_bench.say("2. apply-update (one key changed, one pruned) ...")
    results["apply_update"] = await _round(url, [(path.format(n), _config(n, "1", extra=False), APPLY, 200)
                                                 for n in names])
    api_bench.say(f"  {results['apply_update']}")
    api_bench.say("3. apply-noop ...")
    results["apply_noop"] = await _round(url, [(path.format(n), _config(n, "1", extra=False), APPLY, 200)
                                               for n in names])
    api_bench.say(f"  {results['apply_noop']}")
    api_bench.say("4. merge patch of the same kind of change ...")
    merge = orjson.dumps({"data": {"revision": "2", "extra": None}})
    results["merge"] = await _round(url, [(path.format(n), merge, MERGE, 200, "bench-merge") for n in names])
    api_bench.say(f"  {results['merge']}")


def table(r: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for key, label in (("apply_create", "apply-create/s"), ("apply_noop", "apply-noop/s")):
        rows.append({"figure": f"{label} (p99 {r[key]['p99_ms']} ms)", "ours": r[key]["per_second"],
                     "baseline": None, "ratio": None, "target": "", "pass": None})
    ratio = r["apply_update"]["per_second"] / r["merge"]["per_second"]
    rows.append({"figure": f"apply-update/s vs merge PATCH/s (p99 {r['apply_update']['p99_ms']} vs "
                           f"{r['merge']['p99_ms']} ms)", "ours": r["apply_update"]["per_second"],
                 "baseline": r["merge"]["per_second"], "ratio": round(ratio, 2), "target": f">= {TARGET}x",
                 "pass": ratio >= TARGET})
    return rows


def main() -> int:
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="reconcile-bench-ssa-"))
    results: dict[str, Any] = {}
    procs: list[Any] = []
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(bench(tmp, results, procs))
    finally:
        for proc in reversed(procs):
            if isinstance(proc, embedded.EmbeddedEtcd):
                proc.stop()
            else:
                api_bench.stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    rows = table(results)
    api_bench.print_table(rows)
    results["table"] = rows
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "loadavg_at_end": os.getloadavg()}
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    now = datetime.datetime.now(datetime.UTC)
    results["date"] = now.isoformat(timespec="seconds")
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"ssa-{now.strftime('%Y-%m-%d')}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwall time {results['wall_seconds']} s; results in {out}")
    return 0  # a benchmark: misses are reported in the table, not as a failure


if __name__ == "__main__":
    sys.exit(main())
