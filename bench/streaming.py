"""Streaming benchmark (issue 13): kubectl exec and cp through the API server and node agent, against
the same operations straight on the Docker engine.

`reconcile up` in a temporary state dir, one pod (`reconcile-hello:1.0`) Ready, then:
- exec round trip: `kubectl exec POD -- true` vs `docker exec CID true`, p50 and p90 of N runs
  (target: ours <= 1.5x docker's p50);
- copy: a random 100 MB file into the pod with `kubectl cp` vs `docker cp` (target: >= 0.5x docker's
  throughput), and back out, checked by SHA-256.
Both sides reach the same container. kubectl talks to the API server over TLS with the admin's
certificate (as `up` writes its kubeconfig); nothing leaves 127.0.0.1 and the engine's bridge.

Usage: python bench/streaming.py [--runs 20] [--megabytes 100]
Stops what it started with `reconcile down` and removes the pod's namespace.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--megabytes", type=int, default=100)
    options = parser.parse_args()

    state_dir = Path(tempfile.mkdtemp(prefix="rcbench-stream-"))
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILE_SERVER", "KUBECONFIG")}
    env["RECONCILE_STATE_DIR"] = str(state_dir)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
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
        p50_ours, p50_docker = statistics.median(ours), statistics.median(theirs)
        print(f"exec round trip, {options.runs} runs: kubectl exec p50 {p50_ours * 1000:.0f} ms "
              f"(p90 {ours[int(len(ours) * 0.9) - 1] * 1000:.0f} ms), docker exec p50 {p50_docker * 1000:.0f} ms "
              f"(p90 {theirs[int(len(theirs) * 0.9) - 1] * 1000:.0f} ms): {p50_ours / p50_docker:.2f}x "
              "(target <= 1.5x)", flush=True)

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
    finally:
        try:
            client.delete("v1", "namespaces", NAMESPACE)
        except errors.ApiError as exc:
            print(f"cleanup: {exc}", file=sys.stderr)
        client.close()
        run(sys.executable, "-m", "reconcile", "down", env=env)
        node = state["components"]["node"]["node"]
        subprocess.run(["docker", "network", "rm", f"reconcile-{node}"], capture_output=True, timeout=60)
        for path in work.iterdir():
            path.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
