"""Keys, certificates and CSRs: the one module that speaks to the `cryptography` package.

Everything else in `reconcile` sees PEM bytes and the small value types below (`Issued`,
`CertInfo`, `Identity`), never a `cryptography` object, so the library's types and exceptions stay
here (its errors become `CertificateError`). What is issued follows kubeadm's choices, so Go
clients (kubectl, etcd) and Python's `ssl` accept it: ECDSA P-256 keys in PKCS#8, a CA with
`basicConstraints: CA` and `keyCertSign`, leaves with `digitalSignature`, the extended key usages
they are for (`serverAuth`, `clientAuth`), SANs for serving certificates, and subject/authority
key identifiers. A client certificate's subject carries the identity as Kubernetes reads it:
CN = user name, O = groups.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650  # the cluster CAs: ten years, as kubeadm's
LEAF_DAYS = 365  # serving and client certificates: one year, renewed by `reconcile up` before they end
CLOCK_SKEW = datetime.timedelta(minutes=5)  # backdated, so a peer whose clock is a little behind accepts it


class CertificateError(ValueError):
    """PEM that does not parse, a signature that does not verify, a certificate that is not valid."""


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert: bytes
    key: bytes


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a client certificate (or a CSR) names: CN = user, O = groups (Kubernetes' reading)."""

    user: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What `reconcile up` checks of an existing certificate before it reuses it."""

    identity: Identity
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: datetime.datetime
    not_after: datetime.datetime
    is_ca: bool
    server_auth: bool
    client_auth: bool


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# --- keys ----------------------------------------------------------------------------------------


def new_key() -> bytes:
    """A fresh ECDSA P-256 private key, PKCS#8 PEM (what kubectl's client-key-data and etcd read)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"not a PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"unsupported key type {type(key).__name__}: reconcile issues ECDSA keys")
    return key


def _load_cert(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CertificateError(f"not a PEM certificate: {exc}") from None


def _load_der(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise CertificateError(f"not a DER certificate: {exc}") from None


# --- issuing -------------------------------------------------------------------------------------


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    if common_name:  # "": a subject without a CN (which an authenticator must refuse)
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _validity(builder: x509.CertificateBuilder, days: int, start: datetime.datetime | None = None,
              end: datetime.datetime | None = None) -> x509.CertificateBuilder:
    start = start or now()
    end = end or start + datetime.timedelta(days=days)
    backdate = min(CLOCK_SKEW, (end - start) / 10)  # a short-lived certificate is backdated a little only
    return builder.not_valid_before(start - backdate).not_valid_after(end)


def new_ca(common_name: str, *, days: int = CA_DAYS) -> Issued:
    """A self-signed CA: a new key and a certificate that may sign leaves (not other CAs)."""
    key_pem = new_key()
    key = _load_key(key_pem)
    name = _name(common_name)
    public = key.public_key()
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
               .serial_number(x509.random_serial_number())
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False))
    cert = _validity(builder, days).sign(key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def _leaf_builder(ca: Issued, public: ec.EllipticCurvePublicKey, subject: x509.Name, *, server: bool,
                  client: bool, dns_names: tuple[str, ...], ip_addresses: tuple[str, ...],
                  days: int, start: datetime.datetime | None = None, end: datetime.datetime | None = None,
                  ) -> tuple[x509.CertificateBuilder, ec.EllipticCurvePrivateKey]:
    if not (server or client):
        raise CertificateError("a certificate must be for serving, for clients, or both")
    ca_cert, ca_key = _load_cert(ca.cert), _load_key(ca.key)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject).public_key(public)
               .serial_number(x509.random_serial_number())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _validity(builder, days, start, end), ca_key


