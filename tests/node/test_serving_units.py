"""The serving certificate's pieces without processes: the port's context swapping certificates per
handshake (real TLS over loopback), the stored file's reuse rules, csrapproving's SAN check, and a
Rotator driven to its deadline. The whole thing runs in test_join.py."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import socket
import ssl
import threading
from pathlib import Path

import pytest

from reconcile.controllers import csrapproving
from reconcile.node import bootstrap, rotation, serving, tls
from reconcile.pki import certs, files
from reconcile.pki import csr as csr_mod

CA = certs.new_ca("serving-units-ca")
_NUMBERS = itertools.count()


def _pair(tmp: Path, name: str, *, ip: str = "127.0.0.1", cn: str | None = None,
          lifetime: datetime.timedelta = datetime.timedelta(hours=1)) -> tuple[Path, bytes]:
    key = certs.new_key()
    request = certs.new_csr(key, common_name=cn or f"system:node:{name}", organizations=("system:nodes",))
    pem = certs.sign_csr(CA, request, client=False, server=True, lifetime=lifetime, dns_names=(name,),
                         ip_addresses=(ip,))
    path = tmp / f"{name}-{next(_NUMBERS)}.pem"
    files.write(path, pem + key, mode=files.KEY_MODE)
    return path, pem


class _Server:
    """A loopback TLS server answering each connection with one byte, on a ServingContext."""

    def __init__(self, context: tls.ServingContext) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.context = context
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.context.wrap_socket(conn, server_side=True) as tls_conn:
                    tls_conn.sendall(b"x")
            except (ssl.SSLError, OSError):
                conn.close()

    def served(self, ca_file: Path) -> certs.CertInfo:
        client = ssl.create_default_context(cafile=str(ca_file))
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw, \
                client.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            der = conn.getpeercert(binary_form=True)
            assert conn.recv(1) == b"x"
        assert der is not None
        return certs.info(certs.der_to_pem(der))

    def close(self) -> None:
        self.sock.close()


def test_the_context_refuses_until_installed_then_serves_the_latest(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(CA.cert)
    context = tls.ServingContext(client_ca_file=None)
    server = _Server(context)
    try:
        with pytest.raises(ssl.SSLError):
            server.served(ca_file)
        first, _ = _pair(tmp_path, "n1")
        context.install(tls.ServingFiles(first, first))
        assert context.ready and server.served(ca_file).identity.user == "system:node:n1"
        second, _ = _pair(tmp_path, "n1", cn="system:node:n1-second")
        context.install(tls.ServingFiles(second, second))
        assert server.served(ca_file).identity.user == "system:node:n1-second"  # no restart, next handshake
        broken = tmp_path / "broken.pem"
        broken.write_bytes(b"not a certificate")
        with pytest.raises(ssl.SSLError):
            context.install(tls.ServingFiles(broken, broken))
        assert server.served(ca_file).identity.user == "system:node:n1-second"  # the old one stays
    finally:
        server.close()


def test_a_stored_serving_certificate_is_reused_only_while_it_fits(tmp_path: Path) -> None:
    credentials = bootstrap.Credentials(tmp_path)
    files.write(credentials.ca, CA.cert, mode=files.CERT_MODE)
    path, pem = _pair(tmp_path, "n1")
    files.write(credentials.serving, path.read_bytes(), mode=files.KEY_MODE)
    assert serving.usable(credentials, "n1", "127.0.0.1") == pem
    assert serving.usable(credentials, "n1", "10.0.0.9") is None  # the node moved
    assert serving.usable(credentials, "n2", "127.0.0.1") is None  # another node's
    other, _ = _pair(tmp_path, "n1")
    files.write(credentials.serving, pem + other.read_bytes().split(b"-----END CERTIFICATE-----\n", 1)[1],
                mode=files.KEY_MODE)
    assert serving.usable(credentials, "n1", "127.0.0.1") is None  # a key that is not the certificate's
    foreign_ca = certs.new_ca("other")
    key = certs.new_key()
    forged = certs.sign_csr(foreign_ca, certs.new_csr(key, common_name="system:node:n1",
                                                      organizations=("system:nodes",)),
                            client=False, server=True, dns_names=("n1",), ip_addresses=("127.0.0.1",))
    files.write(credentials.serving, forged + key, mode=files.KEY_MODE)
    assert serving.usable(credentials, "n1", "127.0.0.1") is None  # not of the cluster CA


def _info(dns: tuple[str, ...], ips: tuple[str, ...]) -> certs.CsrInfo:
    return certs.csr_info(certs.new_csr_with_sans(certs.new_key(), common_name="system:node:n1",
                                                  organizations=("system:nodes",), dns_names=dns, ip_addresses=ips))


NODE = {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"},
                                 {"type": "ExternalIP", "address": "2001:db8::1"}]}}


@pytest.mark.parametrize(("dns", "ips", "problem"), [
    (("n1",), ("10.0.0.1",), None),
    ((), ("2001:db8:0::1",), None),  # the same address however it is written
    (("n1", "kubernetes.default"), ("10.0.0.1",), "DNS name kubernetes.default"),
    (("10.0.0.1",), (), "DNS name 10.0.0.1"),  # an IP address of the node is not a DNS name of it
    (("n1",), ("10.0.0.2",), "IP address 10.0.0.2"),
])
def test_the_sans_must_be_the_nodes_own_addresses(dns: tuple[str, ...], ips: tuple[str, ...],
                                                  problem: str | None) -> None:
    found = csrapproving.san_problems(_info(dns, ips), NODE)
    assert (not found) if problem is None else any(problem in p for p in found), found
    assert csrapproving.san_problems(_info(dns, ips), None) == ["no Node n1"]


def _serving_csr(username: str, groups: list[str], usages: tuple[str, ...] = ("digital signature", "server auth"),
                 cn: str = "system:node:n1") -> dict:
    request = certs.new_csr_with_sans(certs.new_key(), common_name=cn, organizations=("system:nodes",),
                                      dns_names=("n1",))
    body = csr_mod.new_request("x", request, signer=csr_mod.KUBELET_SERVING, usages=usages)
    body["spec"].update(username=username, groups=groups)
    return body


def test_only_a_nodes_own_serving_request_is_considered() -> None:
    assert csrapproving.self_serving(_serving_csr("system:node:n1", ["system:nodes", "system:authenticated"]))
    assert not csrapproving.self_serving(_serving_csr("system:node:n2", ["system:nodes"]))  # another node
    assert not csrapproving.self_serving(_serving_csr("system:node:n1", ["system:authenticated"]))
    assert not csrapproving.self_serving(_serving_csr("system:bootstrap:abcdef", ["system:bootstrappers"]))
    assert not csrapproving.self_serving(_serving_csr("system:node:n1", ["system:nodes"],
                                                      usages=("digital signature", "client auth")))
    client_signer = _serving_csr("system:node:n1", ["system:nodes"])
    client_signer["spec"]["signerName"] = csr_mod.KUBELET_CLIENT
    assert not csrapproving.self_serving(client_signer)


class _Clock:
    """Wall time from the real clock; sleeps recorded and skipped (the deadline is what is tested)."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.slept: list[float] = []
        self.stop = stop  # once set, a sleep never ends (the test has seen what it waits for)

    def wall(self) -> datetime.datetime:
        return certs.now()

    async def sleep(self, seconds: float) -> None:
        if self.stop.is_set():
            await asyncio.Event().wait()
        self.slept.append(seconds)
        await asyncio.sleep(0)


