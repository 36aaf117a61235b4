"""ResourceQuota and LimitRange admission end to end, on two real API servers sharing one etcd
prefix: counts and compute refused with upstream's messages, usage charged in status.used, creates
racing for the last slots through both servers, dry runs, updates; LimitRange defaults and bounds.

The quota controller is not running here (tests/controllers/test_resourcequota.py runs it): each
quota is activated as the controller would, by writing status.hard and a zero status.used.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import support
from tests.api import helpers

MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture(scope="module")
def second_server(server_process: support.ApiServerProcess) -> Iterator[support.ApiServerProcess]:
    """Another API server on the module server's etcd prefix: the same cluster, a second front door."""
    server = support.ApiServerProcess(server_process.etcd_endpoint, prefix=server_process.prefix,
                                      tls=server_process.tls, pki=server_process.pki)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def other(second_server: support.ApiServerProcess) -> Iterator[httpx.Client]:
    with support.connection(second_server.url).http_client() as second:
        yield second


def _quota_path(ns: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{ns}/resourcequotas"
    return f"{base}/{name}" if name else base


def _activate(client: httpx.Client, ns: str, name: str, hard: dict[str, str], *, scopes: list[str] | None = None,
              used: dict[str, str] | None = None, servers: list[httpx.Client] = ()) -> None:
    """Create a quota and give it the status the controller would (a zero usage), then wait until
    every server's cache serves that status (admission reads quotas from the cache)."""
    spec: dict[str, Any] = {"hard": hard}
    if scopes:
        spec["scopes"] = scopes
    created = helpers.create(client, _quota_path(ns), {"metadata": {"name": name}, "spec": spec})
    created["status"] = {"hard": hard, "used": used if used is not None else {k: "0" for k in hard}}
    response = client.put(_quota_path(ns, name) + "/status", json=created)
    assert response.status_code == 200, response.text
    for server in (client, *servers):
        support.wait_for(lambda s=server: (s.get(_quota_path(ns, name), params={"resourceVersion": "0"}).json()
                                           .get("status") or {}).get("hard") == hard,
                         timeout=10, what="the quota's status in the cache")


def _used(client: httpx.Client, ns: str, name: str) -> dict[str, str]:
    return client.get(_quota_path(ns, name)).json()["status"]["used"]


def _pod(name: str, requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "resources": resources}]}}


def test_quota_objects_are_served_and_validated(client: httpx.Client, ns: str) -> None:
    response = client.post(_quota_path(ns), json={"metadata": {"name": "bad"},
                                                  "spec": {"hard": {"cpu": "1"}, "scopes": ["BestEffort"]}})
    assert response.status_code == 422
    assert response.json()["message"] == (
        'ResourceQuota "bad" is invalid: spec.scopes: Invalid value: []core.ResourceQuotaScope{"BestEffort"}: '
        "unsupported scope applied to resource")
    response = client.post(_quota_path(ns), json={"metadata": {"name": "bad"}, "spec": {"hard": {"pods": "lots"}}})
    assert response.status_code == 400
    assert "quantities must match the regular expression" in response.json()["message"]
    found = client.get("/api/v1").json()["resources"]
    assert {"resourcequotas", "resourcequotas/status", "limitranges"} <= {r["name"] for r in found}


def test_object_counts(client: httpx.Client, ns: str) -> None:
    _activate(client, ns, "counts", {"configmaps": "1", "count/deployments.apps": "1"})
    assert client.post(helpers.cm_path(ns), json=helpers.configmap("one")).status_code == 201
    refused = client.post(helpers.cm_path(ns), json=helpers.configmap("two"))
    assert refused.status_code == 403
    assert refused.json()["message"] == ('configmaps "two" is forbidden: exceeded quota: counts, requested: '
                                         "configmaps=1, used: configmaps=1, limited: configmaps=1")
    assert refused.json()["reason"] == "Forbidden"
    assert client.post(helpers.deploy_path(ns), json=helpers.deployment("web")).status_code == 201
    again = client.post(helpers.deploy_path(ns), json=helpers.deployment("web2"))
    assert again.status_code == 403
    assert again.json()["message"] == ('deployments.apps "web2" is forbidden: exceeded quota: counts, requested: '
                                       "count/deployments.apps=1, used: count/deployments.apps=1, limited: "
                                       "count/deployments.apps=1")
    assert _used(client, ns, "counts") == {"configmaps": "1", "count/deployments.apps": "1"}


