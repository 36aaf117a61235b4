"""EtcdStore over TLS with client certificates, against a real etcd started for this test."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconcile.core import errors
from reconcile.etcdserver import embedded
from reconcile.pki import cluster as pki_cluster
from reconcile.store import etcd
from tests import support
from tests.store import helpers


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_certs(directory: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=directory)
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", "san.ext", "-out", f"{name}.crt", cwd=directory)


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    directory = tmp_path_factory.mktemp("etcd-tls")
    _make_certs(directory)
    client_port, peer_port = support.free_port(), support.free_port()
    url = f"https://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    with open(directory / "etcd.log", "wb") as log:
        process = subprocess.Popen(
            [str(embedded.etcd_binary()), "--data-dir", str(directory / "data"), "--name", "tls",
             "--listen-client-urls", url, "--advertise-client-urls", url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"tls={peer}",
             "--cert-file", str(directory / "server.crt"), "--key-file", str(directory / "server.key"),
             "--trusted-ca-file", str(directory / "ca.crt"), "--client-cert-auth"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        yield url, directory
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_tls_with_client_certificate(tls_etcd: tuple[str, Path]) -> None:
    url, certs = tls_etcd
    tls = etcd.TLSConfig(ca_file=str(certs / "ca.crt"), cert_file=str(certs / "client.crt"),
                         key_file=str(certs / "client.key"))
    async with etcd.EtcdStore([url], prefix="/tls", tls=tls) as store:
        await helpers.eventually(store.current_revision, timeout=30, what="etcd over TLS")
        revision = await store.create("k", b"secret")
        kv, _ = await store.get("k")
        assert kv is not None and kv.value == b"secret" and kv.mod_revision == revision
        batches = store.watch("", start_revision=revision)
        events = await helpers.collect_events(batches, 1)
        await batches.aclose()  # type: ignore[attr-defined]
        assert events[0].mod_revision == revision


async def test_tls_without_client_certificate_is_refused(tls_etcd: tuple[str, Path]) -> None:
    url, certs = tls_etcd
    async with etcd.EtcdStore([url], prefix="/tls", tls=etcd.TLSConfig(ca_file=str(certs / "ca.crt")),
                              request_timeout=5) as store:
        with pytest.raises(errors.StoreUnavailable):
            await store.get("k")


# --- the embedded member with the cluster PKI (what `reconcile up` runs) ---------------------------


@pytest.fixture(scope="module")
def pki_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[embedded.EmbeddedEtcd, pki_cluster.ClusterPki]]:
    root = tmp_path_factory.mktemp("pki-etcd")
    pki = pki_cluster.ClusterPki(root / "pki")
    pki.ensure()
    member = embedded.EmbeddedEtcd(root / "etcd", tls=embedded.MemberTls(
        trusted_ca=pki.etcd_ca.cert, cert=pki.etcd_server.cert, key=pki.etcd_server.key,
        peer_trusted_ca=pki.etcd_ca.cert, peer_cert=pki.etcd_peer.cert, peer_key=pki.etcd_peer.key)).start()
    try:
        yield member, pki
    finally:
        member.stop()


def _curl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "5", *args, "-X", "POST", "-d", '{"key":"AA=="}',
                           url + "/v3/kv/range"], capture_output=True, text=True, timeout=30)


def _handshake_refused(result: subprocess.CompletedProcess[str]) -> bool:
    """curl's exit 35: the TLS handshake failed (etcd sent an alert), so not one byte of data came."""
    return result.returncode == 35 and "alert" in result.stderr and not result.stdout


def test_embedded_member_serves_tls_on_loopback_only(pki_etcd: tuple[embedded.EmbeddedEtcd, pki_cluster.ClusterPki]) -> None:
    member, _ = pki_etcd
    assert member.endpoint.startswith("https://127.0.0.1:")
    assert "--client-cert-auth" in member.command() and "--peer-client-cert-auth" in member.command()
    listening = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True).stdout
    mine = [line.split()[3] for line in listening.splitlines() if f"pid={member.pid}," in line]
    assert mine and all(address.startswith("127.0.0.1:") for address in mine), mine
    assert {int(a.rsplit(":", 1)[1]) for a in mine} == {member.client_port, member.peer_port, member.metrics_port}


