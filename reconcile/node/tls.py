"""The node agent's TLS: its serving certificate and the context its port serves with.

As the kubelet's port 10250: HTTPS always. The serving certificate is `--tls-cert-file` /
`--tls-private-key-file` when given (`reconcile up` issues one from the cluster CA, so the API
server can verify it with `--kubelet-certificate-authority`), else a self-signed one kept in the
node's state dir (`pki/agent.crt`, `agent.key`; the kubelet's `--cert-dir` default does the same),
or, for a node that joined by token, one the cluster CA signed through a CSR (`reconcile.node.serving`).

The port serves with a `ServingContext`: its certificate can be replaced while it serves (rotation)
and may be absent at first (a CSR not signed yet). Each handshake picks the current certificate in
the TLS server-name callback, which OpenSSL calls for every ClientHello, with SNI or without;
connections already open keep the one they began with. Without a certificate the handshake is
refused, as the kubelet's "no serving certificate available" (its port serves nothing until then).

With `--client-ca-file` every client must present a certificate that CA signed: the handshake
itself refuses a plain HTTP request, a client without a certificate and one from another CA, so no
request of theirs reaches the routes. (Without a client CA, any client may connect: upstream's
flag default, kept for bare test set-ups; `up` and `node join` always pass one.)
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from reconcile.pki import certs, files

log = logging.getLogger(__name__)

SELF_SIGNED_DAYS = 365


@dataclass(frozen=True, slots=True)
class ServingFiles:
    cert: Path
    key: Path


def self_signed(cert_dir: Path, *, name: str, address: str) -> ServingFiles:
    """The kubelet's fallback: a serving certificate for `name` and `address`, signed by a CA made for
    it alone (whose key is thrown away), reused while it still names both and is valid."""
    cert, key = cert_dir / "agent.crt", cert_dir / "agent.key"
    found_cert, found_key = files.read(cert), files.read(key)
    if found_cert is not None and found_key is not None:
        try:
            found = certs.info(found_cert)
            if (certs.key_matches(found_cert, found_key) and address in found.ip_addresses + found.dns_names
                    and found.not_after > certs.now()):
                return ServingFiles(cert, key)
        except certs.CertificateError:
            pass
    dns, ips = serving_names(address, name)
    ca = certs.new_ca(f"{name}-ca", days=SELF_SIGNED_DAYS)
    issued = certs.issue(ca, common_name=name, server=True, dns_names=dns, ip_addresses=ips, days=SELF_SIGNED_DAYS)
    files.write(key, issued.key, mode=files.KEY_MODE)
    files.write(cert, issued.cert + ca.cert, mode=files.CERT_MODE)  # the chain, as the kubelet's
    return ServingFiles(cert, key)


def serving_names(address: str, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(DNS names, IP addresses) a serving certificate of node `name` at `address` names: the node's
    Hostname and InternalIP, as its Node status publishes them (`registration.node_status`)."""
    dns: list[str] = [name]
    ips: list[str] = []
    try:
        ips.append(str(ipaddress.ip_address(address)))
    except ValueError:
        dns.append(address)
    return tuple(dict.fromkeys(dns)), tuple(ips)


def _context(client_ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    if client_ca_file:
        context.load_verify_locations(cafile=client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


def server_context(serving: ServingFiles, *, client_ca_file: str | None) -> ssl.SSLContext:
    """TLS 1.2 or later; with a client CA, a client certificate it signed is required."""
    context = _context(client_ca_file)
    context.load_cert_chain(str(serving.cert), str(serving.key))
    return context


class ServingContext:
    """The port's TLS context; `install` swaps the certificate in for the handshakes that follow."""

    def __init__(self, *, client_ca_file: str | None) -> None:
        self.client_ca_file = client_ca_file
        self.context = _context(client_ca_file)  # holds no certificate: every handshake is switched away
        self.context.sni_callback = self._choose
        self._current: ssl.SSLContext | None = None

    @property
    def ready(self) -> bool:
        return self._current is not None

    def install(self, serving: ServingFiles) -> None:
        """Serve `serving` from the next handshake on; raises (keeping the old one) when it does not load."""
        self._current = server_context(serving, client_ca_file=self.client_ca_file)

    def _choose(self, connection: ssl.SSLObject | ssl.SSLSocket, _server_name: str | None,
                _context: ssl.SSLContext) -> int | None:
        current = self._current
        if current is None:
            log.warning("refused a TLS handshake: no serving certificate available yet")
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        connection.context = current
        return None
