"""One bad object never blinds an operator: a malformed widget written straight into etcd.

The operator skips the widget it cannot decode (and says so on it, with an Event), handles the
others, and keeps its informers running.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import reconcile as rc
from reconcile.client import aio, api
from reconcile.engine.sdk import operator
from tests import support
from tests.client import helpers as client_helpers
from tests.sdk import helpers

AV, PLURAL = helpers.API_VERSION, helpers.PLURAL


@pytest.fixture(scope="module")
def api_server(server_process: support.ApiServerProcess) -> str:
    """This module's own server (the package's shared one hides the prefix the test writes beside)."""
    return server_process.url


@pytest.fixture(scope="module")
def sync_client(api_server: str) -> Iterator[api.Client]:
    client = api.Client(support.connection(api_server).client_config())
    helpers.install_crd(client, helpers.crd())
    yield client
    client.close()


def _events(client: api.Client, ns: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in client.list("v1", "events", namespace=ns)["items"]
            if e["involvedObject"].get("name") == name and e["reason"] == reason]


async def test_a_widget_that_does_not_decode_is_skipped_and_the_others_are_handled(
    sync_client: api.Client, async_client: aio.AsyncClient, namespace: str,
    server_process: support.ApiServerProcess, etcd_endpoint: str,
) -> None:
    reg = rc.Registry()
    created: list[str] = []

    @rc.on.create(AV, PLURAL, registry=reg)
    def on_create(name: str, **_: Any) -> None:
        created.append(name)

    bad = helpers.widget("bad")
    bad["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp="2026-01-01T00:00:00Z",
                           annotations={"owner": ["not", "a", "string"]})
    await client_helpers.aput_raw(etcd_endpoint, server_process, helpers.GROUP, PLURAL, bad)
    await async_client.create(AV, PLURAL, helpers.widget("before"), namespace=namespace)
    async with operator.running(async_client, registry=reg, namespaces=[namespace]) as op:
        await async_client.create(AV, PLURAL, helpers.widget("after"), namespace=namespace)
        await helpers.eventually(lambda: sorted(created) == ["after", "before"], what="good widgets handled")
        events = await helpers.eventually(lambda: _events(sync_client, namespace, "bad", "InvalidObject"),
                                          what="InvalidObject event on the bad widget")
        assert "metadata.annotations['owner']: must be a string" in events[0]["message"]
        assert events[0]["source"]["component"] == "reconcile-operator"
        assert op.supervisor.readiness() == []
        informer = op.worker_for(PLURAL).informers[namespace]
        assert informer.invalid_objects == 1 and not informer.stopped
    assert "bad" not in created
