"""What the secured default costs (issue 10): the same API server with TLS + authentication + RBAC on,
against it with them off (plain HTTP, AlwaysAllow, the insecure configuration), in one run.

Run by `make bench`. Starts two embedded etcds (one plain; one with client and peer TLS and
client-certificate auth, as `reconcile up` runs it) and two API server subprocesses on them:
  insecure  plain HTTP, no authenticator (every caller the admin), AlwaysAllow;
  secured   HTTPS only, the cluster CA as client CA, a static token file, `--authorization-mode RBAC`,
            the etcd client certificate; the load's user `bench` is bound to a Role for ConfigMaps in
            `default` by a RoleBinding (not system:masters, so RBAC evaluates every request).
Beside each rate, the API server's CPU time per request (from /proc), which other work on a shared
machine disturbs far less than the rates. Figures, each for both servers (the rounds alternate insecure / secured; the best of each is reported):
  1. CREATES ConfigMap creates (~2 KB) at concurrency 32 (wrk, bench/create.lua, a bearer token header);
  2. GET by name over 32 kept-alive connections for GET_SECONDS (wrk, bench/get.lua, the bearer token);
     target: secured >= 0.8x insecure;
  3. new connections per second, each carrying one GET by name and closed by the server: with TLS a
     full handshake with the client certificate of `bench` (Python asyncio + ssl, HANDSHAKE_CONCURRENCY
     at once for HANDSHAKE_SECONDS); insecure: a new plain TCP connection.
wrk sends the bearer token as a header (-H); it does not check the server's certificate (loopback
only). Only 127.0.0.1; every process started here is stopped by pid in `finally` blocks. Prints a
table and writes bench/results/secured-<date>.json. The machine is shared: figures are noisy.
`BENCH_SECURED_AUTHORIZATION=AlwaysAllow` keeps TLS and tokens but drops RBAC (to tell their costs apart).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import api as api_bench  # bench/api.py: wrk drivers, process helpers, the table printer
import httpx
import uvloop

from reconcile.etcdserver import embedded
from reconcile.pki import certs
from reconcile.pki import cluster as pki_cluster

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
COLLECTION = "/api/v1/namespaces/default/configmaps"
CREATES = 1_000
ROUNDS = 2
HANDSHAKE_SECONDS = 4.0
HANDSHAKE_CONCURRENCY = 8
USER, GROUP = "bench", "bench-users"
GET_TARGET = 0.8


@dataclass
class Server:
    """One API server under test and how the load reaches it."""

    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    headers: dict[str, str] = field(default_factory=dict)  # what wrk sends (the bearer token)
    admin_verify: ssl.SSLContext | bool = True  # httpx: the admin's client certificate and the CA
    load_tls: ssl.SSLContext | None = None  # the handshake load: the CA and bench's client certificate
    names_file: Path | None = None


@dataclass
class Run:
    tmp: Path
    results: dict[str, Any] = field(default_factory=dict)
    etcds: list[embedded.EmbeddedEtcd] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)


def _context(pki: pki_cluster.ClusterPki, pair: pki_cluster.Pair | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    if pair is not None:
        context.load_cert_chain(str(pair.cert), str(pair.key))
    return context


def _client_pair(pki: pki_cluster.ClusterPki) -> pki_cluster.Pair:
    """A client certificate for the load's user, signed by the cluster CA."""
    issued = certs.issue(pki.ca.read(), common_name=USER, organizations=(GROUP,), client=True)
    pair = pki.pair("bench-user")
    pair.key.write_bytes(issued.key)
    pair.key.chmod(0o600)
    pair.cert.write_bytes(issued.cert)
    return pair


