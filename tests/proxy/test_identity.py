"""The proxy's identity: system:kube-proxy holds upstream's system:node-proxier and nothing more."""

from __future__ import annotations

import pytest

from reconcile.client import api as client_api
from reconcile.core import errors
from tests import support


@pytest.fixture
def proxy_client(api_server: str):
    connection = support.connection(api_server)
    if not connection.tls:
        pytest.skip("needs the secured server")
    c = client_api.Client(connection.client_config(as_user=connection.user("system:kube-proxy")))
    try:
        yield c
    finally:
        c.close()


def test_the_proxy_reads_what_it_programs_from(proxy_client) -> None:
    for api_version, plural in (("v1", "services"), ("discovery.k8s.io/v1", "endpointslices"), ("v1", "nodes"),
                                ("v1", "endpoints")):
        proxy_client.list_all(api_version, plural)


def test_the_proxy_can_neither_read_secrets_nor_write_services_nor_act_as_a_node(proxy_client) -> None:
    with pytest.raises(errors.ApiError) as denied:
        proxy_client.list_all("v1", "secrets")
    assert denied.value.code == 403
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "evil"},
           "spec": {"ports": [{"port": 80}], "clusterIP": "10.230.9.9"}}
    with pytest.raises(errors.ApiError) as denied:
        proxy_client.create("v1", "services", svc, namespace="default")
    assert denied.value.code == 403
    with pytest.raises(errors.ApiError) as denied:
        proxy_client.patch("v1", "nodes", "any", {"metadata": {"labels": {"x": "y"}}})
    assert denied.value.code == 403
