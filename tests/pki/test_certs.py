"""reconcile.pki.certs: what it issues is what TLS peers and the x509 authenticator rely on."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ssl
import subprocess
from pathlib import Path

import pytest

from reconcile.pki import certs


@pytest.fixture(scope="module")
def ca() -> certs.Issued:
    return certs.new_ca("test-ca")


def test_ca_is_a_ten_year_ca_that_signs_itself(ca: certs.Issued) -> None:
    found = certs.info(ca.cert)
    assert found.is_ca and found.identity == certs.Identity("test-ca")
    assert certs.signed_by(ca.cert, ca.cert) and certs.key_matches(ca.cert, ca.key)
    lifetime = found.not_after - found.not_before
    assert datetime.timedelta(days=3649) < lifetime < datetime.timedelta(days=3651)


def test_client_certificate_carries_user_and_groups(ca: certs.Issued) -> None:
    issued = certs.issue(ca, common_name="alice", organizations=("dev", "ops"), client=True)
    found = certs.info(issued.cert)
    assert found.identity == certs.Identity("alice", ("dev", "ops"))
    assert (found.client_auth, found.server_auth, found.is_ca) == (True, False, False)
    assert certs.signed_by(issued.cert, ca.cert) and certs.key_matches(issued.cert, issued.key)


def test_serving_certificate_has_its_sans_and_openssl_verifies_it(ca: certs.Issued, tmp_path: Path) -> None:
    issued = certs.issue(ca, common_name="kube-apiserver", server=True, dns_names=("localhost", "host.example"),
                         ip_addresses=("127.0.0.1", "::1", "10.0.0.7"))
    found = certs.info(issued.cert)
    assert found.dns_names == ("localhost", "host.example")
    assert found.ip_addresses == ("127.0.0.1", "::1", "10.0.0.7")
    assert found.server_auth and not found.client_auth
    (tmp_path / "ca.crt").write_bytes(ca.cert)
    (tmp_path / "leaf.crt").write_bytes(issued.cert)
    checked = subprocess.run(["openssl", "verify", "-CAfile", "ca.crt", "-purpose", "sslserver",
                              "-verify_ip", "10.0.0.7", "leaf.crt"], cwd=tmp_path, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # and Python's TLS stack loads the pair (what uvicorn does with it)
    (tmp_path / "leaf.key").write_bytes(issued.key)
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tmp_path / "leaf.crt", tmp_path / "leaf.key")


def test_keys_are_private_pkcs8_and_differ() -> None:
    first, second = certs.new_key(), certs.new_key()
    assert first.startswith(b"-----BEGIN PRIVATE KEY-----") and first != second


def test_a_certificate_of_another_ca_is_not_signed_by_ours(ca: certs.Issued) -> None:
    other = certs.new_ca("test-ca")  # the same name: the signature decides, not the issuer name
    foreign = certs.issue(other, common_name="mallory", client=True)
    assert not certs.signed_by(foreign.cert, ca.cert)
    assert not certs.key_matches(foreign.cert, ca.key)


def test_spki_hash_is_sha256_of_the_public_key_der(ca: certs.Issued, tmp_path: Path) -> None:
    """What kubeadm's --discovery-token-ca-cert-hash is: openssl computes the same digest."""
    (tmp_path / "ca.crt").write_bytes(ca.cert)
    spki = subprocess.run(["openssl", "x509", "-in", "ca.crt", "-pubkey", "-noout"], cwd=tmp_path,
                          capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=spki, capture_output=True,
                         check=True).stdout
    assert certs.spki_sha256(ca.cert) == "sha256:" + hashlib.sha256(der).hexdigest()
    assert certs.spki_sha256(ca.cert) != certs.spki_sha256(certs.new_ca("x").cert)


def test_csr_round_trip_keeps_key_and_subject_and_drops_asked_for_extensions(ca: certs.Issued) -> None:
    key = certs.new_key()
    csr = certs.new_csr(key, common_name="system:node:n1", organizations=("system:nodes",))
    assert certs.csr_identity(csr) == certs.Identity("system:node:n1", ("system:nodes",))
    signed = certs.sign_csr(ca, csr)
    found = certs.info(signed)
    assert found.identity == certs.Identity("system:node:n1", ("system:nodes",))
    assert found.client_auth and not found.server_auth and not found.is_ca
    assert certs.key_matches(signed, key) and certs.signed_by(signed, ca.cert)


