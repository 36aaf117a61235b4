"""Fixtures: the module's API server (tests/conftest.py), an admin client and a fresh namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from reconcile.client import api
from tests import support


@pytest.fixture
def client(api_server: str) -> Iterator[api.Client]:
    with api.Client(support.connection(api_server).client_config()) as c:
        yield c


@pytest.fixture
def ns(client: api.Client) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def service(name: str, *, kind: str = "ClusterIP", ports: list[dict] | None = None, **spec: object) -> dict:
    body: dict = {"type": kind, "selector": {"app": name}, **spec}
    if ports is None:
        ports = [{"port": 80}]
    if ports:
        body["ports"] = ports
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body}
