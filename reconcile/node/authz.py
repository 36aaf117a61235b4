"""Who may call the node agent's port, and what: the kubelet's x509 authentication and Webhook
authorization.

Authentication: the TLS handshake already required a certificate from the client CA
(`reconcile.node.tls`); `Authenticator` verifies it again (`certs.ClientVerifier`: chain, validity,
`clientAuth`) and reads its identity (CN = user, O = groups), so no request is served on an
identity nobody checked.

Authorization (the kubelet's `--authorization-mode=Webhook`): each request becomes upstream's
attributes, `verb` from the method (POST create, GET get, ...) and the `nodes` subresource from the
path (`/stats*` stats, `/metrics*` metrics, `/logs*` log, `/spec*` spec, `/healthz*` healthz,
everything else, so `/exec` and `/containerLogs`, proxy), named after this node, and the API server
is asked with a SubjectAccessReview made with the agent's own credentials. Answers are cached as
the kubelet's defaults: allowed for 5 minutes, denied for 30 seconds. A review that cannot be made
(the API server is down) denies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from reconcile.core import errors
from reconcile.pki import certs

log = logging.getLogger(__name__)

ALLOWED_TTL = 300.0
DENIED_TTL = 30.0
CACHE_SIZE = 1024

VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
SUBRESOURCES = (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"), ("/spec", "spec"),
                ("/healthz", "healthz"), ("/checkpoint", "checkpoint"), ("/configz", "configz"), ("/pods", "pods"))


@dataclass(frozen=True, slots=True)
class Caller:
    user: str
    groups: tuple[str, ...]


def attributes(method: str, path: str) -> tuple[str, str]:
    """(verb, nodes subresource) of a request, as the kubelet's `GetRequestAttributes`."""
    verb = VERBS.get(method.upper(), method.lower())
    for prefix, subresource in SUBRESOURCES:
        if path == prefix or path.startswith(prefix + "/"):
            return verb, subresource
    return verb, "proxy"


class Authenticator:
    """The caller of a request, from the verified client certificate of its connection."""

    def __init__(self, ca_bundle: bytes) -> None:
        self._verifier = certs.ClientVerifier(ca_bundle)

    def caller(self, peer_pem: str | None) -> Caller:
        if not peer_pem:
            raise errors.Unauthorized("Unauthorized")
        try:
            identity, _ = self._verifier.verify(certs.pem_to_der(peer_pem.encode()))
        except certs.CertificateError as exc:
            log.info("client certificate refused: %s", exc)
            raise errors.Unauthorized("Unauthorized") from None
        if not identity.user:
            raise errors.Unauthorized("Unauthorized")
        return Caller(identity.user, identity.groups)


# (the SubjectAccessReview to create) -> the answer's status
Review = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class WebhookAuthorizer:
    """Asks the API server (SubjectAccessReview) whether `caller` may `verb` nodes/<sub> of this node."""

    def __init__(self, node: str, review: Review, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self._review = review
        self._clock = clock
        self._cache: dict[tuple[Any, ...], tuple[bool, str, float]] = {}

    async def authorize(self, caller: Caller, verb: str, subresource: str) -> None:
        key = (caller.user, caller.groups, verb, subresource)
        now = self._clock()
        hit = self._cache.get(key)
        if hit is None or hit[2] <= now:
            allowed, reason = await self._ask(caller, verb, subresource)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = (allowed, reason, now + (ALLOWED_TTL if allowed else DENIED_TTL))
        else:
            allowed, reason = hit[0], hit[1]
        if not allowed:
            # the kubelet's message
            raise errors.Forbidden(f"Forbidden (user={caller.user}, verb={verb}, resource=nodes, "
                                   f"subresource={subresource})")

    async def _ask(self, caller: Caller, verb: str, subresource: str) -> tuple[bool, str]:
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"user": caller.user, "groups": list(caller.groups),
                           "resourceAttributes": {"verb": verb, "resource": "nodes", "subresource": subresource,
                                                  "name": self.node}}}
        try:
            status = await self._review(review)
        except errors.ApiError as exc:
            log.warning("SubjectAccessReview failed, denying %s: %s", caller.user, exc)
            return False, str(exc)
        return bool(status.get("allowed")) and not status.get("denied"), str(status.get("reason") or "")
