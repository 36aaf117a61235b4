"""Client certificate rotation: the kubelet's certificate manager, for a node that joined by token.

The current certificate (`bootstrap.Credentials.client`) is renewed once a jittered 70-90% of its
lifetime (NotBefore to NotAfter) has passed, upstream's `nextRotationDeadline`: a new key, a CSR made
as the node itself (csrapproving approves it as `selfnodeclient`), the signed certificate written
with its key in one atomic rename, then every connection of the agent's client is dropped
(`AsyncClient.reconnect`) so new ones present the new certificate. No restart. A failed renewal is
retried with backoff (1 s doubling to 5 min) while the old certificate lasts.
"""

from __future__ import annotations

import datetime
import logging
import random
from collections.abc import Callable

from reconcile.client import aio
from reconcile.engine import clock as clock_mod
from reconcile.node import bootstrap
from reconcile.pki import certs

log = logging.getLogger(__name__)

JITTER = (0.7, 0.9)


def next_deadline(pem: bytes, *, fraction: Callable[[], float] | None = None) -> datetime.datetime:
    """When to renew: NotBefore + (70..90%) of the lifetime."""
    found = certs.info(pem)
    share = fraction() if fraction is not None else random.uniform(*JITTER)  # noqa: S311 - jitter, not secrecy
    return found.not_before + (found.not_after - found.not_before) * share


class Rotator:
    def __init__(self, client: aio.AsyncClient, credentials: bootstrap.Credentials, *, node: str, server: str,
                 clock: clock_mod.Clock | None = None, timeout: float = 300.0) -> None:
        self.client = client
        self.credentials = credentials
        self.node = node
        self.server = server
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        self.timeout = timeout
        self.rotations = 0

    async def run(self) -> None:
        backoff = 1.0
        while True:
            pem = self.credentials.certificate()
            if pem is None:
                log.error("node %s: no client certificate in %s; rotation stops", self.node, self.credentials.client)
                return
            wait = (next_deadline(pem) - self.clock.wall()).total_seconds()
            if wait > 0:
                log.info("node %s: client certificate rotation in %.0fs", self.node, wait)
                await self.clock.sleep(wait)
            try:
                await self.rotate()
                backoff = 1.0
            except Exception as exc:  # noqa: BLE001 - keep the old certificate, retry
                log.warning("node %s: certificate rotation failed (retrying in %.0fs): %s", self.node, backoff, exc)
                await self.clock.sleep(backoff)
                backoff = min(backoff * 2, 300.0)

    async def rotate(self) -> None:
        key = certs.new_key()
        certificate = await bootstrap.request_certificate(self.client, self.node, key, timeout=self.timeout)
        bootstrap.store(self.credentials, certificate, key, self.server)
        await self.client.reconnect()
        self.rotations += 1
        log.info("node %s: rotated the client certificate (valid until %s)", self.node,
                 certs.info(certificate).not_after.isoformat())
