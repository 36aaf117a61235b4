"""The public test kit: `Cluster` (real etcd + API server) and `OperatorRunner` (a plugin in a thread)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import reconcile as rc
from reconcile import testing
from reconcile.client import api
from tests import support
from tests.sdk import helpers

AV, PLURAL = helpers.API_VERSION, helpers.PLURAL


def test_runner_runs_a_registry_in_a_thread(api_server: str, sync_client: api.Client, namespace: str) -> None:
    reg = rc.Registry()

    @rc.on.create(AV, PLURAL, registry=reg)
    def hello(name: str, **_: Any) -> str:
        return f"hello {name}"

    admin = support.connection(api_server).client_config()
    with testing.OperatorRunner(reg, server=admin, namespace=namespace) as runner:
        assert runner.operator is not None and runner.operator.started
        sync_client.create(AV, PLURAL, helpers.widget("kit"), namespace=namespace)
        testing.wait_for(lambda: sync_client.get(AV, PLURAL, "kit", namespace=namespace)
                         .get("status", {}).get("hello") == "hello kit")
    assert runner.operator is not None and not runner.operator.started


def test_runner_raises_what_broke_the_operator(api_server: str) -> None:
    reg = rc.Registry()

    @rc.on.startup(registry=reg)
    def broken(**_: Any) -> None:
        raise RuntimeError("cannot start")

    admin = support.connection(api_server).client_config()
    with pytest.raises(RuntimeError, match="cannot start"), testing.OperatorRunner(reg, server=admin):
        pass


def test_cluster_starts_a_real_api_server_and_applies_files(etcd_endpoint: str, tmp_path: Path) -> None:
    plugin = tmp_path / "handlers.py"
    plugin.write_text(
        "import reconcile as rc\n"
        "@rc.on.create('kit.reconcile.dev', 'v1', 'things')\n"
        "def made(spec, **_):\n"
        "    return spec['n'] * 2\n"
    )
    crd = helpers.crd(plural="things", kind="Thing")
    crd["metadata"]["name"] = "things.kit.reconcile.dev"
    crd["spec"]["group"] = "kit.reconcile.dev"
    with testing.Cluster(etcd=etcd_endpoint) as cluster:
        cluster.apply(crd)
        with testing.OperatorRunner(plugin, server=cluster.client_config, namespace="default"):
            cluster.apply("apiVersion: kit.reconcile.dev/v1\nkind: Thing\nmetadata: {name: t}\nspec: {n: 21}\n")
            testing.wait_for(lambda: cluster.client.get("kit.reconcile.dev/v1", "things", "t", namespace="default")
                             .get("status", {}).get("made") == 42)
        url = cluster.url
    with pytest.raises(Exception):  # noqa: B017 - stopped: the server no longer answers
        api.Client(url).get("v1", "namespaces", "default")
