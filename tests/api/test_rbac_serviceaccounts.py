"""The ServiceAccounts and StatefulSet controllers under RBAC: the controller-manager, as
system:kube-controller-manager with only the default policy's roles, gives every new namespace its `default` account (the
`system:controller:service-account-controller` role is enough); the StatefulSet controller makes
revisions, claims and pods in order, hands claims to the set and writes status with
`system:controller:statefulset-controller` alone."""

from __future__ import annotations

from typing import Any

from reconcile.core import meta
from tests import support
from tests.api import helpers
from tests.api.test_rbac import Cluster, cluster  # noqa: F401 - the module's RBAC cluster fixture


def test_default_accounts_are_made_with_the_controllers_own_role(cluster: Cluster) -> None:  # noqa: F811
    ns = helpers.unique("rbac-sa")
    cluster.admin("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    def made() -> bool:
        return cluster.req("admin", "GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default").status_code == 200

    try:
        support.wait_for(made, timeout=30, what="the default ServiceAccount")
    except AssertionError:
        raise AssertionError(cluster.manager_log.read_text()[-4000:]) from None
    assert "forbidden" not in cluster.manager_log.read_text().lower()
    role = cluster.admin("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/"
                                "system:controller:service-account-controller")
    assert {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["create"]} in role["rules"]


def _get(cluster: Cluster, path: str) -> dict[str, Any] | None:  # noqa: F811 - the fixture name
    response = cluster.req("admin", "GET", path)
    return response.json() if response.status_code == 200 else None


def test_statefulset_runs_with_the_controllers_own_role(cluster: Cluster) -> None:  # noqa: F811
    ns = helpers.unique("rbac-sts")
    cluster.admin("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    labels = {"app": "web"}
    cluster.admin("POST", f"/apis/apps/v1/namespaces/{ns}/statefulsets", {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "serviceName": "web", "selector": {"matchLabels": labels},
                 "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                     "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}})
    pods = f"/api/v1/namespaces/{ns}/pods"
    try:
        support.wait_for(lambda: _get(cluster, f"{pods}/web-0") is not None, timeout=30, what="web-0")
    except AssertionError:
        raise AssertionError(cluster.manager_log.read_text()[-4000:]) from None
    now = meta.now_rfc3339()
    response = cluster.req("admin", "PATCH", f"{pods}/web-0/status", json={"status": {
        "phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}},
        headers={"Content-Type": "application/merge-patch+json"})  # stand-in for the kubelet
    assert response.status_code == 200, response.text
    support.wait_for(lambda: _get(cluster, f"{pods}/web-1") is not None, timeout=30, what="web-1")
    claim = _get(cluster, f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data-web-1")
    assert claim is not None and claim["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    support.wait_for(lambda: ((_get(cluster, f"/apis/apps/v1/namespaces/{ns}/statefulsets/web") or {})
                              .get("status") or {}).get("readyReplicas") == 1, timeout=30, what="status")
    revisions = cluster.admin("GET", f"/apis/apps/v1/namespaces/{ns}/controllerrevisions")["items"]
    assert len(revisions) == 1
    log = cluster.manager_log.read_text().lower()
    assert "forbidden" not in log, log[-3000:]
