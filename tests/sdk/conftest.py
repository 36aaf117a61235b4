"""Fixtures of the SDK tests: a sync client, the test CRDs installed once per module, a namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from reconcile import testing
from reconcile.client import aio, api
from tests import support
from tests.sdk import helpers


@pytest.fixture(scope="package")
def api_server(etcd_endpoint: str) -> Iterator[str]:
    """One API server for all SDK tests (it takes seconds to start); tests use their own namespaces."""
    server = support.ApiServerProcess(etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="package")
def reconcile_cluster(api_server: str) -> Iterator[testing.Cluster]:
    """The test kit's fixture, pointed at the shared server (the example operator's tests use it)."""
    cluster = testing.Cluster.connect(api_server, support.connection(api_server).client_config())
    yield cluster
    cluster.stop()


@pytest.fixture(scope="package")
def sync_client(api_server: str) -> Iterator[api.Client]:
    client = api.Client(support.connection(api_server).client_config())
    helpers.install_crd(client, helpers.crd())
    helpers.install_crd(client, helpers.crd(plural="gadgets", kind="Gadget", status=False))
    yield client
    client.close()


@pytest.fixture
def namespace(sync_client: api.Client) -> str:
    return helpers.new_namespace(sync_client)


@pytest.fixture
async def async_client(api_server: str) -> AsyncIterator[aio.AsyncClient]:
    async with aio.AsyncClient(support.connection(api_server).client_config()) as client:
        yield client
