"""The agent port's serving certificate through a CSR: the kubelet's `serverTLSBootstrap` (and
`--rotate-server-certificates`), for a node that joined by token.

The node, as itself, asks for `CN=system:node:<name>, O=system:nodes` with the SANs its Node status
publishes (Hostname -> DNS, InternalIP -> IP: `tls.serving_names`), signer
`kubernetes.io/kubelet-serving`, usages digital signature and server auth (no key encipherment: the
key is ECDSA, as the kubelet's). csrapproving approves it only when the requester is that node and
every SAN is one of its Node's addresses (upstream approves none: README, differences); csrsigning
signs it with the cluster CA, which the API server checks with `--kubelet-certificate-authority`.

The certificate and key live in one file, `pki/kubelet-server-current.pem` (0600, one atomic
rename); a restarted agent reuses it while it is valid, of the cluster CA, for this node and names
its current address. Until a certificate is there the port refuses handshakes (`tls.ServingContext`).
"""

from __future__ import annotations

import asyncio
import logging
import re

from reconcile.client import aio
from reconcile.node import bootstrap, tls
from reconcile.pki import certs, files
from reconcile.pki import csr as csr_mod

log = logging.getLogger(__name__)

USAGES = ("digital signature", "server auth")
KEY_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.DOTALL)


def split(pem_and_key: bytes) -> tuple[bytes, bytes] | None:
    """(certificate, key) of a `kubelet-server-current.pem`, or None when it holds no matching pair."""
    found = KEY_BLOCK.search(pem_and_key)
    try:
        blocks = certs.split_bundle(pem_and_key)
    except certs.CertificateError:
        return None
    if not blocks or found is None:
        return None
    key = found.group(0) + b"\n"
    return (blocks[0], key) if certs.key_matches(blocks[0], key) else None


def usable(credentials: bootstrap.Credentials, name: str, address: str) -> bytes | None:
    """The stored serving certificate when it can be served on: else None (ask for a new one)."""
    found = files.read(credentials.serving)
    ca = files.read(credentials.ca)
    pair = split(found) if found is not None else None
    if pair is None or ca is None:
        return None
    try:
        info = certs.info(pair[0])
        of_ca = certs.signed_by(pair[0], certs.split_bundle(ca)[0])
    except certs.CertificateError:
        return None
    dns, ips = tls.serving_names(address, name)
    if (info.identity.user != f"{csr_mod.NODE_USER_PREFIX}{name}" or not of_ca or not info.server_auth
            or info.not_after <= certs.now() or set(dns) - set(info.dns_names) or set(ips) - set(info.ip_addresses)):
        return None
    return pair[0]


class ServingCertificate:
    """Obtains, stores and installs the node's serving certificate; `current` and `renew` are what
    `rotation.Rotator` drives (the first `renew` is the bootstrap, later ones the rotations)."""

    def __init__(self, client: aio.AsyncClient, credentials: bootstrap.Credentials, context: tls.ServingContext, *,
                 node: str, address: str, timeout: float = 300.0) -> None:
        self.client = client
        self.credentials = credentials
        self.context = context
        self.node = node
        self.address = address
        self.timeout = timeout
        self.installed = asyncio.Event()  # set once a certificate serves

    def load(self) -> bool:
        """Serve the stored certificate if it is still good (an agent restart); True when it was."""
        if usable(self.credentials, self.node, self.address) is None:
            return False
        self.context.install(self._files())
        self.installed.set()
        log.info("node %s: serving with the certificate in %s", self.node, self.credentials.serving)
        return True

    def current(self) -> bytes | None:
        return usable(self.credentials, self.node, self.address) if self.context.ready else None

    async def renew(self) -> bytes:
        key = certs.new_key()
        dns, ips = tls.serving_names(self.address, self.node)
        certificate = await bootstrap.request_certificate(
            self.client, self.node, key, timeout=self.timeout, signer=csr_mod.KUBELET_SERVING, usages=USAGES,
            dns_names=dns, ip_addresses=ips)
        info = certs.info(certificate)
        if set(dns) - set(info.dns_names) or set(ips) - set(info.ip_addresses) or not info.server_auth:
            raise bootstrap.JoinError(f"the serving certificate issued does not name {', '.join(dns + ips)}")
        files.write(self.credentials.serving, certificate + key, mode=files.KEY_MODE)
        self.context.install(self._files())
        self.installed.set()
        return certificate

    def _files(self) -> tls.ServingFiles:
        return tls.ServingFiles(self.credentials.serving, self.credentials.serving)