def _pem_body(pem: bytes) -> bytes:
    return base64.b64decode(b"".join(line for line in pem.splitlines() if not line.startswith(b"-----")))


def test_a_tampered_csr_is_refused(ca: certs.Issued) -> None:
    """A CSR whose subject was changed after signing (another name, same signature)."""
    csr = certs.new_csr(certs.new_key(), common_name="system:node:victim")
    der = _pem_body(csr).replace(b"victim", b"master")
    tampered = b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(certs.CertificateError, match="signature"):
        certs.csr_identity(tampered)
    with pytest.raises(certs.CertificateError, match="signature"):
        certs.sign_csr(ca, tampered)
    with pytest.raises(certs.CertificateError):
        certs.sign_csr(ca, b"not a csr")


def test_client_verifier_accepts_our_clients_only(ca: certs.Issued) -> None:
    verifier = certs.ClientVerifier(ca.cert)
    client = certs.issue(ca, common_name="bob", organizations=("team",), client=True)
    identity, until = verifier.verify(certs.pem_to_der(client.cert))
    assert identity == certs.Identity("bob", ("team",)) and until == certs.info(client.cert).not_after
    serving_only = certs.issue(ca, common_name="srv", server=True, dns_names=("localhost",))
    foreign = certs.issue(certs.new_ca("test-ca"), common_name="bob", client=True)
    for bad in (serving_only, foreign):
        with pytest.raises(certs.CertificateError):
            verifier.verify(certs.pem_to_der(bad.cert))


def test_client_verifier_refuses_an_expired_certificate(ca: certs.Issued) -> None:
    client = certs.issue(ca, common_name="carol", client=True, days=1)
    verifier = certs.ClientVerifier(ca.cert)
    later = certs.now() + datetime.timedelta(days=2)
    with pytest.raises(certs.CertificateError):
        verifier.verify(certs.pem_to_der(client.cert), at=later)


def test_client_verifier_trusts_every_ca_of_a_bundle(ca: certs.Issued) -> None:
    other = certs.new_ca("other-ca")
    verifier = certs.ClientVerifier(ca.cert + other.cert)
    for signer in (ca, other):
        issued = certs.issue(signer, common_name="dave", client=True)
        assert verifier.verify(certs.pem_to_der(issued.cert))[0].user == "dave"
    assert len(certs.split_bundle(ca.cert + other.cert)) == 2


def test_garbage_is_a_certificate_error() -> None:
    for call in (lambda: certs.info(b"junk"), lambda: certs.ClientVerifier(b"junk"),
                 lambda: certs.ClientVerifier(certs.new_ca("c").cert).verify(b"junk")):
        with pytest.raises(certs.CertificateError):
            call()


def test_verification_keys_read_public_private_keys_and_certificates() -> None:
    """A --service-account-key-file may hold PEM public keys, private keys and certificates, as upstream's."""
    rsa_key = certs.new_signing_key()
    ca = certs.new_ca("x")
    bundle = certs.signing_public_key(rsa_key) + rsa_key + ca.cert
    found = certs.verification_keys(bundle)
    assert found[0] == found[1] == certs.signing_public_key(rsa_key)
    assert certs.jws_algorithm(found[2]) == "ES256" and certs.jws_algorithm(found[0]) == "RS256"
    assert certs.key_id(found[0]) != certs.key_id(found[2])
    assert len(certs.key_id(found[0])) == 43  # unpadded base64url of SHA-256
    with pytest.raises(certs.CertificateError):
        certs.verification_keys(b"nothing here")
    with pytest.raises(certs.CertificateError):
        certs.verification_keys(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_csr_info_refuses_garbage_without_raising_anything_else() -> None:
    """A corrupt CSR (key, signature, base64 body) is a CertificateError, never another exception:
    the API server turned one into a 500 before (found by test_a_forged_request_signature_is_refused)."""
    good = certs.new_csr(certs.new_key(), common_name="system:node:n1", organizations=("system:nodes",))
    lines = good.decode().splitlines()
    for index in range(1, len(lines) - 1):
        for replacement in ("AAAA", "////", "BBBB"):
            broken = list(lines)
            broken[index] = broken[index][:-4] + replacement
            candidate = ("\n".join(broken) + "\n").encode()
            if candidate == good:
                continue
            try:
                certs.csr_info(candidate)
            except certs.CertificateError:
                pass
