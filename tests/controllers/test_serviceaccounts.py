"""The ServiceAccounts controller and the root CA publisher in a real controller-manager: every
namespace gets its `default` ServiceAccount and its `kube-root-ca.crt` ConfigMap, made again or put
back when someone deletes or edits them."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from reconcile.client import api
from reconcile.core import errors
from reconcile.pki import certs
from tests import support
from tests.controllers import helpers

CA = certs.new_ca("published-ca").cert.decode()


@pytest.fixture(scope="module")
def controller_manager(api_server: str) -> Iterator[helpers.ControllerManagerProcess]:
    with tempfile.NamedTemporaryFile("w", suffix=".crt", delete=False) as handle:
        handle.write(CA)
    process = helpers.ControllerManagerProcess(api_server, extra_args=("--root-ca-file", handle.name))
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _get(client: api.Client, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return client.get("v1", plural, name, namespace=namespace)
    except errors.NotFound:
        return None


def test_every_namespace_gets_its_default_account_again_and_again(
        controller_manager: helpers.ControllerManagerProcess, client: api.Client, ns: str) -> None:
    first = support.wait_for(lambda: _get(client, "serviceaccounts", ns, "default"), timeout=20,
                               what="the default ServiceAccount")
    client.delete("v1", "serviceaccounts", "default", namespace=ns)

    def recreated() -> dict[str, Any] | None:
        found = _get(client, "serviceaccounts", ns, "default")
        return found if found and found["metadata"]["uid"] != first["metadata"]["uid"] else None

    support.wait_for(recreated, timeout=20, what="the default ServiceAccount made again")
    other = client.create("v1", "serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                    "metadata": {"name": "mine"}}, namespace=ns)
    client.delete("v1", "serviceaccounts", "mine", namespace=ns)
    assert other["metadata"]["name"] == "mine"
    assert _get(client, "serviceaccounts", ns, "mine") is None  # only `default` is the controller's


def test_root_ca_is_published_and_put_back(controller_manager: helpers.ControllerManagerProcess,
                                           client: api.Client, ns: str) -> None:
    found = support.wait_for(lambda: _get(client, "configmaps", ns, "kube-root-ca.crt"), timeout=20,
                               what="kube-root-ca.crt")
    assert found["data"] == {"ca.crt": CA}
    assert "kube-apiserver" in found["metadata"]["annotations"]["kubernetes.io/description"]
    found["data"] = {"ca.crt": "tampered"}
    client.replace("v1", "configmaps", found)
    support.wait_for(lambda: (_get(client, "configmaps", ns, "kube-root-ca.crt") or {}).get("data") == {"ca.crt": CA},
                     timeout=20, what="the CA put back")
    client.delete("v1", "configmaps", "kube-root-ca.crt", namespace=ns)
    support.wait_for(lambda: _get(client, "configmaps", ns, "kube-root-ca.crt") is not None, timeout=20,
                     what="kube-root-ca.crt made again")


def test_nothing_is_made_in_a_terminating_namespace(controller_manager: helpers.ControllerManagerProcess,
                                                    client: api.Client, ns: str) -> None:
    support.wait_for(lambda: _get(client, "serviceaccounts", ns, "default"), timeout=20, what="default")
    client.delete("v1", "namespaces", ns)

    def gone() -> bool:
        try:
            client.get("v1", "namespaces", ns)
        except errors.NotFound:
            return True
        return False

    support.wait_for(gone, timeout=30, what="the namespace emptied and removed")
    # had the controllers made them again while it was emptied, the namespace could not have gone
    assert _get(client, "serviceaccounts", ns, "default") is None
    assert _get(client, "configmaps", ns, "kube-root-ca.crt") is None
