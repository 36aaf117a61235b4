"""Runtime benchmark (issue 4): pods on the local Docker engine, against a raw floor and Docker Swarm.

Three parts on the same engine ($DOCKER_HOST or the default socket), one after the other:
- floor: the containers N pods need (an infra + an app container per pod, the app joining the
  infra's network namespace, on one bridge network) started with raw `docker run -d`, 8 at a time;
- swarm (the peer): `docker swarm init` on 127.0.0.1, a service of N replicas, `docker kill` of
  one task's container, a rolling update with the same parallelism and stop grace as ours, then
  `docker swarm leave --force`. `--no-resolve-image` is ALWAYS passed: without it Swarm asks a
  public registry for the image digest, which is never allowed here;
- ours: `reconcile up` in a temporary state dir (etcd, API server, controller-manager, scheduler,
  a node agent on this engine), a Deployment of N replicas -> all Ready; `docker kill` of one app
  container -> running again; delete one pod -> replacement Ready; rolling update of all N ->
  complete; CPU seconds and RSS of each component read from /proc.
Both sides run the locally built `reconcile-hello:1.0` (busybox httpd under `sh`, which exits at
once on SIGTERM), so no side waits out a grace period. No registry is ever contacted.

Usage: python bench/runtime.py [--replicas 50] [--parallel 8] [--parts floor,swarm,ours]
Stops everything it started by pid or by the names it gave (containers, service, network).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

from reconcile.client import api as client_api
from reconcile.client import config as client_config
from reconcile.core import errors
from reconcile.node import docker as docker_mod
from reconcile.node import images

APP_IMAGE = images.HELLO_IMAGE
INFRA_IMAGE = images.PAUSE_IMAGE
FLOOR_NETWORK = "rcbench-floor"
FLOOR_SUBNET = "10.239.0.0/22"
SERVICE = "rcbench"
NAMESPACE = "rcbench"
STOP_GRACE = 10  # seconds, both sides (the image exits at once on SIGTERM anyway)
COMPONENTS = ("apiserver", "scheduler", "controller-manager", "node")
TICK = os.sysconf("SC_CLK_TCK")


# --- docker CLI --------------------------------------------------------------------------------


def docker(*args: str, check: bool = True, timeout: float = 300) -> str:
    env = dict(os.environ, DOCKER_CLI_HINTS="false")
    done = subprocess.run(["docker", *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def ensure_images() -> None:
    """Build the local images when missing (no registry is reachable)."""

    async def build() -> None:
        runtime = docker_mod.DockerRuntime(os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
        try:
            for tag, dockerfile in ((INFRA_IMAGE, images.PAUSE_DOCKERFILE), (APP_IMAGE, images.HELLO_DOCKERFILE)):
                if not await runtime.image_present(tag):
                    await images.build(runtime, tag, dockerfile)
        finally:
            await runtime.close()

    asyncio.run(build())


class StartEvents:
    """`docker events` for container starts matching label filters; `wait()` returns when one arrives."""

    def __init__(self, *labels: str) -> None:
        # --since replays what happened after this moment: no race with the subscription starting
        args = ["docker", "events", "--since", f"{time.time():.6f}", "--format", "{{.Actor.ID}}",
                "--filter", "type=container", "--filter", "event=start"]
        for label in labels:
            args += ["--filter", f"label={label}"]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self._line: str | None = None
        self._arrived = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self._line = line.strip()
        self._arrived.set()

    def wait(self, timeout: float) -> str:
        if not self._arrived.wait(timeout):
            raise TimeoutError("no container start seen")
        return self._line or ""

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def poll(condition: Callable[[], Any], *, timeout: float, interval: float = 0.05, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


# --- floor -------------------------------------------------------------------------------------


def _fresh_floor_network() -> None:
    """The floor's bridge network, removed and made again; or, when Docker refuses to remove it
    ("has active endpoints" with no container attached: dockerd 20.10 sometimes keeps a removed
    container's endpoint, and then every later run failed to create it), the one an earlier run
    made, reused as it is (ours: its name and subnet)."""
    docker("network", "rm", FLOOR_NETWORK, check=False)
    if not docker("network", "ls", "-q", "--filter", f"name=^{FLOOR_NETWORK}$").split():
        docker("network", "create", "--driver", "bridge", "--subnet", FLOOR_SUBNET, FLOOR_NETWORK)
        return
    subnets = docker("network", "inspect", FLOOR_NETWORK, "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}").split()
    if subnets != [FLOOR_SUBNET]:
        raise RuntimeError(f"a network named {FLOOR_NETWORK} with subnets {subnets} exists and cannot be removed")
    print(f"floor: reusing the network {FLOOR_NETWORK} (Docker keeps an endpoint of a removed container on it)",
          flush=True)


def floor(replicas: int, parallel: int) -> dict[str, float]:
    """Seconds to start every pod's infra + app container with raw `docker run -d`, `parallel` pods at a time."""
    _fresh_floor_network()
    names: list[str] = []

    def pod(index: int) -> None:
        infra, app = f"rcbench-floor-pause-{index}", f"rcbench-floor-app-{index}"
        names.extend([infra, app])
        docker("run", "-d", "--name", infra, "--network", FLOOR_NETWORK, INFRA_IMAGE)
        docker("run", "-d", "--name", app, "--network", f"container:{infra}", "-e", "VALUE=one", APP_IMAGE)

    try:
        started = time.monotonic()
        with futures.ThreadPoolExecutor(parallel) as pool:
            list(pool.map(pod, range(replicas)))
        elapsed = time.monotonic() - started
        running = docker("ps", "-q", "--filter", "name=rcbench-floor-app-", "--filter", "status=running").split()
        assert len(running) == replicas, f"{len(running)} floor containers running, wanted {replicas}"
        return {"ready": elapsed}
    finally:
        if names:
            docker("rm", "-f", *names, check=False)
        docker("network", "rm", FLOOR_NETWORK, check=False)


# --- swarm -------------------------------------------------------------------------------------


def _swarm_running() -> list[str]:
    return docker("ps", "-q", "--no-trunc", "--filter", f"label=com.docker.swarm.service.name={SERVICE}",
                  "--filter", "status=running").split()


def swarm(replicas: int, parallel: int) -> dict[str, float]:
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip()
    if state != "inactive":
        raise RuntimeError(f"this engine is already in a swarm ({state}); not touching it")
    had_gwbridge = bool(docker("network", "ls", "-q", "--filter", "name=^docker_gwbridge$").split())
    docker("swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377")
    result: dict[str, float] = {}
    try:
        started = time.monotonic()
        docker("service", "create", "--no-resolve-image", "--detach", "--name", SERVICE, "--replicas", str(replicas),
               "--env", "VALUE=one", "--stop-grace-period", f"{STOP_GRACE}s", "--update-parallelism", str(parallel),
               "--update-delay", "0s", "--update-order", "stop-first", APP_IMAGE)
        poll(lambda: len(_swarm_running()) >= replicas, timeout=300, what="swarm replicas running")
        result["ready"] = time.monotonic() - started

        victim = _swarm_running()[0]
        events = StartEvents(f"com.docker.swarm.service.name={SERVICE}")
        try:
            started = time.monotonic()
            docker("kill", victim)
            events.wait(120)
            result["kill"] = time.monotonic() - started
        finally:
            events.close()
        poll(lambda: len(_swarm_running()) >= replicas, timeout=120, what="swarm back to full strength")

        started = time.monotonic()
        docker("service", "update", "--no-resolve-image", "--detach", "--env-add", "VALUE=two",
               "--update-parallelism", str(parallel), "--update-delay", "0s", "--update-order", "stop-first",
               "--stop-grace-period", f"{STOP_GRACE}s", SERVICE)

        def updated() -> bool:
            status = docker("service", "inspect", "--format", "{{json .UpdateStatus}}", SERVICE).strip()
            state = (json.loads(status) or {}).get("State") if status and status != "null" else None
            return state == "completed" and len(_swarm_running()) >= replicas

        poll(updated, timeout=600, interval=0.1, what="swarm rolling update")
        result["update"] = time.monotonic() - started
        return result
    finally:
        docker("service", "rm", SERVICE, check=False)
        docker("swarm", "leave", "--force", check=False)
        poll(lambda: not _swarm_running(), timeout=120, what="swarm tasks gone")
        if not had_gwbridge:  # swarm init created it; leave does not remove it
            docker("network", "rm", "docker_gwbridge", check=False)


# --- ours --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _reconcile(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "reconcile", *args], capture_output=True, text=True, env=env,
                          timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"reconcile {' '.join(args)}: {done.stdout}{done.stderr}")
    return done.stdout


