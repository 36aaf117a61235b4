"""A whole cluster on real Docker engines, shared by the module: three nodes, each its own dockerd.

API server + scheduler + controller-manager (node grace 4 s, default toleration 2 s) + three node
agents (lease every 1 s), each against a private dockerd with its own socket, directories and
bridge (tests/docker_support.py). Daemons start in parallel; everything stops by pid.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reconcile.client import api as client_api
from tests import docker_support, support

NODES = 3
GRACE = 4.0  # --node-monitor-grace-period
TOLERATION = 2.0  # --pod-eviction-timeout (default toleration of pods without one)
LEASE_INTERVAL = "1"


class Component:
    """`python -m reconcile ARGS` as a child process logging to a file, stopped by pid."""

    def __init__(self, name: str, *args: str) -> None:
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"e2e-{name}-", suffix=".log")[1])
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "reconcile", *args], stdout=log,
                                            stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@dataclass
class Cluster:
    server: str
    daemons: dict[str, docker_support.DockerDaemon] = field(default_factory=dict)  # node name -> its engine
    agents: dict[str, docker_support.NodeAgentProcess] = field(default_factory=dict)
    components: list[Component] = field(default_factory=list)
    dead: set[str] = field(default_factory=set)  # nodes killed by a test

    def live_nodes(self) -> list[str]:
        return [n for n in self.daemons if n not in self.dead]

    def logs(self) -> str:
        parts = [f"--- {c.name}\n{c.tail()}" for c in self.components]
        parts += [f"--- agent {n}\n{a.log_text()[-3000:]}" for n, a in self.agents.items()]
        return "\n".join(parts)


def _start_daemon() -> docker_support.DockerDaemon:
    daemon = docker_support.DockerDaemon()
    daemon.start()
    try:
        daemon.build_images()
    except BaseException:
        daemon.stop()
        raise
    return daemon


@pytest.fixture(scope="module")
def cluster(api_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    docker_support.require_docker()  # skips, or fails under CI / make test, saying what to install
    result = Cluster(server=api_server)
    try:
        suffix = uuid.uuid4().hex[:4]
        with futures.ThreadPoolExecutor(NODES) as pool:
            started = [pool.submit(_start_daemon) for _ in range(NODES)]
        failures = [f.exception() for f in started if f.exception() is not None]
        for index, f in enumerate(f for f in started if f.exception() is None):
            result.daemons[f"e2e-{suffix}-{index}"] = f.result()  # recorded first: stopped in `finally`
        if failures:
            raise failures[0]  # type: ignore[misc]
        result.components = [
            Component("scheduler", "scheduler", *support.connection(api_server).component_args(), "--no-leader-elect"),
            Component("controller-manager", "controller-manager", *support.connection(api_server).component_args(), "--no-leader-elect",
                      "-v", "--node-monitor-grace-period", str(GRACE), "--pod-eviction-timeout", str(TOLERATION)),
        ]
        for name, daemon in result.daemons.items():
            result.agents[name] = docker_support.NodeAgentProcess(
                daemon, api_server, name=name, state_dir=Path(tmp_path_factory.mktemp(name)),
                extra_args=("--lease-interval", LEASE_INTERVAL))
        with futures.ThreadPoolExecutor(NODES) as pool:
            for f in [pool.submit(agent.start) for agent in result.agents.values()]:
                f.result()
        yield result
    finally:
        for agent in result.agents.values():
            agent.stop()
        for component in result.components:
            component.stop()
        with futures.ThreadPoolExecutor(NODES) as pool:
            list(pool.map(lambda d: d.stop(), result.daemons.values()))


@pytest.fixture
def client(api_server: str) -> Iterator[client_api.Client]:
    c = client_api.Client(support.connection(api_server).client_config())
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def ns(client: client_api.Client) -> str:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name
