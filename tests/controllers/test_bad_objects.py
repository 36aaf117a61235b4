"""One bad object never blinds the controller-manager: malformed objects written straight into etcd.

The API server validates what it is sent; these objects bypass it (as an older server, a bug or a
restore could leave them). The controller-manager must go on replacing pods, scaling down and
collecting garbage, report each bad object (log, metric, Event) and stay ready.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from reconcile.client import api
from reconcile.core import errors, meta
from tests import support
from tests.client import helpers as client_helpers
from tests.controllers import helpers


@pytest.fixture(scope="module")
def controller_manager(api_server: str) -> Iterator[helpers.ControllerManagerProcess]:
    port = support.free_port()
    process = helpers.ControllerManagerProcess(api_server, extra_args=("--health-port", str(port)))
    process.health = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    process.start()
    support.wait_for(lambda: httpx.get(process.health + "/readyz", timeout=1).status_code == 200,  # type: ignore[attr-defined]
                     timeout=30, what="controller-manager ready")
    try:
        yield process
    finally:
        process.stop()


def _replicaset(name: str, replicas: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": helpers.pod_template(labels)}}


def _owned(client: api.Client, ns: str, uid: str) -> list[dict[str, Any]]:
    pods = client.list("v1", "pods", namespace=ns)["items"]
    return [p for p in pods if (meta.controller_owner(p) or {}).get("uid") == uid
            and not p["metadata"].get("deletionTimestamp")]


def _events(client: api.Client, ns: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in client.list("v1", "events", namespace=ns)["items"]
            if e["involvedObject"].get("name") == name and e["reason"] == reason]


def _metric(base: str, line: str) -> float:
    for row in httpx.get(base + "/metrics", timeout=5).text.splitlines():
        if row.startswith(line + " "):
            return float(row.split()[-1])
    return 0.0


def _gone(get: Any) -> bool:
    try:
        get()
    except errors.NotFound:
        return True
    return False


def test_a_malformed_pod_blinds_neither_the_replicaset_controller_nor_the_garbage_collector(
    controller_manager: helpers.ControllerManagerProcess, client: api.Client, ns: str, api_server: str,
    server_process: support.ApiServerProcess, etcd_endpoint: str,
) -> None:
    health = controller_manager.health  # type: ignore[attr-defined]
    # two pods no API server would store, labelled like the ReplicaSet's pods
    client_helpers.put_raw(etcd_endpoint, server_process, "", "pods",
                           client_helpers.malformed_pod(ns, "bad-owner", labels={"app": "web"}))
    client_helpers.put_raw(etcd_endpoint, server_process, "", "pods",
                           client_helpers.malformed_pod(ns, "bad-labels", labels="app=web", ownerReferences=None))
    rs = client.create("apps/v1", "replicasets", _replicaset("web", 3), namespace=ns)
    uid = rs["metadata"]["uid"]
    support.wait_for(lambda: len(_owned(client, ns, uid)) == 3, timeout=30, what="3 pods created")

    victim = _owned(client, ns, uid)[0]["metadata"]["name"]  # deleted pods are replaced
    client.delete("v1", "pods", victim, namespace=ns)
    support.wait_for(lambda: (pods := _owned(client, ns, uid)) and len(pods) == 3
                     and victim not in {p["metadata"]["name"] for p in pods}, timeout=30, what="pod replaced")

    client.patch("apps/v1", "replicasets", "web", {"spec": {"replicas": 1}}, namespace=ns)  # scale-down works
    support.wait_for(lambda: len(_owned(client, ns, uid)) == 1, timeout=30, what="scaled down to 1")

    orphan = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "orphan", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gone", "uid": str(uuid.uuid4())}]}}
    client.create("v1", "configmaps", orphan, namespace=ns)  # the garbage collector still collects
    support.wait_for(lambda: _gone(lambda: client.get("v1", "configmaps", "orphan", namespace=ns)), timeout=30,
                     what="orphan collected")
    client.delete("apps/v1", "replicasets", "web", namespace=ns)
    support.wait_for(lambda: not _owned(client, ns, uid), timeout=30, what="the ReplicaSet's pods collected")

    # each bad pod reported: an Event on it, the metric; and the component stayed ready
    for name in ("bad-owner", "bad-labels"):
        support.wait_for(lambda n=name: _events(client, ns, n, "InvalidObject"), timeout=15, what=f"event on {name}")
    (event,) = _events(client, ns, "bad-owner", "InvalidObject")
    assert event["type"] == "Warning" and "metadata.ownerReferences[0]: must be an object" in event["message"]
    assert event["count"] == 1  # once, however many events went by
    assert _metric(health, 'informer_invalid_objects_total{resource="pods"}') >= 2
    assert httpx.get(health + "/readyz", timeout=5).status_code == 200
    assert httpx.get(health + "/healthz", timeout=5).status_code == 200
    assert "informer for pods stopped" not in controller_manager.log_tail(200_000)
    assert client.get("v1", "pods", "bad-owner", namespace=ns)  # skipped, not touched


def test_a_replicaset_it_cannot_process_is_skipped_and_reported_while_others_are_served(
    controller_manager: helpers.ControllerManagerProcess, client: api.Client, ns: str,
    server_process: support.ApiServerProcess, etcd_endpoint: str,
) -> None:
    health = controller_manager.health  # type: ignore[attr-defined]
    before = _metric(health, 'controller_skipped_objects_total{controller="replicaset"}')
    broken = _replicaset("broken", "many")  # replicas must be an integer
    broken["metadata"].update(namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=meta.now_rfc3339(), generation=1)
    client_helpers.put_raw(etcd_endpoint, server_process, "apps", "replicasets", broken)
    fine = client.create("apps/v1", "replicasets", _replicaset("fine", 2), namespace=ns)
    support.wait_for(lambda: len(_owned(client, ns, fine["metadata"]["uid"])) == 2, timeout=30, what="fine served")
    support.wait_for(lambda: _events(client, ns, "broken", "FailedSync"), timeout=15, what="FailedSync on broken")
    (event,) = _events(client, ns, "broken", "FailedSync")
    assert "replicaset cannot process this object" in event["message"] and "ValueError" in event["message"]
    assert _metric(health, 'controller_skipped_objects_total{controller="replicaset"}') == before + 1
    # woken again (an orphan pod it could adopt): it fails again on the same version, reported no more
    errors_before = _metric(health, 'controller_reconcile_errors_total{controller="replicaset"}')
    client.create("v1", "pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stray", "labels": {"app": "broken"}},
                                 "spec": helpers.pod_template({})["spec"]}, namespace=ns)
    support.wait_for(lambda: _metric(health, 'controller_reconcile_errors_total{controller="replicaset"}') > errors_before,
                     timeout=15, what="broken reconciled again")
    assert _metric(health, 'controller_skipped_objects_total{controller="replicaset"}') == before + 1
    assert _events(client, ns, "broken", "FailedSync")[0]["count"] == 1
    assert httpx.get(health + "/readyz", timeout=5).status_code == 200


async def test_readyz_fails_while_a_controller_manager_informer_is_stopped_until_it_is_restarted(
    api_server: str, client: api.Client, ns: str,
) -> None:
    """The real controller-manager runnable in-process: its pod informer's task is ended from outside."""
    import asyncio

    from reconcile.client import aio
    from reconcile.controllers import manager as cm
    from reconcile.engine import manager as manager_mod

    async with aio.AsyncClient(support.connection(api_server).client_config()) as ac:
        mgr = manager_mod.Manager(ac, name="cm-under-test", leader_election=False, health_port=0)
        controllers = cm.Controllers(ac, ac, workers=2, metrics=mgr.metrics)
        mgr.add(controllers, needs_leader=True)
        mgr.add_health_check(controllers.supervisor)
        running = asyncio.create_task(mgr.run())
        try:
            def synced() -> bool:
                informers = controllers.informers.known().values() if controllers.informers else []
                return bool(controllers.controllers) and all(inf.has_synced for inf in informers)

            await support.eventually(synced, timeout=30, what="controllers up, informers synced")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{mgr.health_port}") as http:
                await support.eventually(lambda: _ok(http, "/readyz"), what="ready")
                pods = controllers.informers.get("v1", "pods")  # type: ignore[union-attr]
                next(t for t in asyncio.all_tasks() if t.get_name() == "informer:pods").cancel()
                await support.eventually(lambda: pods.stopped, what="pod informer stopped")
                response = await http.get("/readyz")
                assert response.status_code == 503 and "informer for pods stopped" in response.text
                assert (await http.get("/healthz")).status_code == 200  # within the grace: not a restart yet
                await support.eventually(lambda: _ok(http, "/readyz"), timeout=15, what="ready after restart")
                assert pods.restarts == 1 and not pods.stopped
                # and the restarted informer feeds the ReplicaSet controller again
                rs = await ac.create("apps/v1", "replicasets", _replicaset("again", 2), namespace=ns)
                await support.eventually(lambda: len(_owned(client, ns, rs["metadata"]["uid"])) == 2, timeout=30,
                                         what="pods created after the restart")
                assert 'informer_restarts_total{resource="pods"} 1.0' in (await http.get("/metrics")).text
        finally:
            await mgr.stop()
            await asyncio.wait_for(running, 30)


async def _ok(http: httpx.AsyncClient, path: str) -> bool:
    return (await http.get(path)).status_code == 200