def proc_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS MiB) of a live process, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return cpu, rss


def _deployment(replicas: int, parallel: int) -> dict[str, Any]:
    labels = {"app": "bench"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "strategy": {"type": "RollingUpdate",  # = swarm's stop-first with parallelism `parallel`
                                  "rollingUpdate": {"maxSurge": 0, "maxUnavailable": parallel}},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "terminationGracePeriodSeconds": STOP_GRACE,
                         "containers": [{"name": "app", "image": APP_IMAGE,
                                         "env": [{"name": "VALUE", "value": "one"}]}]}}}}


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


class PodView:
    """The namespace's pods, kept current by a watch thread (no polling load on the API server)."""

    def __init__(self, server: client_config.ClientConfig) -> None:
        self.client = client_api.Client(server)
        self.pods: dict[str, dict[str, Any]] = {}  # uid -> pod
        self.changed = threading.Condition()
        self._stop = False
        # uid -> monotonic time first seen created / bound / Ready (where the time of a phase goes)
        self.seen: dict[str, dict[str, float]] = {}
        listed = self.client.list("v1", "pods", namespace=NAMESPACE)
        for pod in listed.get("items") or []:
            self.pods[pod["metadata"]["uid"]] = pod
        self._rv = listed["metadata"]["resourceVersion"]
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop:
            try:
                for event in self.client.watch("v1", "pods", namespace=NAMESPACE, resource_version=self._rv,
                                               timeout_seconds=5):
                    obj = event.get("object") or {}
                    self._rv = obj.get("metadata", {}).get("resourceVersion", self._rv)
                    if event.get("type") == "BOOKMARK":
                        continue
                    with self.changed:
                        if event["type"] == "DELETED":
                            self.pods.pop(obj["metadata"]["uid"], None)
                        else:
                            self.pods[obj["metadata"]["uid"]] = obj
                            self._note(obj)
                        self.changed.notify_all()
                    if self._stop:
                        return
            except errors.ApiError:
                time.sleep(0.1)  # reconnect

    def _note(self, pod: dict[str, Any]) -> None:
        marks = self.seen.setdefault(pod["metadata"]["uid"], {"created": time.monotonic()})
        if pod["spec"].get("nodeName"):
            marks.setdefault("bound", time.monotonic())
        if _ready(pod):
            marks.setdefault("ready", time.monotonic())

    def phases(self, since: float) -> str:
        """When the first and last pod were created, bound and Ready, in seconds after `since`."""
        parts = []
        for phase in ("created", "bound", "ready"):
            times = sorted(m[phase] - since for m in self.seen.values() if phase in m and m[phase] >= since)
            if times:
                parts.append(f"{phase} {times[0]:.2f}..{times[-1]:.2f}s")
        return ", ".join(parts)

    def wait(self, condition: Callable[[list[dict[str, Any]]], bool], *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not condition([p for p in self.pods.values() if not p["metadata"].get("deletionTimestamp")]):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out waiting for {what}")
                self.changed.wait(left)

    def close(self) -> None:
        self._stop = True


def ours(replicas: int, parallel: int) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    state_dir = Path(tempfile.mkdtemp(prefix="rcbench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILE_SERVER", "KUBECONFIG")}
    env["RECONCILE_STATE_DIR"] = str(state_dir)
    _reconcile("up", "--api-port", str(_free_port()), env=env)
    state = json.loads((state_dir / "state.json").read_text())
    pids = {name: int(state["components"][name]["pid"]) for name in COMPONENTS}
    node = state["components"]["node"]["node"]
    server = client_config.load_config(kubeconfig=state["kubeconfig"])  # the admin's: `up` runs secured
    result: dict[str, float] = {}
    client = client_api.Client(server)
    view: PodView | None = None
    finished = False
    try:
        poll(lambda: any(_node_ready(n) for n in client.list("v1", "nodes")["items"]), timeout=60, what="node Ready")
        client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        view = PodView(server)
        started = time.monotonic()
        client.create("apps/v1", "deployments", _deployment(replicas, parallel), namespace=NAMESPACE)
        view.wait(lambda pods: sum(map(_ready, pods)) >= replicas, timeout=300, what="pods Ready")
        result["ready"] = time.monotonic() - started
        print(f"ours, {replicas} pods: {view.phases(started)}", flush=True)

        victim_uid = next(iter(view.pods))
        [cid] = docker("ps", "-q", "--no-trunc", "--filter", f"label=reconcile.pod.uid={victim_uid}",
                       "--filter", "label=reconcile.container.name=app", "--filter", "status=running").split()
        events = StartEvents(f"reconcile.pod.uid={victim_uid}", "reconcile.container.name=app")
        try:
            started = time.monotonic()
            docker("kill", cid)
            events.wait(60)
            result["kill"] = time.monotonic() - started
        finally:
            events.close()
        view.wait(lambda pods: sum(map(_ready, pods)) >= replicas, timeout=60, what="back to full strength")

        before = set(view.pods)
        victim = view.pods[next(iter(before))]
        started = time.monotonic()
        client.delete("v1", "pods", victim["metadata"]["name"], namespace=NAMESPACE)
        view.wait(lambda pods: any(p["metadata"]["uid"] not in before and _ready(p) for p in pods),
                  timeout=60, what="the replacement Ready")
        result["replace"] = time.monotonic() - started
        view.wait(lambda pods: len(pods) == replicas and all(map(_ready, pods)), timeout=60, what="settled")

        started = time.monotonic()
        client.patch("apps/v1", "deployments", "bench", {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "env": [{"name": "VALUE", "value": "two"}]}]}}}}, namespace=NAMESPACE,
            patch_type="strategic")
        poll(lambda: _rolled_out(client, replicas), timeout=600, interval=0.1, what="rollout complete")
        result["update"] = time.monotonic() - started
        print(f"ours, rolling update: {view.phases(started)}", flush=True)
        usage = {name: proc_usage(pid) for name, pid in pids.items()}
        finished = True
        return result, usage
    finally:
        if view is not None:
            view.close()
        try:
            client.delete("v1", "namespaces", NAMESPACE)
            poll(lambda: not docker("ps", "-aq", "--filter", f"label=reconcile.pod.namespace={NAMESPACE}").split(),
                 timeout=120, interval=0.2, what="the benchmark's containers removed")
        except (errors.ApiError, TimeoutError) as exc:
            print(f"cleanup: {exc}", file=sys.stderr)
        client.close()
        _reconcile("down", "--remove-containers", env=env)  # its containers, and the proxy's rules and route
        leftovers = docker("ps", "-aq", "--filter", f"label=reconcile.pod.namespace={NAMESPACE}").split()
        if leftovers:
            docker("rm", "-f", *leftovers, check=False)
        docker("network", "rm", f"reconcile-{node}", check=False)
        if finished:
            shutil.rmtree(state_dir, ignore_errors=True)  # etcd's data and the logs: ~70 MB a run
        else:
            print(f"the cluster's state dir and logs are kept in {state_dir}", file=sys.stderr)


