"""The gitops controller's identity: system:gitops-controller reads Syncs and sources, writes their
status, and applies nothing itself; a Sync's objects are applied as its spec.serviceAccountName
(impersonated, in the Sync's namespace), so they can be no more than that account may create."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reconcile.api.rbac import policy
from reconcile.client import aio
from reconcile.core import errors
from reconcile.gitops import artifacts, controller, syncs
from tests import support
from tests.gitops import syncsupport as s

CLUSTER_ROLE = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: NAME}
rules: [{apiGroups: ["*"], resources: ["*"], verbs: ["*"]}]
"""


@pytest.fixture
def store(tmp_path: Path) -> artifacts.ArtifactStore:
    return artifacts.ArtifactStore(tmp_path / "artifacts")


@pytest.fixture
async def gitops_client(api_server: str) -> AsyncIterator[aio.AsyncClient]:
    connection = support.connection(api_server)
    async with aio.AsyncClient(connection.client_config(as_user=connection.user(policy.GITOPS_USER))) as client:
        yield client


async def _deployer(ac: Any, ns: str) -> None:
    """ServiceAccount `deployer` that may write ConfigMaps in its namespace (and nothing else; no
    aggregation controller runs here, so a Role rather than `edit`)."""
    await ac.create("v1", "serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                              "metadata": {"name": "deployer"}}, namespace=ns)
    await ac.create(policy.API_VERSION, "roles", {
        "apiVersion": policy.API_VERSION, "kind": "Role", "metadata": {"name": "configmaps"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]}, namespace=ns)
    await ac.create(policy.API_VERSION, "rolebindings", {
        "apiVersion": policy.API_VERSION, "kind": "RoleBinding", "metadata": {"name": "deployer-edit"},
        "roleRef": {"apiGroup": policy.GROUP, "kind": "Role", "name": "configmaps"},
        "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": ns}]}, namespace=ns)


async def _ready_or_failed(ac: Any, ns: str, name: str) -> dict | None:
    sync = await s.get_sync(ac, ns, name)
    cond = s.condition(sync, "Ready") or {}
    return sync if cond.get("status") in ("True", "False") and cond.get("reason") != "Progressing" else None


async def test_the_controller_identity_cannot_write_objects_or_read_secrets(gitops_client: aio.AsyncClient) -> None:
    with pytest.raises(errors.Forbidden):
        await gitops_client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                        "metadata": {"name": "x"}}, namespace="default")
    with pytest.raises(errors.Forbidden):
        await gitops_client.list("v1", "secrets", namespace="kube-system")
    with pytest.raises(errors.Forbidden):
        await gitops_client.create(syncs.API_VERSION, "syncs", {"apiVersion": syncs.API_VERSION, "kind": "Sync",
                                   "metadata": {"name": "x"}, "spec": {"sourceRef": {"kind": "GitRepository",
                                                                                     "name": "x"}}}, namespace="default")
    await gitops_client.list(syncs.API_VERSION, "syncs")
    await gitops_client.list(syncs.API_VERSION, "gitrepositories")


async def test_a_sync_is_applied_as_its_service_account_and_forbidden_objects_apply_nothing(
        ac: Any, gitops_client: aio.AsyncClient, store: artifacts.ArtifactStore) -> None:
    ns = await s.namespace(ac)
    await _deployer(ac, ns)
    role = f"escalate-{ns}"
    files = {"a.yaml": s.configmap("a", {"k": "1"}), "b.yaml": CLUSTER_ROLE.replace("NAME", role)}
    await s.git_repository(ac, ns, "repo", s.publish(store, ns, "repo", files))
    await s.sync(ac, ns, "tenant", "repo", interval="10m", retryInterval="1s", serviceAccountName="deployer")
    await s.sync(ac, ns, "no-account", "repo", interval="10m", retryInterval="1s")
    ctl = controller.SyncController(gitops_client, store)
    await ctl.start()
    try:
        for name, who in (("tenant", f"system:serviceaccount:{ns}:deployer"), ("no-account", policy.GITOPS_USER)):
            sync = await support.eventually(lambda name=name: _ready_or_failed(ac, ns, name), timeout=30,
                                            interval=0.1, what=f"{name} tried")
            ready = s.condition(sync, "Ready")
            assert ready["status"] == "False", ready
            assert f"ClusterRole/{role}" in ready["message"] or (name == "no-account" and "ConfigMap" in ready["message"])
            assert "forbidden" in ready["message"] and who in ready["message"], ready["message"]
            assert s.condition(sync, "Stalled") is None  # permissions may be granted: retried, not stalled
        with pytest.raises(errors.NotFound):
            await ac.get("v1", "configmaps", "a", namespace=ns)  # nothing of the commit applied
        with pytest.raises(errors.NotFound):
            await ac.get(policy.API_VERSION, "clusterroles", role)
        # without the ClusterRole the tenant's commit applies, as the account (its ConfigMap is made)
        await s.git_repository(ac, ns, "repo", s.publish(store, ns, "repo", {"a.yaml": s.configmap("a", {"k": "1"})}))

        async def tenant_ready() -> bool:
            return syncs.is_ready(await s.get_sync(ac, ns, "tenant"))

        await support.eventually(tenant_ready, timeout=30, interval=0.1, what="tenant applied")
        assert (await ac.get("v1", "configmaps", "a", namespace=ns))["data"] == {"k": "1"}
    finally:
        await ctl.stop()


