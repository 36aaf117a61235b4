"""What a test of an operator running inside a pod stands on: an API server that mints ServiceAccount
tokens and whose certificate names the `kubernetes` Service's address, and the node's service proxy
that carries that address to it (tests/node/test_operator_in_pod.py, test_kopf_in_pod.py)."""

from __future__ import annotations

import contextlib
import ipaddress
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from reconcile.pki import cluster as pki_cluster
from tests import docker_support, support


def kubernetes_ip(service_cidr: str) -> str:
    """The `kubernetes` Service's cluster IP: the range's first address."""
    return str(next(ipaddress.ip_network(service_cidr).hosts()))


@contextlib.contextmanager
def api_server(etcd_endpoint: str, service_cidr: str, *, pki_prefix: str) -> Iterator[support.ApiServerProcess]:
    """HTTPS, RBAC, ServiceAccount tokens; the serving certificate names the `kubernetes` Service's IP."""
    pki = pki_cluster.ClusterPki(Path(tempfile.mkdtemp(prefix=pki_prefix)) / "pki")
    pki.ensure(hosts=[kubernetes_ip(service_cidr)])
    server = support.ApiServerProcess(
        etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry", tls=True, pki=pki,
        extra_args=("--service-account-key-file", str(pki.sa_pub),
                    "--service-account-signing-key-file", str(pki.sa_key),
                    "--service-cluster-ip-range", service_cidr))
    server.start(timeout=60)  # beside a starting dockerd and node agent on a busy machine
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def service_proxy(api_server_url: str, node: str, service_cidr: str, log_dir: Path) -> Iterator[docker_support.ProxyProcess]:
    """The node's service proxy for that range; its rules are removed afterwards."""
    process = docker_support.ProxyProcess(api_server_url, node=node, log_path=log_dir / "proxy.log",
                                          extra_args=("--service-cluster-ip-range", service_cidr))
    try:
        process.start()
        yield process
    finally:
        process.stop()
        process.cleanup()
