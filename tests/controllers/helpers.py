"""Helpers for controller tests: a controller-manager process, a stand-in for node agents, pod watchers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from reconcile.client import api
from reconcile.core import errors, meta
from tests import support


class ControllerManagerProcess:
    """`python -m reconcile controller-manager --no-leader-elect` as a child process, by pid."""

    def __init__(self, server: str, *, workers: int = 4, leader_elect: bool = False,
                 extra_args: tuple[str, ...] = (), connect: tuple[str, ...] | None = None) -> None:
        self.server = server
        self.connect = connect  # None: the suite's admin kubeconfig of `server`; or ("--kubeconfig", path)
        self.workers = workers
        self.leader_elect = leader_elect
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None
        self.log = support.process_log("controller-manager-")

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reconcile", "controller-manager",
             *(self.connect or support.connection(self.server).component_args()),
             "--leader-elect" if self.leader_elect else "--no-leader-elect", "--workers", str(self.workers), "-v",
             *self.extra_args],
            stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )

    def kill9(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def starts(self) -> int:
        """How many times the controllers have started (from the log)."""
        with open(self.log.name) as handle:
            return handle.read().count("controllers started:")

    def log_tail(self, chars: int = 4000) -> str:
        with open(self.log.name) as handle:
            return handle.read()[-chars:]


def pod_template(labels: dict[str, str], *, image: str = "nginx:1") -> dict[str, Any]:
    return {"metadata": {"labels": dict(labels)},
            "spec": {"containers": [{"name": "main", "image": image}]}}


def deployment(name: str, *, replicas: int, image: str = "nginx:1", surge: Any = None, unavailable: Any = None,
               **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": pod_template(labels, image=image), **spec},
    }
    if surge is not None or unavailable is not None:
        body["spec"]["strategy"] = {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    return body


def is_ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def mark_pods_ready_stand_in(client: api.Client, namespace: str, pods: list[dict[str, Any]] | None = None) -> int:
    """Stand-in for node agents: mark pods Running and Ready through /status; returns how many changed."""
    if pods is None:
        pods = client.list("v1", "pods", namespace=namespace).get("items") or []
    changed = 0
    for pod in pods:
        md = pod["metadata"]
        if is_ready(pod) or md.get("deletionTimestamp"):
            continue
        now = meta.now_rfc3339()
        status = {"phase": "Running", "startTime": now, "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
        ]}
        try:
            client.patch("v1", "pods", md["name"], {"status": status}, namespace=namespace, subresource="status")
            changed += 1
        except errors.NotFound:
            continue
    return changed


class PodWatcher:
    """A thread following the pods of a namespace; calls `check(pods)` after every event.

    With `ready_stand_in=True` it also marks each new pod Ready (standing in for node agents).
    """

    def __init__(self, server: str, namespace: str, *, ready_stand_in: bool = False,
                 check: Callable[[dict[str, dict[str, Any]]], None] | None = None) -> None:
        self.client = api.Client(support.connection(server).client_config())
        self.namespace = namespace
        self.ready_stand_in = ready_stand_in
        self.check = check
        self.pods: dict[str, dict[str, Any]] = {}
        self.events = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._synced = threading.Event()

    def __enter__(self) -> PodWatcher:
        self._thread.start()
        support.wait_for(self._synced.is_set, timeout=10, what="pod watcher listing")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self.error is not None and exc[0] is None:
            raise self.error

    def _run(self) -> None:
        try:
            body = self.client.list("v1", "pods", namespace=self.namespace)
            rv = body["metadata"]["resourceVersion"]
            for pod in body.get("items") or []:
                self.pods[pod["metadata"]["name"]] = pod
            self._after_event(list(self.pods.values()))
            self._synced.set()
            while not self._stop.is_set():
                try:
                    for event in self.client.watch("v1", "pods", namespace=self.namespace, resource_version=rv,
                                                   timeout_seconds=1):
                        obj = event.get("object") or {}
                        if event.get("type") == "BOOKMARK":
                            rv = obj["metadata"]["resourceVersion"]
                            continue
                        rv = obj["metadata"]["resourceVersion"]
                        name = obj["metadata"]["name"]
                        if event["type"] == "DELETED":
                            self.pods.pop(name, None)
                        else:
                            self.pods[name] = obj
                        self.events += 1
                        self._after_event([obj] if event["type"] != "DELETED" else [])
                        if self._stop.is_set():
                            return
                except errors.Gone:
                    raise
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self.error = exc
            self._synced.set()

    def _after_event(self, changed: list[dict[str, Any]]) -> None:
        if self.check is not None:
            self.check(self.pods)
        if self.ready_stand_in:
            mark_pods_ready_stand_in(self.client, self.namespace, changed)
