"""The address containers get in KUBERNETES_SERVICE_HOST/PORT: the `kubernetes` Service's cluster IP
and port, as upstream's kubelet, else the API server as the agent reaches it (pure code)."""

from __future__ import annotations

from typing import Any

from reconcile.node import apiservice, pods


def service(cluster_ip: Any = "10.96.0.1", ports: Any = None) -> dict[str, Any]:
    return {"metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": cluster_ip,
                     "ports": [{"name": "https", "port": 443, "targetPort": 6443}] if ports is None else ports}}


def test_the_cluster_ip_and_the_https_port() -> None:
    assert apiservice.service_address(service()) == ("10.96.0.1", "443")
    named = [{"name": "other", "port": 80}, {"name": "https", "port": 8443}]
    assert apiservice.service_address(service(ports=named)) == ("10.96.0.1", "8443")
    assert apiservice.service_address(service(ports=[{"port": 6443}])) == ("10.96.0.1", "6443")  # the first
    assert apiservice.service_address(service("fd00::1")) == ("fd00::1", "443")


def test_no_address_from_an_unusable_service() -> None:
    for bad in (None, {}, service(""), service("None"), service(None), service(ports=[]),
                service(ports=[{"name": "https", "port": "443"}]), {"spec": "x"}):
        assert apiservice.service_address(bad) is None, bad


def test_the_fallback_is_the_api_server_as_the_agent_reaches_it() -> None:
    assert pods.api_address("https://127.0.0.1:6443") == ("127.0.0.1", "6443")
    assert pods.api_address("https://api.example.com") == ("api.example.com", "443")
    env = pods.with_service_env([{"name": "KUBERNETES_SERVICE_PORT", "value": "1"}], "10.96.0.1", "443")
    assert env == [{"name": "KUBERNETES_SERVICE_HOST", "value": "10.96.0.1"},
                   {"name": "KUBERNETES_SERVICE_PORT", "value": "1"}]  # a container's own value wins
