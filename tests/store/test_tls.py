"""EtcdStore over TLS with client certificates, against a real etcd started for this test."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconcile.core import errors
from reconcile.etcdserver import embedded
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