def test_compute_quota(client: httpx.Client, ns: str) -> None:
    _activate(client, ns, "compute", {"pods": "10", "requests.cpu": "1", "limits.memory": "1Gi"})
    missing = client.post(helpers.pod_path(ns), json=_pod("bare"))
    assert missing.status_code == 403
    assert missing.json()["message"] == ('pods "bare" is forbidden: failed quota: compute: must specify '
                                         "limits.memory for: c; requests.cpu for: c")
    ok = client.post(helpers.pod_path(ns), json=_pod("a", {"cpu": "600m"}, {"memory": "512Mi"}))
    assert ok.status_code == 201, ok.text
    over = client.post(helpers.pod_path(ns), json=_pod("b", {"cpu": "500m"}, {"memory": "256Mi"}))
    assert over.status_code == 403
    assert over.json()["message"] == ('pods "b" is forbidden: exceeded quota: compute, requested: requests.cpu=500m, '
                                      "used: requests.cpu=600m, limited: requests.cpu=1")
    assert _used(client, ns, "compute") == {"limits.memory": "512Mi", "pods": "1", "requests.cpu": "600m"}


def test_generated_names_appear_in_refusals(client: httpx.Client, ns: str) -> None:
    _activate(client, ns, "none", {"pods": "0"})
    body = _pod("")
    body["metadata"] = {"generateName": "web-"}
    response = client.post(helpers.pod_path(ns), json=body)
    assert response.status_code == 403
    assert response.json()["message"].startswith('pods "web-')
    assert response.json()["message"].endswith("is forbidden: exceeded quota: none, requested: pods=1, used: pods=0, "
                                               "limited: pods=0")


def test_scopes(client: httpx.Client, ns: str) -> None:
    _activate(client, ns, "best-effort", {"pods": "1"}, scopes=["BestEffort"])
    assert client.post(helpers.pod_path(ns), json=_pod("be")).status_code == 201
    assert client.post(helpers.pod_path(ns), json=_pod("be2")).status_code == 403
    assert client.post(helpers.pod_path(ns), json=_pod("burstable", {"memory": "1Mi"})).status_code == 201


def test_dry_runs_are_not_charged(client: httpx.Client, ns: str) -> None:
    _activate(client, ns, "dry", {"pods": "1"})
    for _ in range(3):
        response = client.post(helpers.pod_path(ns), json=_pod("p"), params={"dryRun": "All"})
        assert response.status_code == 201
    assert _used(client, ns, "dry") == {"pods": "0"}
    assert client.post(helpers.pod_path(ns), json=_pod("p")).status_code == 201
    assert _used(client, ns, "dry") == {"pods": "1"}
    response = client.post(helpers.pod_path(ns), json=_pod("q"), params={"dryRun": "All"})
    assert response.status_code == 403  # checked all the same


def test_updates_are_charged_what_they_add(client: httpx.Client, ns: str) -> None:
    _activate(client, ns, "lb", {"services.loadbalancers": "1", "services": "5"})
    service = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}}
    assert client.post(f"/api/v1/namespaces/{ns}/services", json=service).status_code == 201
    patched = client.patch(f"/api/v1/namespaces/{ns}/services/s", json={"spec": {"type": "LoadBalancer"}},
                           headers=MERGE)
    assert patched.status_code == 200, patched.text
    assert _used(client, ns, "lb") == {"services": "1", "services.loadbalancers": "1"}
    service["metadata"]["name"] = "t"
    service["spec"]["type"] = "LoadBalancer"
    refused = client.post(f"/api/v1/namespaces/{ns}/services", json=service)
    assert refused.status_code == 403
    assert "requested: services.loadbalancers=1, used: services.loadbalancers=1" in refused.json()["message"]


