"""The x509 authenticator: a TLS client certificate signed by the client CA proves a user.

As upstream's: the certificate's CN is the user name and its O entries are the groups, plus
`system:authenticated`. The TLS layer already refused certificates the client CA did not sign
(`--client-ca-file` is the server's verify store); this authenticator verifies again with the
same CAs (chain, validity, `clientAuth` usage) before it reads a name, so an identity never comes
from a certificate nobody checked, whatever terminates TLS. Verifying costs ~0.2 ms; clients
present the same certificate on every request, so answers are cached by the certificate's bytes
until it expires (bounded, oldest dropped first).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

from reconcile.api import authn
from reconcile.core import errors
from reconcile.pki import certs

log = logging.getLogger("reconcile.api.authn")

CACHE_SIZE = 4096  # distinct client certificates remembered


class ClientCertificates:
    """`authn.Authenticator` for `Credentials.peer_certificate` (DER)."""

    def __init__(self, ca_bundle: bytes, *, cache_size: int = CACHE_SIZE) -> None:
        self._verifier = certs.ClientVerifier(ca_bundle)
        self._cache_size = cache_size
        # DER -> (user, not valid after as a Unix time); an entry is used only before that instant.
        self._cache: OrderedDict[bytes, tuple[authn.UserInfo, float]] = OrderedDict()

    @classmethod
    def from_file(cls, path: str) -> ClientCertificates:
        with open(path, "rb") as handle:
            return cls(handle.read())

    async def authenticate(self, credentials: authn.Credentials) -> authn.UserInfo | None:
        der = credentials.peer_certificate
        if not der:
            return None
        hit = self._cache.get(der)
        if hit is not None and time.time() < hit[1]:
            return hit[0]
        try:
            identity, not_after = self._verifier.verify(der)
        except certs.CertificateError as exc:
            log.info("client certificate refused: %s", exc)
            raise errors.Unauthorized("Unauthorized") from None  # the reason stays in the log
        if not identity.user:
            log.info("client certificate refused: its subject has no common name")
            raise errors.Unauthorized("Unauthorized")
        groups = tuple(dict.fromkeys((*identity.groups, authn.AUTHENTICATED)))
        user = authn.UserInfo(identity.user, groups=groups)
        self._cache[der] = (user, not_after.timestamp())
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return user