def issue(ca: Issued, *, common_name: str, organizations: tuple[str, ...] = (), server: bool = False,
          client: bool = False, dns_names: tuple[str, ...] = (), ip_addresses: tuple[str, ...] = (),
          days: int = LEAF_DAYS, start: datetime.datetime | None = None) -> Issued:
    """A new key and a certificate for it signed by `ca`: serving (with SANs), client, or both,
    valid `days` from `start` (default now; an earlier one makes expired certificates for tests)."""
    key_pem = new_key()
    public = _load_key(key_pem).public_key()
    builder, ca_key = _leaf_builder(ca, public, _name(common_name, organizations), server=server, client=client,
                                    dns_names=dns_names, ip_addresses=ip_addresses, days=days, start=start)
    return Issued(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), key_pem)


# --- certificate signing requests (the node bootstrap signs these) ---------------------------------


def new_csr(key: bytes, *, common_name: str, organizations: tuple[str, ...] = ()) -> bytes:
    """A PEM CSR for `key` naming the identity (as a node agent sends it in a CertificateSigningRequest)."""
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(common_name, organizations))
    return csr.sign(_load_key(key), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _load_csr(pem: bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(pem)
        valid = csr.is_signature_valid  # parses the public key too: a corrupt one raises here
        _ = csr.subject
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"not a PEM certificate request: {exc}") from None
    if not valid:
        raise CertificateError("the certificate request's signature does not verify")
    return csr


def csr_identity(pem: bytes) -> Identity:
    """Who a CSR asks to be: what an approver checks before `sign_csr` (e.g. no `system:masters`)."""
    return _identity(_load_csr(pem).subject)


@dataclass(frozen=True, slots=True)
class CsrInfo:
    """What approvers read of a CSR (upstream's `IsKubeletClientCSR` looks at all of it)."""

    identity: Identity
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    emails: tuple[str, ...]
    uris: tuple[str, ...]
    other_subject_fields: bool  # anything in the subject besides CN and O (OU, C, ...)


def csr_info(pem: bytes) -> CsrInfo:
    """A PEM CSR's subject and requested SANs; CertificateError if it does not parse or its
    signature does not verify (the requester does not hold the key)."""
    request = _load_csr(pem)
    try:
        san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value  # type: ignore[assignment]
    except x509.ExtensionNotFound:
        san = None
    except ValueError as exc:
        raise CertificateError(f"the certificate request's extensions do not parse: {exc}") from None
    other = any(a.oid not in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME) for a in request.subject)

    def values(kind: type[x509.GeneralName]) -> tuple[str, ...]:
        return tuple(str(v) for v in san.get_values_for_type(kind)) if san is not None else ()  # type: ignore[arg-type]

    return CsrInfo(identity=_identity(request.subject), dns_names=values(x509.DNSName),
                   ip_addresses=values(x509.IPAddress), emails=values(x509.RFC822Name),
                   uris=values(x509.UniformResourceIdentifier), other_subject_fields=other)


