"""`reconcile node join --token --ca-hash`: kubeadm's discovery and the kubelet's TLS bootstrap
against a real TLS API server (RBAC, bootstrap tokens) and controller-manager (csrapproving,
csrsigning with a short --cluster-signing-duration), then logs and exec through the API server to
the joined agent's HTTPS port, whose serving certificate came through a kubernetes.io/kubelet-serving
CSR and which the API server verifies by the cluster CA (--kubelet-certificate-authority), and the
rotation of both certificates without a restart (the 24 s --cluster-signing-duration is test-only:
CSRs' own spec.expirationSeconds may not go below 600).

Attacks: a wrong token secret, an expired token, a CA hash of another cluster: each refused before
any agent runs, with nothing written that would let the node in."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconcile.cli import clusterinfo
from reconcile.client import api as client_api
from reconcile.core import bootstraptoken
from reconcile.pki import certs
from reconcile.pki import cluster as pki_cluster
from tests import docker_support, support
from tests.controllers import helpers as controller_helpers
from tests.node import helpers

NODE = f"joined-{uuid.uuid4().hex[:6]}"
SIGNING_DURATION = "24s"  # rotation (at 70-90%) happens while the tests run


@pytest.fixture(scope="module")
def server(etcd_endpoint: str) -> Iterator[support.ApiServerProcess]:
    pki = pki_cluster.ClusterPki(Path(os.environ.get("TMPDIR", "/tmp")) / f"join-pki-{uuid.uuid4().hex[:6]}" / "pki")
    pki.ensure()
    process = support.ApiServerProcess(
        etcd_endpoint, prefix=f"/test-{uuid.uuid4().hex[:12]}/registry", tls=True, pki=pki,
        extra_args=("--enable-bootstrap-token-auth", "--authorization-mode", "Node,RBAC",
                    "--kubelet-client-certificate", str(pki.apiserver_kubelet_client.cert),
                    "--kubelet-client-key", str(pki.apiserver_kubelet_client.key),
                    # the joined agent's serving certificate comes from a kubelet-serving CSR: verified by the CA
                    "--kubelet-certificate-authority", str(pki.ca.cert)))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def admin(server: support.ApiServerProcess) -> Iterator[client_api.Client]:
    client = client_api.Client(server.connection.client_config())
    assert server.pki is not None
    clusterinfo.publish(client, server.url, server.pki.ca.cert.read_bytes())
    yield client
    client.close()


@pytest.fixture(scope="module")
def controllers(server: support.ApiServerProcess, admin: client_api.Client, tmp_path_factory: pytest.TempPathFactory,
                ) -> Iterator[controller_helpers.ControllerManagerProcess]:
    pki = server.pki
    assert pki is not None
    kubeconfig = server.connection.write_kubeconfig(tmp_path_factory.mktemp("cm") / "cm.kubeconfig",
                                                    as_user=pki.controller_manager)
    process = controller_helpers.ControllerManagerProcess(
        server.url, connect=("--kubeconfig", str(kubeconfig)),
        extra_args=("--cluster-signing-cert-file", str(pki.ca.cert), "--cluster-signing-key-file", str(pki.ca.key),
                    "--cluster-signing-duration", SIGNING_DURATION))
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _token(admin: client_api.Client, *, ttl: datetime.timedelta = datetime.timedelta(hours=1),
           now: datetime.datetime | None = None) -> str:
    made = bootstraptoken.generate()
    admin.create("v1", "secrets", bootstraptoken.new_secret(made, ttl=ttl, now=now), namespace=bootstraptoken.NAMESPACE)
    return str(made)


@pytest.fixture(scope="module")
def joined(docker_node: docker_support.DockerDaemon, server: support.ApiServerProcess, admin: client_api.Client,
           controllers: controller_helpers.ControllerManagerProcess, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[docker_support.NodeAgentProcess]:
    assert server.pki is not None
    token = _token(admin)
    process = docker_support.NodeAgentProcess(
        docker_node, server.url, name=NODE, state_dir=Path(tmp_path_factory.mktemp("joined")),
        connect=("--server", server.url, "--token", token, "--ca-hash", server.pki.ca_hash(),
                 "--bootstrap-timeout", "60"),
        extra_args=("--lease-interval", "1"))
    process.start()
    try:
        yield process
    finally:
        process.stop()
        process.remove_containers()


def _join(server: support.ApiServerProcess, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RECONCILE_SERVER", "KUBECONFIG")}
    return subprocess.run([sys.executable, "-m", "reconcile", "node", "join", "--name", f"bad-{uuid.uuid4().hex[:4]}",
                           "--docker-host", "unix:///nonexistent.sock", "--state-dir", str(state),
                           "--server", server.url, "--bootstrap-timeout", "10", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_node_joins_with_its_own_certificate(joined, admin, server) -> None:
    node = admin.get("v1", "nodes", NODE)
    assert node["metadata"]["name"] == NODE
    state = joined.state_dir
    kubeconfig, client = state / "kubeconfig", state / "pki" / "kubelet-client-current.pem"
    assert _mode(kubeconfig) == 0o600 and _mode(client) == 0o600
    assert (state / "pki" / "ca.crt").read_bytes() == server.pki.ca.cert.read_bytes()
    pem = certs.split_bundle(client.read_bytes())[0]
    assert certs.info(pem).identity == certs.Identity(f"system:node:{NODE}", ("system:nodes",))
    assert certs.signed_by(pem, server.pki.ca.cert.read_bytes())
    csrs = admin.list("certificates.k8s.io/v1", "certificatesigningrequests")["items"]
    mine = [c for c in csrs if c["spec"]["username"].startswith("system:bootstrap:")]
    assert mine and all(c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet" for c in mine)


def test_logs_and_exec_reach_the_joined_agent(joined, admin) -> None:
    ns = f"join-{uuid.uuid4().hex[:6]}"
    admin.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    admin.create("v1", "pods", helpers.pod("web", NODE, helpers.container(
        command=["sh", "-c", "echo joined-hello; while :; do sleep 3600 & wait; done"])), namespace=ns)
    helpers.wait_pod(admin, ns, "web", helpers.running_ready, what="web Ready", timeout=60)
    logs = support.wait_for(lambda: admin.request("GET", f"/api/v1/namespaces/{ns}/pods/web/log").text or None,
                            what="the pod's log")
    assert logs == "joined-hello\n"
    answer = admin.request("POST", f"/api/v1/namespaces/{ns}/pods/web/exec", json={"command": ["echo", "hi"]}).json()
    assert answer == {"exitCode": 0, "output": "hi\n"}


def test_the_certificate_rotates_without_a_restart(joined, admin) -> None:
    client = joined.state_dir / "pki" / "kubelet-client-current.pem"
    first = certs.info(certs.split_bundle(client.read_bytes())[0])
    pid = joined.process.pid if joined.process else None

    def rotated() -> certs.CertInfo | None:
        now = certs.info(certs.split_bundle(client.read_bytes())[0])
        return now if now.not_after > first.not_after else None

    second = support.wait_for(rotated, timeout=60, interval=0.5, what="a rotated client certificate")
    assert second.identity == first.identity
    support.wait_for(lambda: "rotated the client certificate" in joined.log_text(), timeout=30,
                     what="the agent reconnected with it")
    assert joined.process is not None and joined.process.poll() is None and joined.process.pid == pid
    # still in: the lease keeps being renewed after the old certificate has expired
    support.wait_for(lambda: certs.now() > first.not_after, timeout=60, interval=0.5, what="the first certificate ends")
    before = admin.get("coordination.k8s.io/v1", "leases", NODE, namespace="kube-node-lease")["spec"]["renewTime"]
    support.wait_for(lambda: admin.get("coordination.k8s.io/v1", "leases", NODE,
                                       namespace="kube-node-lease")["spec"]["renewTime"] != before,
                     timeout=30, what="a lease renewal with the new certificate")
    renewals = [c for c in admin.list("certificates.k8s.io/v1", "certificatesigningrequests")["items"]
                if c["spec"]["username"] == f"system:node:{NODE}"
                and c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"]
    assert renewals and all("self kubelet client" in next(
        x["message"] for x in c["status"]["conditions"] if x["type"] == "Approved") for c in renewals
        if c.get("status", {}).get("conditions"))


def _served(server: support.ApiServerProcess, port: int) -> certs.CertInfo:
    """The certificate a new handshake with the agent's port gets, verified as the API server does
    (`--kubelet-certificate-authority`: the cluster CA and the node's address)."""
    assert server.pki is not None
    context = ssl.create_default_context(cafile=str(server.pki.ca.cert))
    context.load_cert_chain(str(server.pki.apiserver_kubelet_client.cert), str(server.pki.apiserver_kubelet_client.key))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return certs.info(certs.der_to_pem(der))


def _agent_port(admin: client_api.Client) -> int:
    return int(admin.get("v1", "nodes", NODE)["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"])


def test_the_serving_certificate_comes_from_a_kubelet_serving_csr(joined, admin, server) -> None:
    served = _served(server, _agent_port(admin))
    assert served.identity == certs.Identity(f"system:node:{NODE}", ("system:nodes",))
    assert served.server_auth and NODE in served.dns_names and "127.0.0.1" in served.ip_addresses
    stored = joined.state_dir / "pki" / "kubelet-server-current.pem"
    assert _mode(stored) == 0o600
    kept = certs.split_bundle(stored.read_bytes())[0]  # the next handshake's (rotation may have come between)
    assert certs.info(kept).identity == served.identity and certs.signed_by(kept, server.pki.ca.cert.read_bytes())
    serving = [c for c in admin.list("certificates.k8s.io/v1", "certificatesigningrequests")["items"]
               if c["spec"]["signerName"] == "kubernetes.io/kubelet-serving"]
    assert serving and all(c["spec"]["username"] == f"system:node:{NODE}" for c in serving)
    assert all(set(c["spec"]["usages"]) == {"digital signature", "server auth"} for c in serving)
    approved = [x for c in serving for x in c.get("status", {}).get("conditions", []) if x["type"] == "Approved"]
    assert approved and all("serving certificate" in x["message"] for x in approved)


def test_the_serving_certificate_rotates_without_a_restart(joined, admin, server) -> None:
    port = _agent_port(admin)
    first = _served(server, port)
    pid = joined.process.pid if joined.process else None
    second = support.wait_for(lambda: (now := _served(server, port)).not_after > first.not_after and now,
                              timeout=60, interval=0.5, what="a new handshake serving a rotated certificate")
    assert second.identity == first.identity and second.ip_addresses == first.ip_addresses
    assert "rotated the serving certificate" in joined.log_text()
    assert joined.process is not None and joined.process.poll() is None and joined.process.pid == pid
    assert _agent_port(admin) == port
    # the API server still reaches the agent, verifying it by the CA, once the first one has ended
    support.wait_for(lambda: certs.now() > first.not_after, timeout=60, interval=0.5, what="the first one ends")
    ns = f"rot-{uuid.uuid4().hex[:6]}"
    admin.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    admin.create("v1", "pods", helpers.pod("sh", NODE, helpers.container(
        command=["sh", "-c", "while :; do sleep 3600 & wait; done"])), namespace=ns)
    helpers.wait_pod(admin, ns, "sh", helpers.running_ready, what="sh Ready", timeout=60)
    answer = admin.request("POST", f"/api/v1/namespaces/{ns}/pods/sh/exec", json={"command": ["echo", "ok"]}).json()
    assert answer == {"exitCode": 0, "output": "ok\n"}


def test_a_wrong_token_is_refused(server, admin, controllers, tmp_path: Path) -> None:
    real = bootstraptoken.parse(_token(admin))
    assert real is not None
    result = _join(server, tmp_path, "--token", f"{real.id}.{'0' * 16}", "--ca-hash", server.pki.ca_hash())
    assert result.returncode != 0
    assert "bootstrap token was refused" in result.stderr, result.stderr
    assert not (tmp_path / "kubeconfig").exists() and not (tmp_path / "pki" / "kubelet-client-current.pem").exists()


def test_an_expired_token_is_refused(server, admin, controllers, tmp_path: Path) -> None:
    expired = _token(admin, now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2))
    result = _join(server, tmp_path, "--token", expired, "--ca-hash", server.pki.ca_hash())
    assert result.returncode != 0 and "bootstrap token was refused" in result.stderr, result.stderr
    assert not (tmp_path / "kubeconfig").exists()


def test_a_wrong_ca_hash_is_refused_before_the_token_is_sent(server, admin, tmp_path: Path) -> None:
    other = pki_cluster.ClusterPki(tmp_path / "other-pki")
    other.ensure()
    token = _token(admin)
    result = _join(server, tmp_path / "state", "--token", token, "--ca-hash", other.ca_hash())
    assert result.returncode != 0
    assert "does not match --ca-hash" in result.stderr, result.stderr
    assert not (tmp_path / "state" / "pki" / "ca.crt").exists()
    # nothing was asked with the token: no CSR of its user exists
    token_user = f"system:bootstrap:{token.split('.')[0]}"
    assert not [c for c in admin.list("certificates.k8s.io/v1", "certificatesigningrequests")["items"]
                if c["spec"]["username"] == token_user]
    malformed = _join(server, tmp_path / "state", "--token", token, "--ca-hash", "md5:abc")
    assert malformed.returncode != 0 and "sha256:<64 hex digits>" in malformed.stderr