async def test_a_rotator_asks_at_once_without_a_certificate_and_then_before_the_end(tmp_path: Path) -> None:
    done = asyncio.Event()
    clock = _Clock(done)
    held: list[bytes] = []
    failures: list[int] = []

    async def renew() -> bytes:
        if len(held) == 1 and not failures:
            failures.append(1)
            raise RuntimeError("the API server is away")  # retried after a backoff, the old one kept
        _, pem = _pair(tmp_path, "n1", lifetime=datetime.timedelta(hours=10))
        held.append(pem)
        if len(held) == 2:
            done.set()
        return pem

    rotator = rotation.Rotator(what="serving", node="n1", current=lambda: held[-1] if held else None,
                               renew=renew, clock=clock)  # type: ignore[arg-type]
    task = asyncio.create_task(rotator.run())
    try:
        await asyncio.wait_for(done.wait(), timeout=10)
    finally:
        task.cancel()
    assert rotator.rotations == 2 and failures == [1]
    # nothing held: asked at once; then 70-90% of 10 h, the failure's 1 s backoff, 70-90% again.
    # The share is of the validity from NotBefore, which is backdated (CLOCK_SKEW): with L = 10 h
    # and b the backdate, each wait is share * (L + b) - b, from 0.7 L - 0.3 b to 0.9 L - 0.1 b (the
    # old lower bound, 0.7 L - 60 s, failed for shares under 0.709: a CI run drew one).
    backdate = certs.CLOCK_SKEW.total_seconds()
    assert len(clock.slept) == 3 and clock.slept[1] == 1.0
    for wait in (clock.slept[0], clock.slept[2]):
        assert 0.7 * 36000 - 0.3 * backdate - 60 <= wait <= 0.9 * 36000 - 0.1 * backdate
