"""Storage benchmark (issue 12): claims to Bound, and a StatefulSet with claims to Ready.

In one run, on the local Docker engine:
1. Floor: `docker volume create` of N volumes, one after another (then removed), measured right
   before each timed phase and that phase compared with it: on the shared machine the load comes
   and goes within a minute, and one floor at the start (as this bench had) put 1.9-3.4 s beside
   phases that ran under another load.
2. `reconcile up` in a temporary state dir (etcd, API server, controller-manager, scheduler, node
   agent, ...), then:
   - static: N PersistentVolumes (hostPath) and N claims created at once, timed to all Bound;
   - dynamic: N claims of an Immediate `reconcile.dev/docker-volume` class, timed to all Bound
     (the binder provisions each PV; the Docker volume itself is made when a pod first mounts it,
     so this side makes no Docker volume, and the floor is the cost it would have had);
   Target for both: <= 1.5x the floor.
   - a StatefulSet of M replicas with a claim each (the default class `local`: WaitForFirstConsumer,
     OrderedReady), timed from create to all Ready, against a Deployment of M replicas without
     volumes (the cost of ordered start, provisioning and mounting).
Everything is removed afterwards: the namespaces, `reconcile down`, the Docker volumes this run made.

Usage: python bench/storage.py [--claims 100] [--replicas 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from runtime import APP_IMAGE, docker, ensure_images, poll
from scheduler import free_port

from reconcile.client import api as client_api
from reconcile.client import config as client_config
from reconcile.core import errors

IMAGE = APP_IMAGE  # built locally (busybox httpd; ensure_images); never pulled


def reconcile(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "reconcile", *args], capture_output=True, text=True, env=env,
                          timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"reconcile {' '.join(args)}: {done.stdout}{done.stderr}")
    return done.stdout


def floor(count: int) -> float:
    names = [f"rcbench-floor-{uuid.uuid4().hex[:8]}-{i}" for i in range(count)]
    started = time.perf_counter()
    try:
        for name in names:
            docker("volume", "create", name)
        return time.perf_counter() - started
    finally:
        docker("volume", "rm", "-f", *names, check=False)


def claim(name: str, cls: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                     "storageClassName": cls}}


def all_bound(client: client_api.Client, ns: str, count: int) -> bool:
    items = client.list("v1", "persistentvolumeclaims", namespace=ns)["items"]
    return sum((c.get("status") or {}).get("phase") == "Bound" for c in items) >= count


def ready_replicas(client: client_api.Client, api_version: str, plural: str, ns: str, name: str) -> int:
    return int((client.get(api_version, plural, name, namespace=ns).get("status") or {}).get("readyReplicas") or 0)


def template(app: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": app}}, "spec": {"terminationGracePeriodSeconds": 1, "containers": [
        {"name": "app", "image": IMAGE, "imagePullPolicy": "Never",
         "volumeMounts": [{"name": "data", "mountPath": "/data"}] if app == "sts" else []}]}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--claims", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=20)
    args = parser.parse_args()
    ensure_images()
    state_dir = Path(tempfile.mkdtemp(prefix="rcbench-storage-"))
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILE_SERVER", "KUBECONFIG")}
    env["RECONCILE_STATE_DIR"] = str(state_dir)
    reconcile("up", "--api-port", str(free_port()), env=env)
    state = json.loads((state_dir / "state.json").read_text())
    client = client_api.Client(client_config.load_config(kubeconfig=state["kubeconfig"]))
    made: set[str] = set()
    try:
        for ns in ("bench-static", "bench-dynamic", "bench-sts", "bench-deploy"):
            client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        tag = uuid.uuid4().hex[:6]
        for cls, mode in ((f"static-{tag}", None), (f"dynamic-{tag}", "Immediate")):
            body = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": cls},
                    "provisioner": "kubernetes.io/no-provisioner" if mode is None else "reconcile.dev/docker-volume",
                    "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}
            client.create("storage.k8s.io/v1", "storageclasses", body)
        host_root = state_dir / "static-volumes"
        for i in range(args.claims):
            client.create("v1", "persistentvolumes", {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {
                "name": f"static-{tag}-{i}"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "storageClassName": f"static-{tag}", "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(host_root / str(i)), "type": "DirectoryOrCreate"}}})
        floor_seconds = floor(args.claims)
        print(f"floor: docker volume create of {args.claims} volumes: {floor_seconds:.2f} s")
        started = time.perf_counter()
        for i in range(args.claims):
            client.create("v1", "persistentvolumeclaims", claim(f"c{i}", f"static-{tag}"), namespace="bench-static")
        static_created = time.perf_counter() - started
        poll(lambda: all_bound(client, "bench-static", args.claims), timeout=600, what="static claims Bound")
        static = time.perf_counter() - started
        print(f"{args.claims} claims to Bound, static volumes: {static:.2f} s "
              f"({static / floor_seconds:.2f}x the floor; target <= 1.5x; the {args.claims} creates alone: "
              f"{static_created:.2f} s)")
        floor_seconds = floor(args.claims)
        print(f"floor again: {floor_seconds:.2f} s")
        started = time.perf_counter()
        for i in range(args.claims):
            client.create("v1", "persistentvolumeclaims", claim(f"c{i}", f"dynamic-{tag}"), namespace="bench-dynamic")
        dynamic_created = time.perf_counter() - started
        poll(lambda: all_bound(client, "bench-dynamic", args.claims), timeout=600, what="dynamic claims Bound")
        dynamic = time.perf_counter() - started
        print(f"{args.claims} claims to Bound, provisioned: {dynamic:.2f} s "
              f"({dynamic / floor_seconds:.2f}x the floor; target <= 1.5x; the {args.claims} creates alone: "
              f"{dynamic_created:.2f} s); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

        started = time.perf_counter()
        client.create("apps/v1", "deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
                                                 "metadata": {"name": "plain"}, "spec": {
            "replicas": args.replicas, "selector": {"matchLabels": {"app": "plain"}}, "template": template("plain")}},
            namespace="bench-deploy")
        poll(lambda: ready_replicas(client, "apps/v1", "deployments", "bench-deploy", "plain") >= args.replicas,
             timeout=900, what="the Deployment Ready")
        deployment = time.perf_counter() - started
        started = time.perf_counter()
        client.create("apps/v1", "statefulsets", {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                                  "metadata": {"name": "sts"}, "spec": {
            "replicas": args.replicas, "serviceName": "sts", "selector": {"matchLabels": {"app": "sts"}},
            "template": template("sts"), "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}},
            namespace="bench-sts")
        poll(lambda: ready_replicas(client, "apps/v1", "statefulsets", "bench-sts", "sts") >= args.replicas,
             timeout=1800, what="the StatefulSet Ready")
        statefulset = time.perf_counter() - started
        print(f"StatefulSet of {args.replicas} with a claim each, create to all Ready: {statefulset:.2f} s "
              f"(Deployment of {args.replicas} without volumes: {deployment:.2f} s; {statefulset / deployment:.1f}x)")
        made = {c["spec"].get("volumeName", "") for c in
                client.list("v1", "persistentvolumeclaims", namespace="bench-sts")["items"]} - {""}
    finally:
        namespaces = ("bench-static", "bench-dynamic", "bench-sts", "bench-deploy")
        for ns in namespaces:
            try:
                client.delete("v1", "namespaces", ns)
            except errors.ApiError:
                pass

        def containers() -> list[str]:
            return [c for ns in namespaces for c in
                    docker("ps", "-aq", "--filter", f"label=reconcile.pod.namespace={ns}").split()]

        try:
            poll(lambda: not containers(), timeout=180, what="the benchmark's containers removed")
        except TimeoutError as exc:
            print(f"cleanup: {exc}", file=sys.stderr)
        client.close()
        try:
            reconcile("down", "--remove-containers", env=env)  # also the proxy's rules and route
        finally:
            leftovers = containers()
            if leftovers:
                docker("rm", "-f", *leftovers, check=False)
            handles = [v for v in docker("volume", "ls", "-q").split() if v in made]
            if handles:
                docker("volume", "rm", "-f", *handles, check=False)
            node = state["components"]["node"]["node"]
            docker("network", "rm", f"reconcile-{node}", check=False)
            shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
