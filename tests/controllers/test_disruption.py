"""Disruption controller against a real API server and controller-manager (no node agents: pods are
marked Running/Ready through /status by `helpers.mark_pods_ready_stand_in`)."""

from __future__ import annotations

from typing import Any

from reconcile.client import api
from tests import support
from tests.controllers import helpers


def _pdb(name: str, app: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": app}}, **spec}}


def _status(client: api.Client, ns: str, name: str) -> dict[str, Any]:
    return client.get("policy/v1", "poddisruptionbudgets", name, namespace=ns).get("status") or {}


def _condition(status: dict[str, Any]) -> tuple[str, str] | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "DisruptionAllowed":
            return cond["status"], cond["reason"]
    return None


def test_a_percent_budget_follows_the_deployments_scale(controller_manager, client: api.Client, ns: str) -> None:
    client.create("apps/v1", "deployments", helpers.deployment("web", replicas=3), namespace=ns)
    client.create("policy/v1", "poddisruptionbudgets", _pdb("web", "web", maxUnavailable="50%"), namespace=ns)

    def counted() -> dict[str, Any] | None:
        helpers.mark_pods_ready_stand_in(client, ns)
        status = _status(client, ns, "web")
        return status if status.get("currentHealthy") == 3 else None

    status = support.wait_for(counted, timeout=30, what="three healthy pods counted")
    # expected 3 (the Deployment's replicas), maxUnavailable ceil(1.5) = 2, so desired 1, allowed 2
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (3, 1, 2)
    assert status["observedGeneration"] == 1 and _condition(status) == ("True", "SufficientPods")

    client.patch("apps/v1", "deployments", "web", {"spec": {"replicas": 4}}, namespace=ns)
    status = support.wait_for(lambda: (s := _status(client, ns, "web")).get("expectedPods") == 4 and s,
                              timeout=30, what="the new scale seen")
    assert status["desiredHealthy"] == 2  # 4 - ceil(2)


def test_an_int_min_available_counts_matching_pods(controller_manager, client: api.Client, ns: str) -> None:
    for i in range(2):
        client.create("v1", "pods", {"apiVersion": "v1", "kind": "Pod",
                                     "metadata": {"name": f"p{i}", "labels": {"app": "db"}},
                                     "spec": {"containers": [{"name": "c", "image": "x:1"}]}}, namespace=ns)
    client.create("policy/v1", "poddisruptionbudgets", _pdb("db", "db", minAvailable=2), namespace=ns)
    status = support.wait_for(lambda: (s := _status(client, ns, "db")).get("observedGeneration") == 1 and s,
                              timeout=30, what="the budget observed")
    assert (status["expectedPods"], status["desiredHealthy"], status["currentHealthy"]) == (2, 2, 0)
    assert status["disruptionsAllowed"] == 0 and _condition(status) == ("False", "InsufficientPods")
    client.create("v1", "pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p2", "labels": {"app": "db"}},
                                 "spec": {"containers": [{"name": "c", "image": "x:1"}]}}, namespace=ns)
    helpers.mark_pods_ready_stand_in(client, ns)
    status = support.wait_for(lambda: (s := _status(client, ns, "db")).get("currentHealthy") == 3 and s,
                              timeout=30, what="the ready pods counted")
    assert status["disruptionsAllowed"] == 1 and _condition(status) == ("True", "SufficientPods")


def test_a_percent_over_bare_pods_fails_safe(controller_manager, client: api.Client, ns: str) -> None:
    """A pod with a controller the disruption controller cannot size makes the sync fail safe.

    The controller is a real object (a ConfigMap: no scale to read), so the garbage collector keeps
    the pod; an owner that does not exist raced the collector's delete against the budget's sync."""
    owner = client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": "not-a-workload"}}, namespace=ns)
    client.create("v1", "pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "orphan", "labels": {"app": "x"},
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "not-a-workload",
                             "uid": owner["metadata"]["uid"], "controller": True}]},
        "spec": {"containers": [{"name": "c", "image": "x:1"}]}}, namespace=ns)
    client.create("policy/v1", "poddisruptionbudgets", _pdb("x", "x", minAvailable="50%"), namespace=ns)
    status = support.wait_for(lambda: _condition(s := _status(client, ns, "x")) == ("False", "SyncFailed") and s,
                              timeout=30, what="the failed sync recorded")
    assert status["disruptionsAllowed"] == 0
    message = next(c["message"] for c in status["conditions"] if c["type"] == "DisruptionAllowed")
    assert message == 'found no controllers for pod "orphan"'


def test_scale_adds_up_a_replicaset_and_a_statefulset(controller_manager, client: api.Client, ns: str) -> None:
    """Each controller of the matching pods counted once, by its own replicas (not by its pods)."""
    labels = {"app": "mix"}
    client.create("apps/v1", "replicasets", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "mix-rs"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {**labels, "via": "rs"}},
                 "template": helpers.pod_template({**labels, "via": "rs"})}}, namespace=ns)
    client.create("apps/v1", "statefulsets", {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "mix-sts"},
        "spec": {"replicas": 1, "serviceName": "mix", "selector": {"matchLabels": {**labels, "via": "sts"}},
                 "template": helpers.pod_template({**labels, "via": "sts"})}}, namespace=ns)
    client.create("policy/v1", "poddisruptionbudgets", _pdb("mix", "mix", maxUnavailable=0), namespace=ns)

    def counted() -> dict[str, Any] | None:
        helpers.mark_pods_ready_stand_in(client, ns)
        status = _status(client, ns, "mix")
        return status if status.get("currentHealthy") == 3 else None

    status = support.wait_for(counted, timeout=30, what="the three pods of both controllers counted")
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (3, 3, 0)