def _node_ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def _rolled_out(client: client_api.Client, replicas: int) -> bool:
    """As `kubectl rollout status`: every replica updated and available, no old one left."""
    dep = client.get("apps/v1", "deployments", "bench", namespace=NAMESPACE)
    status = dep.get("status") or {}
    return (status.get("observedGeneration", 0) >= dep["metadata"]["generation"]
            and status.get("updatedReplicas") == replicas and status.get("availableReplicas") == replicas
            and status.get("replicas") == replicas)


# --- report ------------------------------------------------------------------------------------


def report(replicas: int, floor_r: dict[str, float], swarm_r: dict[str, float], ours_r: dict[str, float],
           usage: dict[str, tuple[float, float]]) -> None:
    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}s"

    rows = []

    def row(what: str, mine: float | None, peer: float | None, peer_name: str, target: str,
            ok: bool | None) -> None:
        ratio = f"{mine / peer:.2f}" if mine is not None and peer else "-"
        verdict = "-" if ok is None else ("PASS" if ok else "FAIL")
        rows.append((what, cell(mine), f"{peer_name} {cell(peer)}", ratio, target, verdict))

    mine, fl, sw = ours_r.get("ready"), floor_r.get("ready"), swarm_r.get("ready")
    row(f"{replicas} pods Ready", mine, fl, "floor", "<= 1.3 x floor",
        None if mine is None or fl is None else mine <= 1.3 * fl)
    row(f"{replicas} pods Ready", mine, sw, "swarm", "< swarm", None if mine is None or sw is None else mine < sw)
    mine, sw = ours_r.get("kill"), swarm_r.get("kill")
    row("killed container running again", mine, sw, "swarm", "<= 1 s", None if mine is None else mine <= 1.0)
    mine = ours_r.get("replace")
    row("deleted pod's replacement Ready", mine, None, "", "<= 2 s", None if mine is None else mine <= 2.0)
    mine, sw = ours_r.get("update"), swarm_r.get("update")
    row(f"rolling update of {replicas}", mine, sw, "swarm", "< swarm", None if mine is None or sw is None else mine < sw)
    header = ("measure", "ours", "reference", "ratio", "target", "")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)))
    if usage:
        print("\ncomponent            CPU s    RSS MiB   (whole run of `ours`, from /proc)")
        for name, (cpu, rss) in usage.items():
            print(f"{name:<20} {cpu:>6.2f}   {rss:>7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=8, help="floor concurrency and rolling-update batch size")
    parser.add_argument("--parts", default="floor,swarm,ours")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        sys.exit("no Docker engine answers: start one with `sudo scripts/ensure-docker.sh` (or `sudo dockerd &`)")
    ensure_images()
    floor_r = floor(args.replicas, args.parallel) if "floor" in parts else {}
    print(f"floor: {floor_r}", flush=True)
    swarm_r = swarm(args.replicas, args.parallel) if "swarm" in parts else {}
    print(f"swarm: {swarm_r}", flush=True)
    ours_r, usage = ours(args.replicas, args.parallel) if "ours" in parts else ({}, {})
    print(f"ours: {ours_r}\n", flush=True)
    report(args.replicas, floor_r, swarm_r, ours_r, usage)


if __name__ == "__main__":
    main()
