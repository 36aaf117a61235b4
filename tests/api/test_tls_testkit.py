"""The public test kit secured: `Cluster(tls=True)` as `reconcile up` runs it, a plugin run by
`OperatorRunner` with the cluster's credentials, and `reconcile operator run --kubeconfig`, as the
admin and as an identity of its own with only the ClusterRole an SDK operator needs (the rules of
examples/operators/website/rbac.yaml, for this plugin's resource)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconcile import testing
from reconcile.client import api
from reconcile.client import config as config_mod
from reconcile.core import errors
from reconcile.pki import certs
from tests.sdk import helpers

PLUGIN = (
    "import reconcile as rc\n"
    "@rc.on.create('kit.reconcile.dev', 'v1', 'things')\n"
    "def made(spec, **_):\n"
    "    return spec['n'] * 2\n"
)


@pytest.fixture(scope="module")
def secured() -> Iterator[testing.Cluster]:
    with testing.Cluster(etcd=None, tls=True) as cluster:
        crd = helpers.crd(plural="things", kind="Thing")
        crd["metadata"]["name"] = "things.kit.reconcile.dev"
        crd["spec"]["group"] = "kit.reconcile.dev"
        cluster.apply(crd)
        yield cluster


def _made(cluster: testing.Cluster, name: str) -> bool:
    return cluster.client.get("kit.reconcile.dev/v1", "things", name, namespace="default") \
        .get("status", {}).get("made") == 42


def test_the_cluster_is_secured(secured: testing.Cluster) -> None:
    assert secured.url.startswith("https://") and secured.etcd_endpoint and secured.etcd_endpoint.startswith("https://")
    with api.Client(secured.url.replace("https:", "http:")) as plain, pytest.raises(errors.ApiError):
        plain.get("v1", "namespaces", "default")
    anonymous = secured.client_config
    anonymous.cert = None
    with api.Client(anonymous) as client, pytest.raises(errors.Unauthorized):
        client.get("v1", "namespaces", "default")


def test_operator_runner_with_the_clusters_credentials(secured: testing.Cluster, tmp_path: Path) -> None:
    plugin = tmp_path / "handlers.py"
    plugin.write_text(PLUGIN)
    with testing.OperatorRunner(plugin, server=secured.client_config, namespace="default"):
        secured.apply("apiVersion: kit.reconcile.dev/v1\nkind: Thing\nmetadata: {name: t1}\nspec: {n: 21}\n")
        testing.wait_for(lambda: _made(secured, "t1"), what="the handler's status")


def test_operator_run_with_a_kubeconfig(secured: testing.Cluster, tmp_path: Path) -> None:
    plugin = tmp_path / "handlers.py"
    plugin.write_text(PLUGIN)
    kubeconfig = secured.kubeconfig(tmp_path / "kubeconfig")
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILE_SERVER", "KUBECONFIG")}
    with open(tmp_path / "operator.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "reconcile", "operator", "run", str(plugin), "--standalone",
                                    "-n", "default", "--kubeconfig", str(kubeconfig)],
                                   stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        secured.apply("apiVersion: kit.reconcile.dev/v1\nkind: Thing\nmetadata: {name: t2}\nspec: {n: 21}\n")
        testing.wait_for(lambda: process.poll() is None and _made(secured, "t2"), timeout=60,
                         what=f"the operator's status: {(tmp_path / 'operator.log').read_text()[-2000:]}")
    finally:
        process.terminate()
        process.wait(timeout=30)


OPERATOR_RBAC = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kit-operator}
rules:
- {apiGroups: [kit.reconcile.dev], resources: [things], verbs: [get, list, watch, patch, update]}
- {apiGroups: [kit.reconcile.dev], resources: [things/status], verbs: [get, patch, update]}
- {apiGroups: ["", events.k8s.io], resources: [events], verbs: [create, patch, update]}
- {apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, list, watch, create, update, patch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kit-operator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kit-operator}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: kit-operator}]
"""


def test_operator_run_as_its_own_identity_with_the_documented_role(secured: testing.Cluster, tmp_path: Path) -> None:
    """A client certificate of the cluster CA (CN=kit-operator) and a CA in the kubeconfig; leader
    election on (a Lease in `default`): the SDK needs nothing beyond the role's rules."""
    assert secured.pki is not None
    plugin = tmp_path / "handlers.py"
    plugin.write_text(PLUGIN)
    issued = certs.issue(secured.pki.ca.read(), common_name="kit-operator", client=True)
    (tmp_path / "op.crt").write_bytes(issued.cert)
    (tmp_path / "op.key").write_bytes(issued.key)
    kubeconfig = tmp_path / "operator.kubeconfig"
    config_mod.write_kubeconfig(kubeconfig, secured.url, ca_file=secured.pki.ca.cert, cert_file=tmp_path / "op.crt",
                                key_file=tmp_path / "op.key")
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILE_SERVER", "KUBECONFIG")}
    log_path = tmp_path / "operator.log"

    def run() -> subprocess.Popen[bytes]:
        with open(log_path, "ab") as log:
            return subprocess.Popen([sys.executable, "-m", "reconcile", "operator", "run", str(plugin), "-n", "default",
                                     "--kubeconfig", str(kubeconfig)], stdout=log, stderr=subprocess.STDOUT, env=env)

    # without the role: the operator is refused (it is no admin) and makes nothing
    process = run()
    try:
        secured.apply("apiVersion: kit.reconcile.dev/v1\nkind: Thing\nmetadata: {name: t3}\nspec: {n: 21}\n")
        testing.wait_for(lambda: "403" in log_path.read_text() or "Forbidden" in log_path.read_text()
                         or process.poll() is not None, timeout=60, what="the operator to be refused")
        assert not _made(secured, "t3")
    finally:
        process.terminate()
        process.wait(timeout=30)
    secured.apply(OPERATOR_RBAC)
    process = run()
    try:
        testing.wait_for(lambda: process.poll() is None and _made(secured, "t3"), timeout=60,
                         what=f"the operator's status: {log_path.read_text()[-2000:]}")
        lease = secured.client.get("coordination.k8s.io/v1", "leases", "reconcile-operator-handlers",
                                   namespace="default")
        assert lease["spec"]["holderIdentity"]  # it elected itself, as kit-operator
    finally:
        process.terminate()
        process.wait(timeout=30)