def new_csr_with_sans(key: bytes, *, common_name: str, organizations: tuple[str, ...] = (),
                      dns_names: tuple[str, ...] = (), ip_addresses: tuple[str, ...] = ()) -> bytes:
    """A PEM CSR that also asks for SANs (a serving certificate's, or a test's hostile request)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(common_name, organizations))
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(_load_key(key), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def sign_csr(ca: Issued, csr: bytes, *, client: bool = True, server: bool = False,
             days: int = LEAF_DAYS, lifetime: datetime.timedelta | None = None,
             dns_names: tuple[str, ...] = (), ip_addresses: tuple[str, ...] = ()) -> bytes:
    """The certificate for a CSR's key and subject; the CSR's extensions (asked-for SANs, usages) are
    ignored: what a certificate may do is the signer's decision, not the requester's (a signer that
    grants the SANs asked for passes them, checked, as `dns_names`/`ip_addresses`). Valid for
    `lifetime` (else `days`), never beyond the CA's own end (as upstream's signer caps it)."""
    request = _load_csr(csr)
    public = request.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise CertificateError("the certificate request's key is not an ECDSA key")
    start = now()
    end = min(start + (lifetime if lifetime is not None else datetime.timedelta(days=days)),
              _load_cert(ca.cert).not_valid_after_utc)
    builder, ca_key = _leaf_builder(ca, public, request.subject, server=server, client=client, dns_names=dns_names,
                                    ip_addresses=ip_addresses, days=days, start=start, end=end)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


# --- reading ---------------------------------------------------------------------------------------


def _identity(name: x509.Name) -> Identity:
    common = [a.value for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)]
    groups = tuple(str(a.value) for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return Identity(str(common[0]) if common else "", groups)


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def info(pem: bytes) -> CertInfo:
    """The facts of a PEM certificate that decide whether it can be reused."""
    cert = _load_cert(pem)
    san = _extension(cert, x509.SubjectAlternativeName)
    constraints = _extension(cert, x509.BasicConstraints)
    usage = _extension(cert, x509.ExtendedKeyUsage)
    usages = set(usage) if isinstance(usage, x509.ExtendedKeyUsage) else set()
    dns = tuple(san.get_values_for_type(x509.DNSName)) if isinstance(san, x509.SubjectAlternativeName) else ()
    ips = tuple(str(i) for i in san.get_values_for_type(x509.IPAddress)) if isinstance(
        san, x509.SubjectAlternativeName) else ()
    return CertInfo(identity=_identity(cert.subject), dns_names=dns, ip_addresses=ips,
                    not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
                    is_ca=isinstance(constraints, x509.BasicConstraints) and constraints.ca,
                    server_auth=ExtendedKeyUsageOID.SERVER_AUTH in usages,
                    client_auth=ExtendedKeyUsageOID.CLIENT_AUTH in usages)


def signed_by(pem: bytes, ca_pem: bytes) -> bool:
    """`pem` was issued by the CA in `ca_pem` (issuer name and signature)."""
    cert, ca = _load_cert(pem), _load_cert(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def key_matches(pem: bytes, key: bytes) -> bool:
    """The private key belongs to the certificate (a torn renewal would leave them apart)."""
    try:
        private = _load_key(key)
    except CertificateError:
        return False
    return _load_cert(pem).public_key() == private.public_key()


def spki_sha256(pem: bytes) -> str:
    """`sha256:<hex>` of the certificate's SubjectPublicKeyInfo: what kubeadm's
    `--discovery-token-ca-cert-hash` (and our `node join --ca-hash`) pins the CA by."""
    spki = _load_cert(pem).public_key().public_bytes(serialization.Encoding.DER,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def pem_to_der(pem: bytes) -> bytes:
    return _load_cert(pem).public_bytes(serialization.Encoding.DER)


def der_to_pem(der: bytes) -> bytes:
    return _load_der(der).public_bytes(serialization.Encoding.PEM)


def split_bundle(pem: bytes) -> list[bytes]:
    """The certificates of a PEM bundle (a client CA file may hold several), each PEM."""
    try:
        found = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise CertificateError(f"no PEM certificates: {exc}") from None
    return [c.public_bytes(serialization.Encoding.PEM) for c in found]


# --- verifying clients -----------------------------------------------------------------------------


class ClientVerifier:
    """Checks a client's DER certificate against a set of CAs (path, validity, `clientAuth` usage) and
    reads its identity. The TLS layer verifies already; this is the authenticator's own check, so an
    identity is never read from a certificate nobody verified."""

    def __init__(self, ca_bundle: bytes) -> None:
        roots = [_load_cert(pem) for pem in split_bundle(ca_bundle)]
        self._store = verification.Store(roots)
        # The Web PKI's end-entity rules, except that a client certificate needs no SAN: Kubernetes
        # identities live in the subject (kubeadm's admin certificate has none).
        self._leaf_policy = verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
            x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None)

    def verify(self, der: bytes, *, at: datetime.datetime | None = None) -> tuple[Identity, datetime.datetime]:
        """The identity, and until when the certificate is valid; CertificateError if it does not verify."""
        cert = _load_der(der)
        verifier = (verification.PolicyBuilder().store(self._store).time(at or now())
                    .extension_policies(ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                                        ee_policy=self._leaf_policy)
                    .build_client_verifier())
        try:
            verifier.verify(cert, [])
        except verification.VerificationError as exc:
            raise CertificateError(f"certificate does not verify: {exc}") from None
        return _identity(cert.subject), cert.not_valid_after_utc


# --- ServiceAccount token keys -----------------------------------------------------------------------
# kubeadm's sa.key/sa.pub: an RSA key whose private half the API server signs ServiceAccount tokens
# with (--service-account-signing-key-file) and whose public half verifies them
# (--service-account-key-file). JWT signing itself is PyJWT's (api/jwts.py); these helpers only
# read and make keys, so the cryptography types stay in this module.

SA_KEY_BITS = 2048  # kubeadm's


def new_signing_key() -> bytes:
    """A fresh RSA-2048 private key, PKCS#8 PEM (kubeadm's `sa.key`)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=SA_KEY_BITS)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _public_pem(public: PublicKeyTypes) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_signing_type(key: PublicKeyTypes | PrivateKeyTypes) -> None:
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) and key.curve.name in _EC_ALGORITHMS:
        return
    raise CertificateError(f"unsupported key type {type(key).__name__}: RSA or ECDSA (P-256, P-384, P-521) only")


