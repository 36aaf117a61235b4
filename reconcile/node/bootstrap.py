"""Joining a cluster with a bootstrap token (kubeadm's discovery and the kubelet's TLS bootstrap),
and the client certificate's renewal.

Discovery (`discover`): the cluster CA is read from the ConfigMap `kube-public/cluster-info` (its
`kubeconfig` key, as kubeadm publishes it; anonymous read) over TLS that is *not* verified yet, and
trusted only when the SHA-256 of its public key (SubjectPublicKeyInfo) equals `--ca-hash
sha256:<hex>` (kubeadm's `--discovery-token-ca-cert-hash`), compared in constant time. The same
ConfigMap is then read again over TLS verified with that CA, so the server proves it holds a key
the CA certified. The token is never sent before that: a man in the middle of the first read learns
nothing secret and cannot substitute a CA.

TLS bootstrap (`bootstrap`): a new key, a CSR for `CN=system:node:<name>, O=system:nodes` (signer
`kubernetes.io/kube-apiserver-client-kubelet`, usages digital signature and client auth) created
with the bootstrap token, then the signed certificate (csrapproving approves it for bootstrap
tokens, csrsigning signs it) is written with its key into one file, `pki/kubelet-client-current.pem`
(0600; one atomic rename, so a reader never sees a certificate with the wrong key), and a kubeconfig
(`kubeconfig`, 0600) references it and the CA. An existing kubeconfig whose certificate is still
valid is reused, so a restarted agent does not need the token again.

Renewal (`renew`): the same request made as the node itself (its current certificate), which
csrapproving approves as `selfnodeclient`.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconcile.client import aio
from reconcile.client import config as client_config
from reconcile.core import errors
from reconcile.pki import certs, files
from reconcile.pki import csr as csr_mod

log = logging.getLogger(__name__)

CLUSTER_INFO_NAMESPACE, CLUSTER_INFO_NAME = "kube-public", "cluster-info"
HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
USAGES = ("digital signature", "client auth")


class JoinError(Exception):
    """Discovery or the TLS bootstrap failed; the message says why (and what to check)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Where a joined node keeps its trust and identity (under its state dir)."""

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "pki" / "ca.crt"

    @property
    def client(self) -> Path:  # certificate and key in one file, as the kubelet's kubelet-client-current.pem
        return self.root / "pki" / "kubelet-client-current.pem"

    @property
    def serving(self) -> Path:  # the agent port's certificate and key, as the kubelet's kubelet-server-current.pem
        return self.root / "pki" / "kubelet-server-current.pem"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    def config(self, server: str) -> client_config.ClientConfig:
        return client_config.ClientConfig(server=server, verify=str(self.ca), cert=(str(self.client), str(self.client)))

    def certificate(self) -> bytes | None:
        data = files.read(self.client)
        if data is None:
            return None
        try:
            return certs.split_bundle(data)[0]
        except certs.CertificateError:
            return None


def check_hash(text: str) -> str:
    value = text.strip().lower()
    if not HASH_RE.match(value):
        raise JoinError(f"--ca-hash {text!r} must be sha256:<64 hex digits> (the output of `reconcile up`, or "
                        "`openssl x509 -pubkey -in ca.crt | openssl pkey -pubin -outform der | sha256sum`)")
    return value


def _ca_of(configmap: dict[str, Any]) -> bytes:
    text = (configmap.get("data") or {}).get("kubeconfig")
    try:
        doc = yaml.safe_load(text) if isinstance(text, str) else None
        data = doc["clusters"][0]["cluster"]["certificate-authority-data"]
        return base64.b64decode(data, validate=True)
    except (yaml.YAMLError, KeyError, IndexError, TypeError, ValueError):
        raise JoinError("the cluster-info ConfigMap holds no kubeconfig with certificate-authority-data") from None


async def _read_cluster_info(config: client_config.ClientConfig) -> dict[str, Any]:
    async with aio.AsyncClient(config) as client:
        try:
            found: dict[str, Any] = await client.get("v1", "configmaps", CLUSTER_INFO_NAME, namespace=CLUSTER_INFO_NAMESPACE)
            return found
        except errors.ApiError as exc:
            raise JoinError(f"cannot read {CLUSTER_INFO_NAMESPACE}/{CLUSTER_INFO_NAME} from {config.server}: "
                            f"{exc.message} (the API server must allow anonymous reads of it, as kubeadm sets up)"
                            ) from None


async def discover(server: str, ca_hash: str, credentials: Credentials) -> None:
    """Find and pin the cluster CA; write it to `credentials.ca`."""
    pinned = check_hash(ca_hash)
    unverified = await _read_cluster_info(client_config.ClientConfig(server=server, verify=False))
    bundle = _ca_of(unverified)
    try:
        found = [certs.spki_sha256(pem) for pem in certs.split_bundle(bundle)]
    except certs.CertificateError as exc:
        raise JoinError(f"the cluster-info CA does not parse: {exc}") from None
    if not any(hmac.compare_digest(h.encode(), pinned.encode()) for h in found):
        raise JoinError(f"the cluster CA found in cluster-info ({', '.join(found)}) does not match --ca-hash "
                        f"{pinned}: refusing to trust it")
    files.write(credentials.ca, bundle, mode=files.CERT_MODE)
    verified = await _read_cluster_info(client_config.ClientConfig(server=server, verify=str(credentials.ca)))
    if _ca_of(verified) != bundle:
        raise JoinError("cluster-info changed between the unverified and the verified read")
    log.info("discovered the cluster CA %s at %s", pinned, server)


async def request_certificate(client: aio.AsyncClient, name: str, key: bytes, *, timeout: float = 300.0,
                              expiration_seconds: int | None = None, signer: str = csr_mod.KUBELET_CLIENT,
                              usages: tuple[str, ...] = USAGES, dns_names: tuple[str, ...] = (),
                              ip_addresses: tuple[str, ...] = ()) -> bytes:
    """Create a CSR of node `name` for `key` (a client certificate's by default; with `signer`
    kubelet-serving and SANs, a serving certificate's) and wait (until `timeout`) for it to be signed."""
    subject = {"common_name": f"{csr_mod.NODE_USER_PREFIX}{name}", "organizations": (csr_mod.NODES_GROUP,)}
    request = (certs.new_csr_with_sans(key, **subject, dns_names=dns_names, ip_addresses=ip_addresses)
               if dns_names or ip_addresses else certs.new_csr(key, **subject))
    csr_name = f"{'node-csr' if signer == csr_mod.KUBELET_CLIENT else 'csr'}-{secrets.token_hex(8)}"
    body = csr_mod.new_request(csr_name, request, signer=signer, usages=usages,
                               expiration_seconds=expiration_seconds)
    await client.create(csr_mod.API_VERSION, csr_mod.PLURAL, body)
    deadline = time.monotonic() + timeout
    while True:
        current = await client.get(csr_mod.API_VERSION, csr_mod.PLURAL, csr_name)
        for kind in (csr_mod.DENIED, csr_mod.FAILED):
            if csr_mod.has_condition(current, kind):
                cond = next(c for c in csr_mod.conditions(current) if c.get("type") == kind)
                raise JoinError(f"certificate signing request {csr_name} is {kind.lower()}: "
                                f"{cond.get('reason', '')}: {cond.get('message', '')}")
        issued = csr_mod.issued_certificate(current)
        if issued:
            if not certs.key_matches(issued, key):
                raise JoinError(f"the certificate issued for {csr_name} is not for our key")
            return issued
        if time.monotonic() > deadline:
            raise JoinError(f"certificate signing request {csr_name} was not approved and signed within "
                            f"{timeout:.0f}s (is the controller-manager running with --cluster-signing-cert-file?)")
        await asyncio.sleep(0.25)  # polling a foreign decision, with a deadline


def store(credentials: Credentials, certificate: bytes, key: bytes, server: str) -> None:
    files.write(credentials.client, certificate + key, mode=files.KEY_MODE)
    client_config.write_kubeconfig(credentials.kubeconfig, server, ca_file=credentials.ca,
                                   cert_file=credentials.client, key_file=credentials.client)


def usable(credentials: Credentials, name: str) -> bool:
    """A kubeconfig from an earlier join, with a valid certificate of this node and the CA."""
    pem = credentials.certificate()
    ca = files.read(credentials.ca)
    if pem is None or ca is None or not credentials.kubeconfig.is_file():
        return False
    try:
        found = certs.info(pem)
    except certs.CertificateError:
        return False
    return (found.identity.user == f"{csr_mod.NODE_USER_PREFIX}{name}" and found.not_after > certs.now()
            and certs.signed_by(pem, certs.split_bundle(ca)[0]))


async def bootstrap(server: str, token: str, ca_hash: str, name: str, credentials: Credentials, *,
                    timeout: float = 300.0) -> None:
    """Discovery, then the TLS bootstrap; leaves `credentials.kubeconfig` ready for the agent."""
    if usable(credentials, name):
        log.info("node %s: reusing the credentials in %s", name, credentials.root)
        return
    await discover(server, ca_hash, credentials)
    key = certs.new_key()
    config = client_config.ClientConfig(server=server, verify=str(credentials.ca), token=token)
    async with aio.AsyncClient(config) as client:
        try:
            certificate = await request_certificate(client, name, key, timeout=timeout)
        except errors.Unauthorized:
            raise JoinError("the bootstrap token was refused (unknown, wrong or expired)") from None
        except errors.Forbidden as exc:
            raise JoinError(f"the bootstrap token may not request certificates: {exc.message}") from None
    store(credentials, certificate, key, server)
    log.info("node %s: client certificate issued, kubeconfig %s", name, credentials.kubeconfig)