async def _ready(server: Server, log: Path) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=2.0, verify=server.admin_verify) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited; log:\n{log.read_text()[-3000:]}")
            try:
                if (await client.get(server.url + "/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{server.name} not ready; log:\n{log.read_text()[-3000:]}")


async def start_servers(run: Run) -> tuple[Server, Server]:
    pki = pki_cluster.ClusterPki(run.tmp / "pki")
    pki.ensure()
    plain_etcd = embedded.EmbeddedEtcd(run.tmp / "etcd-plain").start()
    run.etcds.append(plain_etcd)
    ca = pki.etcd_ca.cert
    tls_etcd = embedded.EmbeddedEtcd(run.tmp / "etcd-tls", tls=embedded.MemberTls(
        trusted_ca=ca, cert=pki.etcd_server.cert, key=pki.etcd_server.key,
        peer_trusted_ca=ca, peer_cert=pki.etcd_peer.cert, peer_key=pki.etcd_peer.key)).start()
    run.etcds.append(tls_etcd)
    token = secrets.token_urlsafe(24)
    tokens = run.tmp / "tokens.csv"
    tokens.write_text(f'{token},{USER},bench-uid,"{GROUP}"\n')
    tokens.chmod(0o600)

    base = [sys.executable, "-m", "reconcile", "apiserver", "--etcd-prefix", "/bench"]
    port = api_bench.free_port()
    insecure_log = run.tmp / "insecure.log"
    insecure = Server("insecure", f"http://{HOST}:{port}", port, api_bench.start_process(
        [*base, "--etcd", plain_etcd.endpoint, "--port", str(port)], insecure_log))
    run.servers.append(insecure)
    port = api_bench.free_port()
    secured_log = run.tmp / "secured.log"
    secured = Server("secured", f"https://{HOST}:{port}", port, api_bench.start_process(
        [*base, "--etcd", tls_etcd.endpoint, "--port", str(port),
         "--etcd-cacert", str(ca), "--etcd-cert", str(pki.apiserver_etcd_client.cert),
         "--etcd-key", str(pki.apiserver_etcd_client.key),
         "--tls-cert-file", str(pki.apiserver.cert), "--tls-private-key-file", str(pki.apiserver.key),
         "--client-ca-file", str(pki.ca.cert), "--token-auth-file", str(tokens),
         "--authorization-mode", os.environ.get("BENCH_SECURED_AUTHORIZATION", "RBAC")], secured_log),
        headers={"Authorization": f"Bearer {token}"}, admin_verify=_context(pki, pki.admin),
        load_tls=_context(pki, _client_pair(pki)))
    run.servers.append(secured)
    await asyncio.gather(_ready(insecure, insecure_log), _ready(secured, secured_log))
    await _bind_edit(secured)
    return insecure, secured


async def _bind_edit(server: Server) -> None:
    """A Role for ConfigMaps in default bound to bench (the aggregated `edit` is filled in by the
    controller-manager, which does not run here); wait until the token is allowed."""
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "bench-configmaps", "namespace": "default"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "create"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "bench-configmaps", "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "bench-configmaps"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}]}
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0, verify=server.admin_verify) as admin:
        (await admin.post(f"{rbac}/roles", json=role)).raise_for_status()
        (await admin.post(f"{rbac}/rolebindings", json=binding)).raise_for_status()
    assert server.load_tls is not None
    deadline = time.monotonic() + 15
    async with httpx.AsyncClient(base_url=server.url, timeout=10.0, verify=server.load_tls) as load:
        while time.monotonic() < deadline:
            if (await load.get(COLLECTION, params={"limit": "1"}, headers=server.headers)).status_code == 200:
                return
            await asyncio.sleep(0.05)
    raise RuntimeError("the bench user's RoleBinding did not take effect")


def _wrk_headers(server: Server) -> list[str]:
    return [arg for name, value in server.headers.items() for arg in ("-H", f"{name}: {value}")]


async def creates(server: Server, prefix: str, body_file: Path) -> dict[str, Any]:
    cpu = api_bench.cpu_seconds(server.process.pid)
    result = await api_bench.run_wrk(
        ["-t1", f"-c{api_bench.CONCURRENCY}", "-d300s", "--timeout", "30s", "--latency", *_wrk_headers(server),
         "-s", str(HERE / "create.lua"), server.url + COLLECTION],
        {"BENCH_COUNT": str(CREATES), "BENCH_PREFIX": prefix, "BENCH_BODY": str(body_file)}, limit=320)
    elapsed = result["t_end"] - result["t_start"]
    cpu = api_bench.cpu_seconds(server.process.pid) - cpu
    return {"created": result["ok"], "failed": result["bad"], "last_failed_status": result["last_bad"],
            "server_cpu_us_each": round(cpu * 1e6 / max(1, result["ok"])),
            "seconds": round(elapsed, 3), "per_second": round(result["ok"] / elapsed, 1) if elapsed > 0 else 0.0,
            "p50_ms": result["p50_us"] / 1000, "p99_ms": result["p99_us"] / 1000}