async def test_a_service_account_name_that_is_not_a_name_is_refused_by_the_api(ac: Any) -> None:
    ns = await s.namespace(ac)
    for hostile in ("kube-system:admin", "../admin", "Admin", "a" * 254):
        with pytest.raises(errors.Invalid) as caught:
            await s.sync(ac, ns, "bad", "repo", serviceAccountName=hostile)
        assert "spec.serviceAccountName" in caught.value.message


async def test_impersonation_is_of_the_syncs_own_namespace_only(
        ac: Any, gitops_client: aio.AsyncClient, store: artifacts.ArtifactStore) -> None:
    """A tenant naming an account that exists (with more rights) in another namespace gets its own
    namespace's account of that name (absent here, so nothing is allowed)."""
    other = await s.namespace(ac, "other")
    await _deployer(ac, other)
    ns = await s.namespace(ac)
    await s.git_repository(ac, ns, "repo", s.publish(store, ns, "repo", {"a.yaml": s.configmap("a", {"k": "1"})}))
    sync = await s.sync(ac, ns, "tenant", "repo", serviceAccountName="deployer", targetNamespace=other)
    ctl = controller.SyncController(gitops_client, store)
    try:
        outcome = await syncs.sync_once(gitops_client, store, sync, apply_client=ctl.apply_client(ns, "deployer"))
    finally:
        await ctl.stop()
    assert not outcome.ready and f"system:serviceaccount:{ns}:deployer" in outcome.message
    with pytest.raises(errors.NotFound):
        await ac.get("v1", "configmaps", "a", namespace=other)


async def test_a_prune_the_account_may_not_do_fails_and_keeps_the_object_listed_until_it_can(
        ac: Any, gitops_client: aio.AsyncClient, store: artifacts.ArtifactStore) -> None:
    ns = await s.namespace(ac)
    await ac.create("v1", "serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                              "metadata": {"name": "writer"}}, namespace=ns)
    await ac.create(policy.API_VERSION, "roles", {
        "apiVersion": policy.API_VERSION, "kind": "Role", "metadata": {"name": "no-delete"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "create", "patch"]}]},
        namespace=ns)
    await ac.create(policy.API_VERSION, "rolebindings", {
        "apiVersion": policy.API_VERSION, "kind": "RoleBinding", "metadata": {"name": "writer"},
        "roleRef": {"apiGroup": policy.GROUP, "kind": "Role", "name": "no-delete"},
        "subjects": [{"kind": "ServiceAccount", "name": "writer", "namespace": ns}]}, namespace=ns)
    files = {"a.yaml": s.configmap("a", {"k": "1"}), "b.yaml": s.configmap("b", {"k": "1"})}
    await s.git_repository(ac, ns, "repo", s.publish(store, ns, "repo", files))
    await s.sync(ac, ns, "app", "repo", serviceAccountName="writer")
    ctl = controller.SyncController(gitops_client, store)
    applier = ctl.apply_client(ns, "writer")
    try:
        assert (await syncs.sync_once(gitops_client, store, await s.get_sync(ac, ns, "app"),
                                      apply_client=applier)).ready
        await s.git_repository(ac, ns, "repo", s.publish(store, ns, "repo", {"a.yaml": files["a.yaml"]}))
        outcome = await syncs.sync_once(gitops_client, store, await s.get_sync(ac, ns, "app"), apply_client=applier)
        assert outcome.reason == "PruneFailed" and f"ConfigMap/{ns}/b" in outcome.message
        assert ("ConfigMap", ns, "b") in s.inventory(await s.get_sync(ac, ns, "app"))
        await ac.patch(policy.API_VERSION, "roles", "no-delete", {"rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "create", "patch", "delete"]}]},
            namespace=ns)
        outcome = await syncs.sync_once(gitops_client, store, await s.get_sync(ac, ns, "app"), apply_client=applier)
        assert outcome.ready and [e.name for e in outcome.pruned] == ["b"]
        assert s.inventory(await s.get_sync(ac, ns, "app")) == {("ConfigMap", ns, "a")}
    finally:
        await ctl.stop()
