"""The public test kit secured: `Cluster(tls=True)` as `reconcile up` runs it, a plugin run by
`OperatorRunner` with the cluster's credentials, and `reconcile operator run --kubeconfig`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconcile import testing
from reconcile.client import api
from reconcile.core import errors
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
