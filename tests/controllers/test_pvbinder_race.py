"""Binding races: 50 claims and 50 volumes created concurrently end in exactly 50 distinct, consistent
bindings; also with the controller-manager killed (-9) mid-way and restarted.

Its own module, so its API server has no other controller-manager acting on the same objects.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from reconcile.client import api
from tests import support
from tests.controllers import helpers

N = 50


@pytest.fixture
def manager_process(api_server: str) -> Iterator[helpers.ControllerManagerProcess]:
    process = helpers.ControllerManagerProcess(api_server)
    try:
        yield process
    finally:
        process.stop()


def _create_all(api_server: str, ns: str, cls: str) -> None:
    """50 volumes and 50 claims, interleaved at random, from 8 threads at once."""
    local = threading.local()

    def client() -> api.Client:
        if not hasattr(local, "client"):
            local.client = api.Client(support.connection(api_server).client_config())
        return local.client

    def make(item: tuple[str, int]) -> None:
        kind, i = item
        if kind == "pv":
            client().create("v1", "persistentvolumes", {
                "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{cls}-{i}"},
                "spec": {"capacity": {"storage": f"{1 + i % 3}Gi"}, "accessModes": ["ReadWriteOnce"],
                         "storageClassName": cls, "hostPath": {"path": f"/tmp/{cls}-{i}"}}})
        else:
            client().create("v1", "persistentvolumeclaims", {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": f"c-{i}"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                         "resources": {"requests": {"storage": "1Gi"}}}}, namespace=ns)

    items = [("pv", i) for i in range(N)] + [("pvc", i) for i in range(N)]
    random.shuffle(items)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(make, items))


def _check_bindings(client: api.Client, ns: str, cls: str) -> None:
    claims = client.list("v1", "persistentvolumeclaims", namespace=ns)["items"]
    pvs = [v for v in client.list("v1", "persistentvolumes")["items"] if v["spec"].get("storageClassName") == cls]
    assert len(claims) == N and len(pvs) == N
    names = [c["spec"]["volumeName"] for c in claims]
    assert len(set(names)) == N, "a volume was given to two claims"
    by_name = {v["metadata"]["name"]: v for v in pvs}
    for c in claims:
        volume = by_name[c["spec"]["volumeName"]]
        assert volume["spec"]["claimRef"]["uid"] == c["metadata"]["uid"]
        assert volume["spec"]["claimRef"]["name"] == c["metadata"]["name"]
        assert volume["status"]["phase"] == "Bound"
        assert c["status"]["phase"] == "Bound"


def _all_bound(client: api.Client, ns: str, cls: str) -> bool:
    claims = client.list("v1", "persistentvolumeclaims", namespace=ns)["items"]
    pvs = [v for v in client.list("v1", "persistentvolumes")["items"] if v["spec"].get("storageClassName") == cls]
    return (len(claims) == N and all((c.get("status") or {}).get("phase") == "Bound" for c in claims)
            and all((v.get("status") or {}).get("phase") == "Bound" for v in pvs))


def _namespace(client: api.Client) -> str:
    ns = f"race-{uuid.uuid4().hex[:6]}"
    client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    return ns


def _bound_count(client: api.Client, ns: str) -> int:
    claims: list[dict[str, Any]] = client.list("v1", "persistentvolumeclaims", namespace=ns)["items"]
    return sum((c.get("status") or {}).get("phase") == "Bound" for c in claims)


def test_fifty_claims_fifty_volumes(manager_process: helpers.ControllerManagerProcess, api_server: str) -> None:
    client = api.Client(support.connection(api_server).client_config())
    ns = _namespace(client)
    manager_process.start()
    support.wait_for(lambda: manager_process.starts() >= 1, timeout=90, what="controllers started")
    _create_all(api_server, ns, ns)
    support.wait_for(lambda: _all_bound(client, ns, ns), timeout=90,
                     what=f"all bound; log:\n{manager_process.log_tail()}")
    _check_bindings(client, ns, ns)


def test_fifty_with_the_controller_killed_mid_way(manager_process: helpers.ControllerManagerProcess,
                                                  api_server: str) -> None:
    client = api.Client(support.connection(api_server).client_config())
    ns = _namespace(client)
    manager_process.start()
    support.wait_for(lambda: manager_process.starts() >= 1, timeout=90, what="controllers started")
    creating = threading.Thread(target=_create_all, args=(api_server, ns, ns))
    creating.start()
    support.wait_for(lambda: _bound_count(client, ns) >= 5, timeout=60, what="some bound")
    time.sleep(random.uniform(0.0, 0.3))  # fault injection at a random moment, not synchronization
    manager_process.kill9()
    creating.join()
    partial = _bound_count(client, ns)
    manager_process.start()
    support.wait_for(lambda: _all_bound(client, ns, ns), timeout=120,
                     what=f"all bound after restart (had {partial}); log:\n{manager_process.log_tail()}")
    _check_bindings(client, ns, ns)