def test_without_a_client_certificate_etcd_answers_nothing(
        pki_etcd: tuple[embedded.EmbeddedEtcd, pki_cluster.ClusterPki]) -> None:
    member, pki = pki_etcd
    plain = _curl(member.endpoint.replace("https:", "http:"))  # plain HTTP to the TLS port
    assert plain.returncode != 0 and "header" not in plain.stdout
    for args in (["--cacert", str(pki.etcd_ca.cert)], ["-k"]):
        refused = _curl(member.endpoint, *args)
        assert _handshake_refused(refused), refused.stdout + refused.stderr


def test_a_certificate_of_another_ca_is_refused(pki_etcd: tuple[embedded.EmbeddedEtcd, pki_cluster.ClusterPki]) -> None:
    """The cluster CA's admin certificate is no etcd credential: etcd trusts the etcd CA only."""
    member, pki = pki_etcd
    for pair in (pki.admin, pki.apiserver_kubelet_client):
        refused = _curl(member.endpoint, "--cacert", str(pki.etcd_ca.cert), "--cert", str(pair.cert),
                        "--key", str(pair.key))
        assert _handshake_refused(refused), refused.stdout + refused.stderr
    accepted = _curl(member.endpoint, "--cacert", str(pki.etcd_ca.cert), "--cert", str(pki.apiserver_etcd_client.cert),
                     "--key", str(pki.apiserver_etcd_client.key))
    assert accepted.returncode == 0 and '"header"' in accepted.stdout, accepted.stderr


def test_the_peer_port_wants_a_peer_certificate(pki_etcd: tuple[embedded.EmbeddedEtcd, pki_cluster.ClusterPki]) -> None:
    member, pki = pki_etcd
    peer = f"https://127.0.0.1:{member.peer_port}/members"
    for args in ([], ["--cert", str(pki.admin.cert), "--key", str(pki.admin.key)]):
        refused = subprocess.run(["curl", "-sS", "--http1.1", "--max-time", "5", "--cacert", str(pki.etcd_ca.cert),
                                  *args, peer], capture_output=True, text=True, timeout=30)
        assert _handshake_refused(refused), refused.stdout + refused.stderr
    accepted = subprocess.run(["curl", "-sS", "--http1.1", "--max-time", "5", "--cacert", str(pki.etcd_ca.cert), "--cert",
                               str(pki.etcd_peer.cert), "--key", str(pki.etcd_peer.key), peer],
                              capture_output=True, text=True, timeout=30)
    assert accepted.returncode == 0 and "peerURLs" in accepted.stdout, accepted.stderr


def test_health_is_read_without_any_etcd_credential(pki_etcd: tuple[embedded.EmbeddedEtcd, pki_cluster.ClusterPki]) -> None:
    member, _ = pki_etcd
    assert member.health_endpoint.startswith("http://127.0.0.1:") and embedded.healthy(member.health_endpoint)
    assert member.healthy()
    leaked = subprocess.run(["curl", "-sS", "--max-time", "5", "-X", "POST", "-d", '{"key":"AA=="}',
                             member.health_endpoint + "/v3/kv/range"], capture_output=True, text=True, timeout=30)
    assert '"header"' not in leaked.stdout  # the metrics listener serves health and metrics, no keys


async def test_the_api_servers_etcd_client_certificate_works(
        pki_etcd: tuple[embedded.EmbeddedEtcd, pki_cluster.ClusterPki]) -> None:
    member, pki = pki_etcd
    tls = etcd.TLSConfig(ca_file=str(pki.etcd_ca.cert), cert_file=str(pki.apiserver_etcd_client.cert),
                         key_file=str(pki.apiserver_etcd_client.key))
    async with etcd.EtcdStore([member.endpoint], prefix="/pki", tls=tls) as store:
        revision = await store.create("k", b"v")
        kv, _ = await store.get("k")
        assert kv is not None and kv.value == b"v" and kv.mod_revision == revision
    # every gateway request with client-certificate auth makes etcd 3.5 warn; the member logs errors only
    assert "ignoring common name" not in member.log_path.read_text()
    wrong = etcd.TLSConfig(ca_file=str(pki.etcd_ca.cert), cert_file=str(pki.admin.cert), key_file=str(pki.admin.key))
    async with etcd.EtcdStore([member.endpoint], prefix="/pki", tls=wrong, request_timeout=5) as store:
        with pytest.raises(errors.StoreUnavailable):
            await store.get("k")
