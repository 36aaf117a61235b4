"""The Job and CronJob controllers under RBAC: the controller-manager, as system:kube-controller-manager
with only the default policy's roles, runs a Job to Complete and reads CronJobs and their Jobs with
nothing forbidden; the `system:controller:job-controller` and `...:cronjob-controller` roles grant
what upstream's do (the manager holds every controller's role at once, so the run alone cannot tell
which role allowed a request)."""

from __future__ import annotations

from typing import Any

from tests import support
from tests.api import helpers
from tests.api.test_rbac import Cluster, cluster  # noqa: F401 - the module's RBAC cluster fixture


def _get(cluster: Cluster, path: str) -> dict[str, Any] | None:  # noqa: F811 - the fixture name
    response = cluster.req("admin", "GET", path)
    return response.json() if response.status_code == 200 else None


def test_a_job_runs_with_the_controllers_own_roles(cluster: Cluster) -> None:  # noqa: F811
    ns = helpers.unique("rbac-job")
    cluster.admin("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    cluster.admin("POST", f"/apis/batch/v1/namespaces/{ns}/cronjobs", {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
        "spec": {"schedule": "0 0 1 1 *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}}})
    cluster.admin("POST", f"/apis/batch/v1/namespaces/{ns}/jobs", {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}})

    def pod() -> dict[str, Any] | None:
        items = (_get(cluster, f"/api/v1/namespaces/{ns}/pods") or {}).get("items") or []
        return items[0] if items else None

    try:
        created = support.wait_for(pod, timeout=30, what="the job's pod")
    except AssertionError:
        raise AssertionError(cluster.manager_log.read_text()[-4000:]) from None
    response = cluster.req("admin", "PATCH", f"/api/v1/namespaces/{ns}/pods/{created['metadata']['name']}/status",
                           json={"status": {"phase": "Succeeded"}},
                           headers={"Content-Type": "application/merge-patch+json"})  # stand-in for the kubelet
    assert response.status_code == 200, response.text

    def complete() -> bool:
        status = (_get(cluster, f"/apis/batch/v1/namespaces/{ns}/jobs/once") or {}).get("status") or {}
        return any(c["type"] == "Complete" for c in status.get("conditions") or [])

    support.wait_for(complete, timeout=30, what="Complete")
    log = cluster.manager_log.read_text().lower()
    assert "forbidden" not in log, log[-3000:]
    roles = "/apis/rbac.authorization.k8s.io/v1/clusterroles/system:controller:"
    job_rules = cluster.admin("GET", f"{roles}job-controller")["rules"]
    assert {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch", "create", "delete", "patch"]} \
        in job_rules
    assert {"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["update", "patch"]} in job_rules
    cron_rules = cluster.admin("GET", f"{roles}cronjob-controller")["rules"]
    assert any("jobs" in r["resources"] and "create" in r["verbs"] for r in cron_rules)
    assert {"apiGroups": ["batch"], "resources": ["cronjobs/status"], "verbs": ["update", "patch"]} in cron_rules
