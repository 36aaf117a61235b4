"""pods/eviction and PodDisruptionBudgets against a real API server (no controller-manager: each test
writes the PDB status the disruption controller would, so the eviction's own arithmetic is what is
checked). Pods are bound to a node by name only and marked Running/Ready through /status."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from reconcile.api import protobodies, protometa
from tests.api import helpers
from tests.api_unit import protoencode as pe

PDBS = "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"


def _pdb(name: str, *, min_available: Any = None, max_unavailable: Any = None, app: str = "web") -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": app}}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name}, "spec": spec}


def _running(client: httpx.Client, ns: str, name: str, *, ready: bool = True, phase: str = "Running") -> None:
    pod = client.get(helpers.pod_path(ns, name)).json()
    pod["status"] = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    answer = client.put(helpers.pod_path(ns, name) + "/status", json=pod)
    assert answer.status_code == 200, answer.text


def _pods(client: httpx.Client, ns: str, count: int, *, ready: bool = True, app: str = "web") -> list[str]:
    names = []
    for i in range(count):
        name = f"{app}-{i}"
        helpers.create(client, helpers.pod_path(ns), helpers.pod(name, labels={"app": app}))
        _running(client, ns, name, ready=ready)
        names.append(name)
    return names


def _budget(client: httpx.Client, ns: str, name: str, *, allowed: int, healthy: int, desired: int,
            expected: int) -> dict[str, Any]:
    """The status the disruption controller would write."""
    pdb = client.get(PDBS.format(ns=ns) + f"/{name}").json()
    pdb["status"] = {"disruptionsAllowed": allowed, "currentHealthy": healthy, "desiredHealthy": desired,
                     "expectedPods": expected, "observedGeneration": pdb["metadata"]["generation"]}
    answer = client.put(PDBS.format(ns=ns) + f"/{name}/status", json=pdb)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _evict(client: httpx.Client, ns: str, name: str, **delete_options: Any) -> httpx.Response:
    body: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": ns}}
    if delete_options:
        body["deleteOptions"] = delete_options
    return client.post(helpers.pod_path(ns, name) + "/eviction", json=body)


def _gone(client: httpx.Client, ns: str, name: str) -> bool:
    return client.get(helpers.pod_path(ns, name)).status_code == 404


def test_eviction_is_discoverable_as_policy_v1(client: httpx.Client) -> None:
    """kubectl drain evicts only when /api/v1 lists pods/eviction with group policy and version v1."""
    resources = {r["name"]: r for r in client.get("/api/v1").json()["resources"]}
    assert resources["pods/eviction"] == {"name": "pods/eviction", "singularName": "", "namespaced": True,
                                          "kind": "Eviction", "verbs": ["create"], "group": "policy", "version": "v1"}
    pdb = {r["name"]: r for r in client.get("/apis/policy/v1").json()["resources"]}["poddisruptionbudgets"]
    assert pdb["shortNames"] == ["pdb"] and pdb["namespaced"] is True


@pytest.mark.parametrize("spec, field, needle", [
    ({"minAvailable": 1, "maxUnavailable": 1}, "spec", "minAvailable and maxUnavailable cannot be both set"),
    ({"minAvailable": -1}, "spec.minAvailable", "must be greater than or equal to 0"),
    ({"maxUnavailable": "120%"}, "spec.maxUnavailable", "must not be greater than 100%"),
    ({"minAvailable": "half"}, "spec.minAvailable", "a valid percent string must be a numeric string"),
    ({"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
     "spec.selector.matchExpressions[0].values", "must be specified when `operator` is 'In' or 'NotIn'"),
])
def test_invalid_budgets_are_a_422_naming_the_field(client: httpx.Client, ns: str, spec: dict, field: str,
                                                    needle: str) -> None:
    body = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "bad"}, "spec": spec}
    answer = client.post(PDBS.format(ns=ns), json=body)
    status = helpers.assert_status(answer, 422, "Invalid")
    assert any(c["field"] == field and needle in c["message"] for c in status["details"]["causes"]), status


def test_a_new_budget_has_an_empty_status_and_table_columns(client: httpx.Client, ns: str) -> None:
    created = helpers.create(client, PDBS.format(ns=ns), _pdb("web", min_available="50%"))
    assert created["status"] == {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                                 "expectedPods": 0}
    table = client.get(PDBS.format(ns=ns), headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
    assert [c["name"] for c in table["columnDefinitions"]][:4] == [
        "Name", "Min Available", "Max Unavailable", "Allowed Disruptions"]
    assert table["rows"][0]["cells"][:4] == ["web", "50%", "N/A", 0]


def test_eviction_spends_the_budget_then_answers_429(client: httpx.Client, ns: str) -> None:
    first, second, _ = _pods(client, ns, 3)
    helpers.create(client, PDBS.format(ns=ns), _pdb("web", min_available=2))
    _budget(client, ns, "web", allowed=1, healthy=3, desired=2, expected=3)

    answer = _evict(client, ns, first, gracePeriodSeconds=0)
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    assert _gone(client, ns, first)
    status = client.get(PDBS.format(ns=ns) + "/web").json()["status"]
    assert status["disruptionsAllowed"] == 0 and first in status["disruptedPods"]
    condition = next(c for c in status["conditions"] if c["type"] == "DisruptionAllowed")
    assert (condition["status"], condition["reason"]) == ("False", "InsufficientPods")

    refused = _evict(client, ns, second)
    status = helpers.assert_status(refused, 429, "TooManyRequests",
                                   "Cannot evict pod as it would violate the pod's disruption budget.")
    assert status["details"]["causes"] == [{"reason": "DisruptionBudget",
                                            "message": "The disruption budget web needs 2 healthy pods and has 3 "
                                                       "currently"}]
    assert not _gone(client, ns, second)


def test_an_unobserved_budget_generation_is_a_429(client: httpx.Client, ns: str) -> None:
    (pod,) = _pods(client, ns, 1)
    helpers.create(client, PDBS.format(ns=ns), _pdb("web", max_unavailable=1))  # observedGeneration 0 < 1
    refused = _evict(client, ns, pod)
    status = helpers.assert_status(refused, 429, "TooManyRequests")
    assert status["details"]["causes"][0]["message"] == "The disruption budget web is still being processed by the server."


def test_unhealthy_pods_go_while_the_budget_is_healthy(client: httpx.Client, ns: str) -> None:
    """An unready pod does not count toward the budget: evicted without spending it when enough
    others are healthy; with an unhealthy budget it is refused unless the policy is AlwaysAllow."""
    _pods(client, ns, 2)
    (sick,) = _pods(client, ns, 1, ready=False, app="web-sick")
    client.patch(helpers.pod_path(ns, sick), json={"metadata": {"labels": {"app": "web"}}},
                 headers={"Content-Type": "application/merge-patch+json"})
    helpers.create(client, PDBS.format(ns=ns), _pdb("web", min_available=2))
    _budget(client, ns, "web", allowed=0, healthy=2, desired=2, expected=3)
    answer = _evict(client, ns, sick, gracePeriodSeconds=0)
    assert answer.status_code == 201, answer.text
    assert _gone(client, ns, sick)
    assert client.get(PDBS.format(ns=ns) + "/web").json()["status"]["disruptionsAllowed"] == 0  # not spent

    (other,) = _pods(client, ns, 1, ready=False, app="other")
    helpers.create(client, PDBS.format(ns=ns), _pdb("other", min_available=2, app="other"))
    _budget(client, ns, "other", allowed=0, healthy=0, desired=2, expected=1)
    helpers.assert_status(_evict(client, ns, other), 429, "TooManyRequests")
    pdb = client.get(PDBS.format(ns=ns) + "/other").json()
    pdb["spec"]["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
    assert client.put(PDBS.format(ns=ns) + "/other", json=pdb).status_code == 200
    _budget(client, ns, "other", allowed=0, healthy=0, desired=2, expected=1)
    assert _evict(client, ns, other, gracePeriodSeconds=0).status_code == 201
    assert _gone(client, ns, other)


def test_pods_not_running_skip_the_budget(client: httpx.Client, ns: str) -> None:
    helpers.create(client, helpers.pod_path(ns), helpers.pod("pending", labels={"app": "web"}))
    (done,) = _pods(client, ns, 1, app="done")
    _running(client, ns, done, phase="Succeeded", ready=False)
    client.patch(helpers.pod_path(ns, done), json={"metadata": {"labels": {"app": "web"}}},
                 headers={"Content-Type": "application/merge-patch+json"})
    helpers.create(client, PDBS.format(ns=ns), _pdb("web", min_available=5))
    _budget(client, ns, "web", allowed=0, healthy=0, desired=5, expected=2)
    for name in ("pending", done):
        assert _evict(client, ns, name, gracePeriodSeconds=0).status_code == 201
        assert _gone(client, ns, name)


def test_two_matching_budgets_are_upstreams_500_status(client: httpx.Client, ns: str) -> None:
    (pod,) = _pods(client, ns, 1)
    for name in ("one", "two"):
        helpers.create(client, PDBS.format(ns=ns), _pdb(name, min_available=0))
    answer = _evict(client, ns, pod)
    assert answer.status_code == 500
    assert answer.json()["message"] == ("This pod has more than one PodDisruptionBudget, which the eviction "
                                        "subresource does not support.")
    assert not _gone(client, ns, pod)


def test_dry_run_and_bad_bodies(client: httpx.Client, ns: str) -> None:
    (pod,) = _pods(client, ns, 1)
    helpers.create(client, PDBS.format(ns=ns), _pdb("web", min_available=0))
    _budget(client, ns, "web", allowed=1, healthy=1, desired=0, expected=1)
    assert _evict(client, ns, pod, dryRun=["All"]).status_code == 201
    assert not _gone(client, ns, pod)
    assert client.get(PDBS.format(ns=ns) + "/web").json()["status"]["disruptionsAllowed"] == 1
    mismatch = client.post(helpers.pod_path(ns, pod) + "/eviction",
                           json={"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}})
    helpers.assert_status(mismatch, 400, "BadRequest", "name in URL does not match name in Eviction object")
    bad = client.post(helpers.pod_path(ns, pod) + "/eviction",
                      json={"apiVersion": "policy/v1", "kind": "Eviction", "deleteOptions": {"gracePeriodSeconds": "x"}})
    helpers.assert_status(bad, 400, "BadRequest")
    missing = _evict(client, ns, "no-such-pod")
    helpers.assert_status(missing, 404, "NotFound")


def test_a_protobuf_eviction_is_read(client: httpx.Client, ns: str) -> None:
    """client-go's typed EvictV1: the Eviction in protobuf, deleteOptions included."""
    (pod,) = _pods(client, ns, 1)
    message = protobodies.MESSAGES[("policy/v1", "Eviction")]
    raw = pe.encode(message, {"metadata": {"name": pod}, "deleteOptions": {"gracePeriodSeconds": 0}})
    body = pe.envelope("policy/v1", "Eviction", raw)
    answer = client.post(helpers.pod_path(ns, pod) + "/eviction", content=body,
                         headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    assert answer.status_code == 201, answer.text
    assert _gone(client, ns, pod)
    assert message.field(2).type is protometa.DELETE_OPTIONS  # the same table as a DELETE's
