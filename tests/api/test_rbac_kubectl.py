"""Real kubectl 1.32 under RBAC, as other users through `--as` impersonation.

kubectl sends no bearer token over plain http, so these run against a server with RBAC on and no
authenticator configured (every caller is an administrator, `system:masters`) and reach other
users through `--as`, which kubectl does send; token tests with kubectl wait for TLS.
`kubectl auth can-i` and `auth whoami` (protobuf reviews) are tested over HTTPS with client
certificates in test_kubectl_protobuf.py.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import prerequisites, support
from tests.api import helpers

G = "rbac.authorization.k8s.io"


@pytest.fixture(scope="module", autouse=True)
def _kubectl_present() -> None:
    prerequisites.require_kubectl()


@pytest.fixture(scope="module")
def rbac_server(etcd_endpoint: str) -> Iterator[str]:
    server = support.ApiServerProcess(etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry",
                                      extra_args=("--authorization-mode", "Node,RBAC"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def setup(rbac_server: str) -> Iterator[str]:
    """A namespace where `dora` may manage configmaps; returns its name."""
    ns = helpers.unique("kc")
    with support.connection(rbac_server).http_client() as http:
        helpers.create(http, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        helpers.create(http, f"/apis/{G}/v1/namespaces/{ns}/roles", {
            "apiVersion": f"{G}/v1", "kind": "Role", "metadata": {"name": "cm"},
            "rules": [{"verbs": ["get", "list", "create"], "apiGroups": [""], "resources": ["configmaps"]}]})
        helpers.create(http, f"/apis/{G}/v1/namespaces/{ns}/rolebindings", {
            "apiVersion": f"{G}/v1", "kind": "RoleBinding", "metadata": {"name": "dora-cm"},
            "roleRef": {"apiGroup": G, "kind": "Role", "name": "cm"},
            "subjects": [{"kind": "User", "apiGroup": G, "name": "dora"}]})
    yield ns


def kubectl(server: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    kubeconfig = tmp_path / "kubeconfig"
    if not kubeconfig.exists():
        support.connection(server).write_kubeconfig(kubeconfig)  # the admin, who may impersonate
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), KUBECACHEDIR=str(tmp_path / "cache"), HOME=str(tmp_path))
    found = prerequisites.find_kubectl()
    assert found is not None
    return subprocess.run([found, *args], capture_output=True, text=True, env=env, timeout=60)


def test_kubectl_as_a_user_meets_rbac(rbac_server: str, setup: str, tmp_path: Path) -> None:
    ns = setup
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-kubectl\ndata:\n  a: b\n")
    support.wait_for(lambda: kubectl(rbac_server, tmp_path, "-n", ns, "--as", "dora", "create", "-f",
                                     str(manifest)).returncode == 0, what="dora may create")
    listed = kubectl(rbac_server, tmp_path, "-n", ns, "--as", "dora", "get", "configmaps", "-o", "name")
    assert listed.returncode == 0 and "configmap/from-kubectl" in listed.stdout.split()
    secrets = kubectl(rbac_server, tmp_path, "-n", ns, "--as", "dora", "get", "secrets")
    assert secrets.returncode == 1
    assert secrets.stderr.strip() == (f'Error from server (Forbidden): secrets is forbidden: User "dora" cannot list '
                                      f'resource "secrets" in API group "" in the namespace "{ns}"')
    stranger = kubectl(rbac_server, tmp_path, "-n", ns, "--as", "eve", "get", "configmaps")
    assert stranger.returncode == 1 and 'User "eve" cannot list resource "configmaps"' in stranger.stderr
    refused = kubectl(rbac_server, tmp_path, "-n", ns, "--as", "dora", "delete", "configmap", "from-kubectl")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f'Error from server (Forbidden): configmaps "from-kubectl" is forbidden: User "dora" cannot delete resource '
        f'"configmaps" in API group "" in the namespace "{ns}"')
    listed = kubectl(rbac_server, tmp_path, "get", "clusterrolebindings", "cluster-admin")
    assert listed.returncode == 0 and listed.stdout.split()[:3] == ["NAME", "ROLE", "AGE"]