async def gets(server: Server) -> dict[str, Any]:
    assert server.names_file is not None
    cpu = api_bench.cpu_seconds(server.process.pid)
    result = await api_bench.run_wrk(
        ["-t2", f"-c{api_bench.CONCURRENCY}", f"-d{api_bench.GET_SECONDS}s", "--timeout", "10s", "--latency",
         *_wrk_headers(server), "-s", str(HERE / "get.lua"), server.url + COLLECTION + "/"],
        {"BENCH_NAMES": str(server.names_file), "BENCH_PATH": COLLECTION + "/"}, limit=api_bench.GET_SECONDS + 30)
    seconds = result["duration_us"] / 1e6
    cpu = api_bench.cpu_seconds(server.process.pid) - cpu
    return {"requests": result["requests"], "seconds": round(seconds, 3),
            "server_cpu_us_each": round(cpu * 1e6 / max(1, result["requests"])),
            "per_second": round(result["requests"] / seconds, 1), "non2xx": result["non2xx"],
            "socket_errors": result["socket_errors"], "p50_ms": result["p50_us"] / 1000,
            "p99_ms": result["p99_us"] / 1000}


async def names_of(server: Server, folder: Path) -> list[str]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60.0, verify=server.admin_verify) as client:
        response = await client.get(COLLECTION)
        response.raise_for_status()
    names = [o["metadata"]["name"] for o in response.json()["items"]]
    server.names_file = folder / f"names-{server.name}.txt"
    server.names_file.write_text("".join(f"{n}\n" for n in names))
    return names


async def new_connections(server: Server, name: str) -> dict[str, Any]:
    """New connections per second, each one GET by name (with TLS: a full handshake presenting bench's
    client certificate; the server closes after the answer)."""
    request = (f"GET {COLLECTION}/{name} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in ({} if server.load_tls else server.headers).items())
               + "\r\n").encode()
    done = failed = 0
    latencies: list[float] = []
    deadline = time.monotonic() + HANDSHAKE_SECONDS

    async def worker() -> None:
        nonlocal done, failed
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                reader, writer = await asyncio.open_connection(
                    HOST, server.port, ssl=server.load_tls, server_hostname=HOST if server.load_tls else None)
                writer.write(request)
                answer = await reader.read()  # until the server closes
                writer.close()
                try:
                    await writer.wait_closed()
                except (ssl.SSLError, ConnectionError):
                    pass
            except (OSError, ssl.SSLError):
                failed += 1
                continue
            if answer.startswith(b"HTTP/1.1 200"):
                done += 1
                latencies.append(time.monotonic() - started)
            else:
                failed += 1

    began = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(HANDSHAKE_CONCURRENCY)))
    seconds = time.monotonic() - began
    return {"connections": done, "failed": failed, "seconds": round(seconds, 3),
            "per_second": round(done / seconds, 1), "p50_ms": round(api_bench.percentile(latencies, 50) * 1000, 2),
            "p99_ms": round(api_bench.percentile(latencies, 99) * 1000, 2)}


