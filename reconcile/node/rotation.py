"""Certificate rotation: the kubelet's certificate manager, for a node that joined by token.

Two certificates rotate, each with its own `Rotator`: the client certificate the agent talks to the
API server with (`ClientCertificate`) and the agent port's serving certificate
(`serving.ServingCertificate`). Each is renewed once a jittered 70-90% of its lifetime (NotBefore
to NotAfter) has passed, upstream's `nextRotationDeadline`: a new key, a CSR made as the node itself
(csrapproving approves the client one as `selfnodeclient`, the serving one as `selfnodeserver`),
the signed certificate written with its key in one atomic rename, then swapped in without a
restart: the client drops every connection (`AsyncClient.reconnect`) so new ones present the new
certificate; the port's next handshakes serve the new one (`tls.ServingContext`). A certificate
that is missing (a serving one not issued yet) is asked for at once. A failed renewal is retried
with backoff (1 s doubling to 5 min) while the old certificate lasts.
"""

from __future__ import annotations

import datetime
import logging
import random
from collections.abc import Awaitable, Callable

from reconcile.client import aio
from reconcile.engine import clock as clock_mod
from reconcile.node import bootstrap
from reconcile.pki import certs

log = logging.getLogger(__name__)

JITTER = (0.7, 0.9)
MAX_BACKOFF = 300.0


def next_deadline(pem: bytes, *, fraction: Callable[[], float] | None = None) -> datetime.datetime:
    """When to renew: NotBefore + (70..90%) of the lifetime."""
    found = certs.info(pem)
    share = fraction() if fraction is not None else random.uniform(*JITTER)  # noqa: S311 - jitter, not secrecy
    return found.not_before + (found.not_after - found.not_before) * share


class Rotator:
    """Renews one certificate before it ends: `current()` is the one in use (None: none yet),
    `renew()` gets, stores and swaps in the next one and returns it."""

    def __init__(self, *, what: str, node: str, current: Callable[[], bytes | None],
                 renew: Callable[[], Awaitable[bytes]], clock: clock_mod.Clock | None = None) -> None:
        self.what = what
        self.node = node
        self.current = current
        self.renew = renew
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        self.rotations = 0

    async def run(self) -> None:
        backoff = 1.0
        while True:
            pem = self.current()
            if pem is not None:
                wait = (next_deadline(pem) - self.clock.wall()).total_seconds()
                if wait > 0:
                    log.info("node %s: %s certificate rotation in %.0fs", self.node, self.what, wait)
                    await self.clock.sleep(wait)
            try:
                certificate = await self.renew()
                backoff = 1.0
            except Exception as exc:  # noqa: BLE001 - keep the old certificate, retry
                log.warning("node %s: %s certificate request failed (retrying in %.0fs): %s", self.node, self.what,
                            backoff, exc)
                await self.clock.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            self.rotations += 1
            verb = "rotated" if pem is not None else "received"
            log.info("node %s: %s the %s certificate (valid until %s)", self.node, verb, self.what,
                     certs.info(certificate).not_after.isoformat())


class ClientCertificate:
    """The client side of `Rotator`: renewal as the node, stored in the kubeconfig's file, reconnect."""

    def __init__(self, client: aio.AsyncClient, credentials: bootstrap.Credentials, *, node: str, server: str,
                 timeout: float = 300.0) -> None:
        self.client = client
        self.credentials = credentials
        self.node = node
        self.server = server
        self.timeout = timeout

    def current(self) -> bytes | None:
        return self.credentials.certificate()

    async def renew(self) -> bytes:
        key = certs.new_key()
        certificate = await bootstrap.request_certificate(self.client, self.node, key, timeout=self.timeout)
        bootstrap.store(self.credentials, certificate, key, self.server)
        await self.client.reconnect()
        return certificate
