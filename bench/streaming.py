"""Streaming benchmark (issue 13): kubectl exec and cp through the API server and node agent, against
the same operations straight on the Docker engine.

`reconcile up` in a temporary state dir, one pod (`reconcile-hello:1.0`) Ready, then:
- exec round trip: `kubectl exec POD -- true` vs `docker exec CID true`, p50 and p90 of N runs
  (target: ours <= 1.5x docker's p50);
- copy: a random 100 MB file into the pod with `kubectl cp` vs `docker cp` (target: >= 0.5x docker's
  throughput), and back out, checked by SHA-256;
- port-forward: wrk at 16 connections through `kubectl port-forward pod/POD L:8080` vs wrk against the
  pod's IP on the node's bridge, for the 6-byte index page (busybox httpd closes each connection, so
  every request is a new forwarded connection) and a 1 MiB file (throughput); requests/s, MB/s and
  p99 (target: >= 0.3x the direct throughput).
Both sides reach the same container. kubectl talks to the API server over TLS with the admin's
certificate (as `up` writes its kubeconfig); nothing leaves 127.0.0.1 and the engine's bridge.

Usage: python bench/streaming.py [--runs 20] [--megabytes 100] [--seconds 10]
Removes the pod's namespace, stops what it started with `reconcile down --remove-containers` and
deletes its temporary directories.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconcile.client import api as client_api
from reconcile.client import config as client_config
from reconcile.core import errors
from reconcile.node import images

NAMESPACE = "rcbench-stream"
POD = "stream"
HERE = Path(__file__).resolve().parent
CONNECTIONS = 16


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stdout}{done.stderr}")
    return done.stdout


def poll(condition, *, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except errors.ApiError:
            value = None
        if value:
            return value
        time.sleep(0.1)  # polling interval of a benchmark driver, not synchronization of a test
    raise TimeoutError(f"timed out waiting for {what}")


def timed(*args: str, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    run(*args, env=env)
    return time.perf_counter() - started


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wrk(url: str, seconds: int, connections: int = CONNECTIONS) -> dict[str, float]:
    """wrk at `connections` connections for `seconds`: requests/s, MB/s, p99 (ms), errors."""
    done = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
                           "-s", str(HERE / "plain.lua"), url], capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH-RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {done.stdout}{done.stderr}")
    result = json.loads(line.removeprefix("BENCH-RESULT "))
    elapsed = result["duration_us"] / 1e6
    return {"per_second": result["requests"] / elapsed, "mb_per_second": result["bytes"] / elapsed / 1e6,
            "p99_ms": result["p99_us"] / 1000, "errors": result["non2xx"] + result["socket_errors"] + result["timeouts"]}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/PID/stat), 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def port_forward_figures(kube_env: dict[str, str], pod_ip: str, seconds: int, servers: dict[str, int]) -> None:
    """wrk through `kubectl port-forward` and straight to the pod, one after the other, per payload;
    and the CPU each party of the forward (kubectl, and `servers`: name -> pid) spent per request.
    kubectl's share bounds the ratio whatever ours cost: with the direct run using the whole
    machine, zero cost on our side still leaves 1 / (1 + kubectl's CPU per request x direct rate / cores)."""
    if shutil.which("wrk") is None:
        print("port-forward: skipped, wrk is not installed (apt-get install wrk)", flush=True)
        return
    run("kubectl", "exec", "-n", NAMESPACE, POD, "--", "sh", "-c", "head -c 1048576 /dev/urandom > /www/blob",
        env=kube_env)
    local = free_port()
    with tempfile.TemporaryFile() as errors_file:
        # stdout to /dev/null: kubectl prints a line per connection, which would fill a pipe nobody reads
        forward = subprocess.Popen(["kubectl", "port-forward", "-n", NAMESPACE, "--address", "127.0.0.1",
                                    f"pod/{POD}", f"{local}:8080"], env=kube_env, stdout=subprocess.DEVNULL,
                                   stderr=errors_file)
        try:
            def listening() -> bool:
                if forward.poll() is not None:
                    errors_file.seek(0)
                    raise RuntimeError(f"kubectl port-forward ended: {errors_file.read().decode()}")
                try:
                    socket.create_connection(("127.0.0.1", local), timeout=1).close()
                except OSError:
                    return False
                return True

            poll(listening, timeout=60, what="kubectl port-forward listening")
            for path, what in (("/index.html", "6-byte page, a new connection per request"), ("/blob", "1 MiB file")):
                parties = {"kubectl": forward.pid, **servers}
                before = {name: cpu_seconds(pid) for name, pid in parties.items()}
                ours = wrk(f"http://127.0.0.1:{local}{path}", seconds)
                spent = {name: cpu_seconds(pid) - before[name] for name, pid in parties.items()}
                direct = wrk(f"http://{pod_ip}:8080{path}", seconds)
                ratio = ours["per_second"] / direct["per_second"] if direct["per_second"] else 0.0
                print(f"port-forward, {what}, wrk {CONNECTIONS} connections {seconds} s: kubectl port-forward "
                      f"{ours['per_second']:.0f}/s {ours['mb_per_second']:.1f} MB/s p99 {ours['p99_ms']:.1f} ms "
                      f"({ours['errors']:.0f} errors); pod directly {direct['per_second']:.0f}/s "
                      f"{direct['mb_per_second']:.1f} MB/s p99 {direct['p99_ms']:.1f} ms ({direct['errors']:.0f} "
                      f"errors): {ratio:.2f}x (target >= 0.3x)", flush=True)
                requests = ours["per_second"] * seconds
                if requests:
                    per_request = {name: cpu / requests * 1000 for name, cpu in spent.items()}
                    bound = 1 / (1 + per_request["kubectl"] / 1000 * direct["per_second"] / (os.cpu_count() or 1))
                    print("  CPU per forwarded request: " + ", ".join(f"{name} {ms:.2f} ms" for name, ms in
                                                                    per_request.items()) +
                          f"; kubectl's share alone bounds the ratio at {bound:.2f}x on {os.cpu_count()} cores",
                          flush=True)
        finally:
            forward.terminate()
            try:
                forward.wait(timeout=10)
            except subprocess.TimeoutExpired:
                forward.kill()
                forward.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=10, help="each wrk run of the port-forward figures")
    options = parser.parse_args()

    state_dir = Path(tempfile.mkdtemp(prefix="rcbench-stream-"))
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILE_SERVER", "KUBECONFIG")}
    env["RECONCILE_STATE_DIR"] = str(state_dir)
    port = free_port()
    run(sys.executable, "-m", "reconcile", "up", "--api-port", str(port), env=env)
    state = json.loads((state_dir / "state.json").read_text())
    kube_env = dict(env, KUBECONFIG=state["kubeconfig"], HOME=str(state_dir), KUBECACHEDIR=str(state_dir / "cache"))
    client = client_api.Client(client_config.load_config(kubeconfig=state["kubeconfig"]))
    work = Path(tempfile.mkdtemp(prefix="rcbench-stream-data-"))
    try:
        client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        client.create("v1", "pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD},
                                     "spec": {"terminationGracePeriodSeconds": 1,
                                              "containers": [{"name": "app", "image": images.HELLO_IMAGE}]}},
                      namespace=NAMESPACE)
        pod = poll(lambda: (lambda p: p if (p.get("status") or {}).get("phase") == "Running" else None)(
            client.get("v1", "pods", POD, namespace=NAMESPACE)), timeout=120, what="the pod Running")
        uid = pod["metadata"]["uid"]
        [cid] = run("docker", "ps", "-q", "--no-trunc", "--filter", f"label=reconcile.pod.uid={uid}",
                    "--filter", "label=reconcile.container.name=app").split()
        kubectl_exec = ["kubectl", "exec", "-n", NAMESPACE, POD, "--", "true"]
        timed(*kubectl_exec, env=kube_env)  # warm kubectl's discovery cache, as a user's second command
        ours = sorted(timed(*kubectl_exec, env=kube_env) for _ in range(options.runs))
        theirs = sorted(timed("docker", "exec", cid, "true") for _ in range(options.runs))
        # kubectl's own share: its start, the kubeconfig, one GET of the pod (an exec makes the same GET first)
        kubectl_get = statistics.median(timed("kubectl", "get", "pod", "-n", NAMESPACE, POD, env=kube_env)
                                        for _ in range(options.runs))
        p50_ours, p50_docker = statistics.median(ours), statistics.median(theirs)
        print(f"exec round trip, {options.runs} runs: kubectl exec p50 {p50_ours * 1000:.0f} ms "
              f"(p90 {ours[int(len(ours) * 0.9) - 1] * 1000:.0f} ms), docker exec p50 {p50_docker * 1000:.0f} ms "
              f"(p90 {theirs[int(len(theirs) * 0.9) - 1] * 1000:.0f} ms): {p50_ours / p50_docker:.2f}x "
              f"(target <= 1.5x); kubectl get pod p50 {kubectl_get * 1000:.0f} ms (kubectl's start and the "
              f"GET every exec makes first), so exec itself adds {(p50_ours - kubectl_get) * 1000:.0f} ms", flush=True)

        source = work / "big.bin"
        with source.open("wb") as f:
            for _ in range(options.megabytes):
                f.write(os.urandom(1 << 20))
        size = source.stat().st_size / 1e6
        ours_in = timed("kubectl", "cp", str(source), f"{NAMESPACE}/{POD}:/tmp/ours.bin", env=kube_env)
        docker_in = timed("docker", "cp", str(source), f"{cid}:/tmp/docker.bin")
        back = work / "back.bin"
        ours_out = timed("kubectl", "cp", f"{NAMESPACE}/{POD}:/tmp/ours.bin", str(back), env=kube_env)
        assert sha256(back) == sha256(source), "kubectl cp changed the file"
        back.unlink()
        docker_out = timed("docker", "cp", f"{cid}:/tmp/docker.bin", str(back))
        for direction, mine, docker_s in (("into the pod", ours_in, docker_in), ("out of the pod", ours_out, docker_out)):
            print(f"copy {size:.0f} MB {direction}: kubectl cp {size / mine:.0f} MB/s, docker cp "
                  f"{size / docker_s:.0f} MB/s: {docker_s / mine:.2f}x (target >= 0.5x)", flush=True)
        pod_ip = (client.get("v1", "pods", POD, namespace=NAMESPACE).get("status") or {}).get("podIP")
        if not pod_ip:
            raise RuntimeError("the pod has no IP to reach it directly")
        servers = {name: int(state["components"][component]["pid"])
                   for name, component in (("API server", "apiserver"), ("node agent", "node"))}
        port_forward_figures(kube_env, pod_ip, options.seconds, servers)
    finally:
        try:
            client.delete("v1", "namespaces", NAMESPACE)
        except errors.ApiError as exc:
            print(f"cleanup: {exc}", file=sys.stderr)
        client.close()
        # --remove-containers: also the node's network and its service proxy's nft table and route
        run(sys.executable, "-m", "reconcile", "down", "--remove-containers", env=env)
        node = state["components"]["node"]["node"]
        subprocess.run(["docker", "network", "rm", f"reconcile-{node}"], capture_output=True, timeout=60)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
