"""Garbage collection (Background, Foreground, Orphan, any resource) and namespace deletion."""

from __future__ import annotations

from typing import Any

from reconcile.client import api
from reconcile.core import errors
from tests import support
from tests.controllers import helpers


def _gone(fn: Any) -> bool:
    try:
        fn()
    except errors.NotFound:
        return True
    return False


def _pods(client: api.Client, ns: str) -> list[dict[str, Any]]:
    return client.list("v1", "pods", namespace=ns).get("items") or []


def _sets(client: api.Client, ns: str) -> list[dict[str, Any]]:
    return client.list("apps/v1", "replicasets", namespace=ns).get("items") or []


def _deploy(client: api.Client, ns: str, name: str, replicas: int = 3) -> None:
    client.create("apps/v1", "deployments", helpers.deployment(name, replicas=replicas), namespace=ns)
    support.wait_for(lambda: len(_pods(client, ns)) == replicas, timeout=30, what=f"{replicas} pods")


def test_background_deletion_collects_replicasets_and_pods(controller_manager, client: api.Client, ns: str) -> None:
    _deploy(client, ns, "bg")
    client.delete("apps/v1", "deployments", "bg", namespace=ns, propagation_policy="Background")
    assert _gone(lambda: client.get("apps/v1", "deployments", "bg", namespace=ns))
    support.wait_for(lambda: not _sets(client, ns) and not _pods(client, ns), timeout=30, what="dependents gone")


def test_foreground_deletion_waits_for_dependents(controller_manager, client: api.Client, ns: str) -> None:
    _deploy(client, ns, "fg")
    client.delete("apps/v1", "deployments", "fg", namespace=ns, propagation_policy="Foreground")
    held = client.get("apps/v1", "deployments", "fg", namespace=ns)
    assert held["metadata"]["deletionTimestamp"] and "foregroundDeletion" in held["metadata"]["finalizers"]
    support.wait_for(lambda: _gone(lambda: client.get("apps/v1", "deployments", "fg", namespace=ns)),
                     timeout=30, what="deployment gone after its dependents")
    assert not _sets(client, ns) and not _pods(client, ns)


def test_orphan_deletion_keeps_dependents_without_owner(controller_manager, client: api.Client, ns: str) -> None:
    _deploy(client, ns, "or")
    rs = _sets(client, ns)[0]
    client.delete("apps/v1", "deployments", "or", namespace=ns, propagation_policy="Orphan")
    support.wait_for(lambda: _gone(lambda: client.get("apps/v1", "deployments", "or", namespace=ns)),
                     timeout=30, what="deployment gone")
    support.wait_for(lambda: not client.get("apps/v1", "replicasets", rs["metadata"]["name"], namespace=ns)
                     ["metadata"].get("ownerReferences"), timeout=20, what="replicaset orphaned")
    assert len(_pods(client, ns)) == 3
    # the orphaned ReplicaSet still owns (and keeps) its pods
    assert all(p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"] for p in _pods(client, ns))


def test_any_resource_is_collected(controller_manager, client: api.Client, ns: str) -> None:
    owner = client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": "owner"}}, namespace=ns)
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    client.create("v1", "secrets", {"apiVersion": "v1", "kind": "Secret",
                                    "metadata": {"name": "dep", "ownerReferences": [ref]}}, namespace=ns)
    client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": "dangling", "ownerReferences": [
                                           {**ref, "name": "never", "uid": "00000000-0000-0000-0000-000000000000"}]}},
                  namespace=ns)
    support.wait_for(lambda: _gone(lambda: client.get("v1", "configmaps", "dangling", namespace=ns)),
                     timeout=20, what="dependent of a missing owner collected")
    assert client.get("v1", "secrets", "dep", namespace=ns)  # its owner exists
    client.delete("v1", "configmaps", "owner", namespace=ns)
    support.wait_for(lambda: _gone(lambda: client.get("v1", "secrets", "dep", namespace=ns)),
                     timeout=20, what="secret collected")


def test_namespace_deletion_empties_then_removes_it(controller_manager, client: api.Client, ns: str) -> None:
    _deploy(client, ns, "inns", replicas=2)
    client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
                  namespace=ns)
    client.delete("v1", "namespaces", ns)
    held = client.get("v1", "namespaces", ns)
    assert held["status"]["phase"] == "Terminating"
    support.wait_for(lambda: _gone(lambda: client.get("v1", "namespaces", ns)), timeout=40, what="namespace gone")
    assert not _pods(client, ns) and not _sets(client, ns)
    assert not client.list("v1", "configmaps", namespace=ns)["items"]


def test_custom_resources_defined_later_are_collected(controller_manager, client: api.Client, ns: str) -> None:
    from tests.api import helpers as api_helpers

    group = f"gc{ns.replace('-', '')}.example.com"
    client.create("apiextensions.k8s.io/v1", "customresourcedefinitions", api_helpers.widget_crd(group))
    support.wait_for(lambda: client.list(f"{group}/v1", "widgets", namespace=ns) is not None, timeout=20,
                     what="CRD served")
    owner = client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "o"}},
                          namespace=ns)
    widget = api_helpers.widget("w", group)
    widget["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o",
                                              "uid": owner["metadata"]["uid"]}]
    client.create(f"{group}/v1", "widgets", widget, namespace=ns)
    client.delete("v1", "configmaps", "o", namespace=ns)
    support.wait_for(lambda: _gone(lambda: client.get(f"{group}/v1", "widgets", "w", namespace=ns)),
                     timeout=30, what="custom resource collected")
    assert _gone(lambda: client.get(f"{group}/v1", "widgets", "w", namespace=ns))
    client.delete("apiextensions.k8s.io/v1", "customresourcedefinitions", f"widgets.{group}")