def test_racing_creates_through_two_servers_take_exactly_the_free_slots(
        client: httpx.Client, other: httpx.Client, ns: str) -> None:
    _activate(client, ns, "slots", {"pods": "5"}, used={"pods": "0"}, servers=[other])
    servers = [client, other]

    def create(i: int) -> int:
        return servers[i % 2].post(helpers.pod_path(ns), json=_pod(f"racer-{i}")).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(create, range(24)))
    assert sorted(set(codes)) == [201, 403]
    assert codes.count(201) == 5
    pods = client.get(helpers.pod_path(ns)).json()["items"]
    assert len(pods) == 5
    assert _used(client, ns, "slots") == {"pods": "5"}


def test_limit_ranges_default_and_bound_pods(client: httpx.Client, ns: str) -> None:
    limits = {"metadata": {"name": "limits"}, "spec": {"limits": [
        {"type": "Container", "max": {"memory": "1Gi"}, "default": {"memory": "256Mi", "cpu": "500m"},
         "defaultRequest": {"cpu": "100m"}},
        {"type": "Pod", "max": {"cpu": "2"}}]}}
    created = helpers.create(client, f"/api/v1/namespaces/{ns}/limitranges", limits)
    container_item = created["spec"]["limits"][0]
    assert container_item["defaultRequest"] == {"cpu": "100m", "memory": "256Mi"}  # defaulted from default
    support.wait_for(lambda: client.get(f"/api/v1/namespaces/{ns}/limitranges",
                                        params={"resourceVersion": "0"}).json()["items"], timeout=10,
                     what="the LimitRange in the cache")
    pod = client.post(helpers.pod_path(ns), json=_pod("defaulted")).json()
    assert pod["spec"]["containers"][0]["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"},
                                                         "limits": {"cpu": "500m", "memory": "256Mi"}}
    assert pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c")
    assert pod["status"]["qosClass"] == "Burstable"  # recomputed from the defaulted resources
    big = client.post(helpers.pod_path(ns), json=_pod("big", limits={"memory": "2Gi"}))
    assert big.status_code == 403
    assert big.json()["message"] == 'pods "big" is forbidden: maximum memory usage per Container is 1Gi, but limit is 2Gi'
    greedy = _pod("greedy", limits={"cpu": "1500m"})
    greedy["spec"]["containers"].append({"name": "d", "image": "busybox:1.36",
                                         "resources": {"limits": {"cpu": "1"}}})
    response = client.post(helpers.pod_path(ns), json=greedy)
    assert response.status_code == 403
    assert response.json()["message"] == 'pods "greedy" is forbidden: maximum cpu usage per Pod is 2, but limit is 2500m'
    bad = client.post(f"/api/v1/namespaces/{ns}/limitranges", json={"metadata": {"name": "bad"}, "spec": {"limits": [
        {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}})
    assert bad.status_code == 422
    # validated after defaulting, as upstream: the default limit and request come from max
    assert bad.json()["message"] == (
        'LimitRange "bad" is invalid: [spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max '
        'value 1, spec.limits[0].defaultRequest[cpu]: Invalid value: "1": min value 2 is greater than default request '
        'value 1, spec.limits[0].default[cpu]: Invalid value: "2": min value 2 is greater than default value 1]')


def test_limit_ranges_bound_claims(client: httpx.Client, ns: str) -> None:
    helpers.create(client, f"/api/v1/namespaces/{ns}/limitranges", {"metadata": {"name": "storage"}, "spec": {
        "limits": [{"type": "PersistentVolumeClaim", "max": {"storage": "5Gi"}}]}})
    support.wait_for(lambda: client.get(f"/api/v1/namespaces/{ns}/limitranges",
                                        params={"resourceVersion": "0"}).json()["items"], timeout=10,
                     what="the LimitRange in the cache")
    claim = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                    "resources": {"requests": {"storage": "10Gi"}}}}
    response = client.post(f"/api/v1/namespaces/{ns}/persistentvolumeclaims", json=claim)
    assert response.status_code == 403
    assert response.json()["message"] == ('persistentvolumeclaims "data" is forbidden: maximum storage usage per '
                                          "PersistentVolumeClaim is 5Gi, but request is 10Gi")


def test_the_default_namespace_is_unlabelled_without_the_flag(client: httpx.Client) -> None:
    labels = client.get("/api/v1/namespaces/default").json()["metadata"].get("labels") or {}
    assert not any(key.startswith("pod-security.kubernetes.io/") for key in labels)
