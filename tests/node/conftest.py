"""Fixtures for node agent tests: one private dockerd for the whole session (starting one costs
seconds), one API server and one node agent per module, a fresh namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconcile.client import api as client_api
from tests import docker_support, support


@pytest.fixture(scope="session")
def docker_node() -> Iterator[docker_support.DockerDaemon]:
    """A private dockerd with the test images (`reconcile-pause:1.0`, `reconcile-hello:1.0`) built."""
    docker_support.require_docker()  # skips, or fails under CI / make test, saying what to install
    with docker_support.running_daemon() as daemon:
        yield daemon


@pytest.fixture(scope="module")
def agent_args() -> tuple[str, ...]:
    """Extra `node join` flags; a test module overrides this fixture to change them."""
    return ("--lease-interval", "2")


@pytest.fixture(scope="module")
def node_agent(docker_node: docker_support.DockerDaemon, api_server: str, agent_args: tuple[str, ...],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker_support.NodeAgentProcess]:
    """A node agent subprocess joined to the module's API server."""
    name = f"node-{uuid.uuid4().hex[:6]}"
    agent = docker_support.NodeAgentProcess(docker_node, api_server, name=name,
                                            state_dir=Path(tmp_path_factory.mktemp("agent")), extra_args=agent_args)
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()
        agent.remove_containers()


@pytest.fixture
def client(api_server: str) -> Iterator[client_api.Client]:
    c = client_api.Client(support.connection(api_server).client_config())
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def namespace(client: client_api.Client) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
