"""The resourcequota controller against a real API server and controller-manager: it fills in
status.hard and status.used, admission enforces from then on, and usage comes back when objects
are deleted, pods finish or a quota's spec changes. (The periodic recount is tested in
test_resourcequota_resync.py, with a short period: a recount racing a create can give a just
charged slot away, as upstream's can, so these tests run with the default five minutes.)"""

from __future__ import annotations

from typing import Any

import pytest

from reconcile.client import api
from reconcile.core import errors
from tests import support
from tests.controllers import helpers


def _quota(name: str, hard: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name}, "spec": {"hard": hard, **spec}}


def _status(client: api.Client, ns: str, name: str) -> dict[str, Any]:
    return client.get("v1", "resourcequotas", name, namespace=ns).get("status") or {}


def _wait_used(client: api.Client, ns: str, name: str, used: dict[str, str], *, timeout: float = 20.0) -> None:
    support.wait_for(lambda: _status(client, ns, name).get("used") == used, timeout=timeout,
                     what=f"status.used == {used} (now {_status(client, ns, name).get('used')})")


def _with_root_ca(client: api.Client, ns: str) -> None:
    """Wait for the root-ca-cert-publisher's kube-root-ca.crt: it counts against a configmaps quota,
    as upstream's does, so the counts below include it."""
    support.wait_for(lambda: any(item["metadata"]["name"] == "kube-root-ca.crt"
                                 for item in client.list("v1", "configmaps", namespace=ns)["items"]),
                     timeout=20, what=f"kube-root-ca.crt in {ns}")


def _configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {}}


def _pod(name: str, cpu: str | None = None) -> dict[str, Any]:
    resources = {"requests": {"cpu": cpu}} if cpu else {}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "resources": resources}]}}


def test_status_is_filled_in_and_then_enforced(client: api.Client, ns: str, controller_manager: Any) -> None:
    _with_root_ca(client, ns)
    for name in ("a", "b"):
        client.create("v1", "configmaps", _configmap(name), namespace=ns)
    client.create("v1", "resourcequotas", _quota("objects", {"configmaps": "4", "count/secrets": "5"}), namespace=ns)
    _wait_used(client, ns, "objects", {"configmaps": "3", "count/secrets": "0"})  # a, b and kube-root-ca.crt
    assert _status(client, ns, "objects")["hard"] == {"configmaps": "4", "count/secrets": "5"}
    client.create("v1", "configmaps", _configmap("c"), namespace=ns)
    assert _status(client, ns, "objects")["used"]["configmaps"] == "4"  # charged by admission, at once
    with pytest.raises(errors.Forbidden) as caught:
        client.create("v1", "configmaps", _configmap("d"), namespace=ns)
    assert caught.value.message == ('configmaps "d" is forbidden: exceeded quota: objects, requested: configmaps=1, '
                                    "used: configmaps=4, limited: configmaps=4")


def test_deleting_releases_usage(client: api.Client, ns: str, controller_manager: Any) -> None:
    _with_root_ca(client, ns)
    client.create("v1", "resourcequotas", _quota("one", {"configmaps": "2"}), namespace=ns)
    _wait_used(client, ns, "one", {"configmaps": "1"})  # kube-root-ca.crt
    client.create("v1", "configmaps", _configmap("first"), namespace=ns)
    with pytest.raises(errors.Forbidden):
        client.create("v1", "configmaps", _configmap("second"), namespace=ns)
    client.delete("v1", "configmaps", "first", namespace=ns)
    _wait_used(client, ns, "one", {"configmaps": "1"})
    client.create("v1", "configmaps", _configmap("second"), namespace=ns)


def test_finished_pods_give_their_compute_back(client: api.Client, ns: str, controller_manager: Any) -> None:
    client.create("v1", "resourcequotas", _quota("compute", {"pods": "2", "requests.cpu": "1", "count/pods": "10"}),
                  namespace=ns)
    _wait_used(client, ns, "compute", {"count/pods": "0", "pods": "0", "requests.cpu": "0"})
    client.create("v1", "pods", _pod("batch", "800m"), namespace=ns)
    with pytest.raises(errors.Forbidden, match="requested: requests.cpu=500m, used: requests.cpu=800m"):
        client.create("v1", "pods", _pod("next", "500m"), namespace=ns)
    client.patch("v1", "pods", "batch", {"status": {"phase": "Succeeded"}}, namespace=ns, subresource="status")
    _wait_used(client, ns, "compute", {"count/pods": "1", "pods": "0", "requests.cpu": "0"})
    client.create("v1", "pods", _pod("next", "500m"), namespace=ns)


def test_spec_changes_and_lazily_watched_resources(client: api.Client, ns: str, controller_manager: Any) -> None:
    client.create("apps/v1", "deployments", helpers.deployment("web", replicas=0), namespace=ns)
    client.create("v1", "resourcequotas", _quota("apps", {"count/deployments.apps": "4"}), namespace=ns)
    _wait_used(client, ns, "apps", {"count/deployments.apps": "1"})
    client.patch("v1", "resourcequotas", "apps", {"spec": {"hard": {"count/deployments.apps": "2",
                                                                    "count/replicasets.apps": "3"}}}, namespace=ns)
    support.wait_for(lambda: _status(client, ns, "apps").get("hard") == {"count/deployments.apps": "2",
                                                                         "count/replicasets.apps": "3"},
                     timeout=20, what="status.hard following spec.hard")
    used = _status(client, ns, "apps")["used"]
    assert used["count/deployments.apps"] == "1"
    client.delete("apps/v1", "deployments", "web", namespace=ns)
    support.wait_for(lambda: _status(client, ns, "apps")["used"]["count/deployments.apps"] == "0", timeout=20,
                     what="the deleted deployment released")