def signing_public_key(private_pem: bytes) -> bytes:
    """The public half of a signing key (sa.pub from sa.key), PEM."""
    try:
        key = serialization.load_pem_private_key(private_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"not a PEM private key: {exc}") from None
    _check_signing_type(key)
    return _public_pem(key.public_key())  # type: ignore[union-attr]


def verification_keys(pem: bytes) -> list[bytes]:
    """Every public key in a --service-account-key-file, as upstream reads one: PEM public keys,
    private keys (their public half) and certificates (their key), each returned as public PEM."""
    found: list[bytes] = []
    for block in _pem_blocks(pem):
        label = block.split(b"\n", 1)[0]
        try:
            if b"CERTIFICATE" in label:
                public = x509.load_pem_x509_certificate(block).public_key()
            elif b"PRIVATE KEY" in label:
                public = serialization.load_pem_private_key(block, password=None).public_key()  # type: ignore[union-attr]
            elif b"PUBLIC KEY" in label:
                public = serialization.load_pem_public_key(block)
            else:
                continue
        except (ValueError, TypeError) as exc:
            raise CertificateError(f"cannot read a key: {exc}") from None
        _check_signing_type(public)
        found.append(_public_pem(public))
    if not found:
        raise CertificateError("no PEM public keys, private keys or certificates")
    return found


def _pem_blocks(pem: bytes) -> list[bytes]:
    blocks: list[bytes] = []
    current: list[bytes] | None = None
    for line in pem.splitlines():
        if line.startswith(b"-----BEGIN "):
            current = [line]
        elif current is not None:
            current.append(line)
            if line.startswith(b"-----END "):
                blocks.append(b"\n".join(current) + b"\n")
                current = None
    return blocks


_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def jws_algorithm(pem: bytes) -> str:
    """The JWS algorithm upstream signs with for this (public or private) key: RS256 for RSA,
    ES256/ES384/ES512 for the ECDSA curves."""
    try:
        if b"PRIVATE KEY" in pem:
            key: PublicKeyTypes | PrivateKeyTypes = serialization.load_pem_private_key(pem, password=None)
        else:
            key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"not a PEM key: {exc}") from None
    _check_signing_type(key)
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RS256"
    return _EC_ALGORITHMS[key.curve.name]  # type: ignore[union-attr]


def key_id(public_pem: bytes) -> str:
    """Upstream's `kid`: unpadded base64url of the SHA-256 of the key's DER SubjectPublicKeyInfo."""
    try:
        public = serialization.load_pem_public_key(public_pem)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"not a PEM public key: {exc}") from None
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