async def bench(run: Run) -> None:
    r = run.results
    r["loadavg_at_start"] = os.getloadavg()
    insecure, secured = await start_servers(run)
    body_file = run.tmp / "body.json"
    body_file.write_bytes(api_bench.object_body())
    say(f"insecure {insecure.url} (pid {insecure.process.pid}), secured {secured.url} (pid {secured.process.pid})")
    runs: dict[str, list[dict[str, Any]]] = {f"{kind}_{s.name}": [] for kind in ("creates", "get", "connections")
                                             for s in (insecure, secured)}
    names: dict[str, list[str]] = {}
    for round_ in range(1, ROUNDS + 1):
        for server in (insecure, secured) if round_ % 2 else (secured, insecure):
            say(f"round {round_}, {server.name}: {CREATES} creates (wrk) ...")
            runs[f"creates_{server.name}"].append(await creates(server, f"r{round_}-", body_file))
            say(f"  {runs[f'creates_{server.name}'][-1]}")
            names[server.name] = await names_of(server, run.tmp)
            say(f"round {round_}, {server.name}: GET by name, {api_bench.CONCURRENCY} kept-alive connections (wrk) ...")
            runs[f"get_{server.name}"].append(await gets(server))
            say(f"  {runs[f'get_{server.name}'][-1]}")
            say(f"round {round_}, {server.name}: new connections, one GET each ...")
            runs[f"connections_{server.name}"].append(await new_connections(server, names[server.name][0]))
            say(f"  {runs[f'connections_{server.name}'][-1]}")
    for key, results in runs.items():
        best = max(results, key=lambda x: x["per_second"])
        r[key] = {**best, "runs": results}


def say(text: str) -> None:
    print(text, flush=True)


def table(r: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(figure: str, ours: float, baseline: float, target: str, ok: bool | None) -> None:
        rows.append({"figure": figure, "ours": ours, "baseline": baseline,
                     "ratio": round(ours / baseline, 3) if baseline else None, "target": target, "pass": ok})

    get, plain = r["get_secured"], r["get_insecure"]
    row(f"GET by name /s ({api_bench.CONCURRENCY} kept-alive conn), secured vs insecure", get["per_second"],
        plain["per_second"], f">= {GET_TARGET}x insecure",
        get["per_second"] >= GET_TARGET * plain["per_second"] and get["non2xx"] == 0)
    cpu, plain_cpu = (min(x["server_cpu_us_each"] for x in y["runs"]) for y in (get, plain))
    row("GET: API server CPU us per request (least of the rounds)", cpu, plain_cpu, "(reported)", None)
    row("GET p50 ms", get["p50_ms"], plain["p50_ms"], "", None)
    row("GET p99 ms", get["p99_ms"], plain["p99_ms"], "", None)
    made, plain_made = r["creates_secured"], r["creates_insecure"]
    row("creates /s (32 conc), secured vs insecure", made["per_second"], plain_made["per_second"], "(reported)",
        made["failed"] == 0 and plain_made["failed"] == 0)
    row("create p99 ms", made["p99_ms"], plain_made["p99_ms"], "", None)
    cpu, plain_cpu = (min(x["server_cpu_us_each"] for x in y["runs"]) for y in (made, plain_made))
    row("create: API server CPU us per request (least of the rounds)", cpu, plain_cpu, "(reported)", None)
    conns, plain_conns = r["connections_secured"], r["connections_insecure"]
    row(f"new connections /s, 1 GET each ({HANDSHAKE_CONCURRENCY} at once): mTLS handshake vs plain TCP",
        conns["per_second"], plain_conns["per_second"], "(reported)", conns["failed"] == 0)
    row("new connection + GET p99 ms", conns["p99_ms"], plain_conns["p99_ms"], "", None)
    return rows


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed: run `bash bench/setup.sh`", file=sys.stderr)
        return 2
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="reconcile-bench-secured-"))
    run = Run(tmp)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(bench(run))
    finally:
        for server in run.servers:
            api_bench.stop_process(server.process)
        for etcd_server in run.etcds:
            etcd_server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    r = run.results
    rows = table(r)
    api_bench.print_table(rows)
    r["table"] = rows
    r["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "loadavg_at_end": os.getloadavg()}
    r["wall_seconds"] = round(time.monotonic() - started, 1)
    now = datetime.datetime.now(datetime.UTC)
    r["date"] = now.isoformat(timespec="seconds")
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"secured-{now.strftime('%Y-%m-%d')}.json"
    out.write_text(json.dumps(r, indent=2, default=str) + "\n")
    print(f"\nwall time {r['wall_seconds']} s; results in {out}")
    return 0  # a benchmark: misses are reported in the table, not as a failure


if __name__ == "__main__":
    sys.exit(main())
