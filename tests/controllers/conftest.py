"""Fixtures: a controller-manager process per test module, a fresh namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from reconcile.client import api
from tests import support
from tests.controllers import helpers


@pytest.fixture(scope="module")
def controller_manager(api_server: str) -> Iterator[helpers.ControllerManagerProcess]:
    process = helpers.ControllerManagerProcess(api_server)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def client(api_server: str) -> Iterator[api.Client]:
    with api.Client(support.connection(api_server).client_config()) as c:
        yield c


@pytest.fixture
def ns(client: api.Client) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name
