"""GitOps webhook receivers: a push notification that asks for an immediate fetch, if its signature holds.

As Flux's notification-controller Receiver: a secret token makes both the hook's path
(`/hooks/gitops/<sha256(token + name + namespace)>`, unguessable) and the key the sender signs the
body with. Types: `generic-hmac` (`X-Signature: sha256=<hex>` or `sha512=<hex>`, HMAC of the raw
body), `github` (`X-Hub-Signature-256: sha256=<hex>`; `ping` answered, `X-GitHub-Event` filtered
by `events`), `gitlab` (`X-Gitlab-Token` equal to the token; `X-Gitlab-Event` filtered), and
`generic` (the path alone). Signatures are compared in constant time (`hmac.compare_digest`).

Pure, so that both sides share it from the bottom layer: the API server serves the path
(`api/gitopshooks`) and the GitOps controller publishes it in each Receiver's status
(`gitops/receivers`). `handle` takes the request's parts and the Receiver it names and returns a
Decision (the HTTP status, a message safe to send back, and the objects to annotate); on `trigger`
the server merge-patches each target with `request_patch` (the requestedAt annotation the
GitRepository reconciler acts on). A bad or missing signature is 401 and never triggers.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

GROUP = "gitops.reconcile.dev"
REQUESTED_AT = f"{GROUP}/requestedAt"  # Flux's reconcile.fluxcd.io/requestedAt, in our group
PATH_PREFIX = "/hooks/gitops/"
TOKEN_KEY = "token"  # the key of the Secret a Receiver's secretRef names
MAX_BODY_BYTES = 1024 * 1024  # a push payload is a few KiB; bigger is refused before any HMAC
TYPES = ("generic", "generic-hmac", "github", "gitlab")
_HMAC_ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


@dataclasses.dataclass(frozen=True)
class Receiver:
    """One receiver: where it listens, how it checks, and the GitRepositories it wakes."""

    namespace: str
    name: str
    type: str
    token: bytes
    events: tuple[str, ...] = ()  # github/gitlab event names to act on; empty: all
    targets: tuple[tuple[str, str], ...] = ()  # (namespace, name) of GitRepositories

    @property
    def path(self) -> str:
        return webhook_path(self.token, self.name, self.namespace)


@dataclasses.dataclass(frozen=True)
class Decision:
    status: int
    message: str
    targets: tuple[tuple[str, str], ...] = ()

    @property
    def trigger(self) -> bool:
        return self.status == 200 and bool(self.targets)


def from_object(obj: Mapping[str, Any], token: bytes) -> Receiver:
    """The Receiver an object of kind Receiver describes, with the token its Secret holds."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    namespace = str(metadata.get("namespace") or "")
    return Receiver(
        namespace=namespace, name=str(metadata.get("name") or ""), type=str(spec.get("type") or ""), token=token,
        events=tuple(str(e) for e in spec.get("events") or ()),
        targets=tuple((namespace, str(r.get("name"))) for r in spec.get("resources") or ()
                      if isinstance(r, dict) and r.get("kind") == "GitRepository" and r.get("name")))


def secret_name(obj: Mapping[str, Any]) -> str:
    """The name of the Secret that holds a Receiver's token (its `spec.secretRef.name`)."""
    return str(((obj.get("spec") or {}).get("secretRef") or {}).get("name") or "")


def token(secret: Mapping[str, Any]) -> bytes:
    """The token a Secret holds under `token` (base64 in `data`, as stored), b"" when it has none."""
    raw = (secret.get("data") or {}).get(TOKEN_KEY)
    if not raw or not isinstance(raw, str):
        return b""
    try:
        return base64.b64decode(raw, validate=True).strip()
    except (binascii.Error, ValueError):
        return b""


def webhook_path(token: bytes, name: str, namespace: str) -> str:
    """The hook's path, as Flux derives it: a digest of the token, the name and the namespace."""
    return PATH_PREFIX + hashlib.sha256(token + name.encode() + namespace.encode()).hexdigest()


_last_requested_ns = 0
_requested_lock = threading.Lock()


def requested_at(clock: Callable[[], int] = time.time_ns) -> str:
    """A fresh `gitops.reconcile.dev/requestedAt` value: RFC 3339 with nanoseconds (Flux writes
    RFC3339Nano), fixed-width so later tokens also sort later.

    The controllers treat a request as handled when status.lastHandled... equals the annotation, so
    two requests must never share a value: a second-resolution stamp made two `sync` calls (or two
    webhook pushes) in one second look already handled. Within this process each token is strictly
    later than the one before, even if `clock` stands still or steps back.
    """
    global _last_requested_ns
    with _requested_lock:
        stamp = max(int(clock()), _last_requested_ns + 1)
        _last_requested_ns = stamp
    seconds, nanos = divmod(stamp, 1_000_000_000)
    whole = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{nanos:09d}Z"


def request_patch(now: str) -> dict:
    """The merge patch that asks a GitRepository for an immediate fetch."""
    return {"metadata": {"annotations": {REQUESTED_AT: now}}}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _check_hmac(signature: str | None, header: str, body: bytes, token: bytes,
                algorithms: Mapping[str, object]) -> Decision | None:
    """None when `signature` (`<algorithm>=<hex>`) is the HMAC of `body` under `token`; else a 401."""
    if not signature:
        return Decision(401, f"missing {header} header")
    algorithm, sep, given = signature.strip().partition("=")
    digest = algorithms.get(algorithm.lower()) if sep else None
    if digest is None:
        return Decision(401, f"{header}: expected {' or '.join(a + '=<hex>' for a in algorithms)}")
    expected = hmac.new(token, body, digest).hexdigest()  # type: ignore[arg-type]
    if not hmac.compare_digest(expected.encode(), given.strip().lower().encode("ascii", "replace")):
        return Decision(401, "invalid signature")
    return None


def handle(method: str, headers: Mapping[str, str], body: bytes, receiver: Receiver | None) -> Decision:
    """Decide one request to a receiver's path (`receiver` is None when no receiver has that path)."""
    if receiver is None:
        return Decision(404, "not found")
    if method.upper() != "POST":
        return Decision(405, "only POST is accepted")
    if len(body) > MAX_BODY_BYTES:
        return Decision(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    event = None
    if receiver.type == "generic-hmac":
        refused = _check_hmac(_header(headers, "X-Signature"), "X-Signature", body, receiver.token,
                              _HMAC_ALGORITHMS)
    elif receiver.type == "github":
        refused = _check_hmac(_header(headers, "X-Hub-Signature-256"), "X-Hub-Signature-256", body,
                              receiver.token, {"sha256": hashlib.sha256})
        event = _header(headers, "X-GitHub-Event")
        if refused is None and event == "ping":
            return Decision(200, "pong")
    elif receiver.type == "gitlab":
        given = _header(headers, "X-Gitlab-Token")
        refused = None
        if not given:
            refused = Decision(401, "missing X-Gitlab-Token header")
        elif not hmac.compare_digest(given.encode("utf-8", "replace"), receiver.token):
            refused = Decision(401, "invalid token")
        event = _header(headers, "X-Gitlab-Event")
    elif receiver.type == "generic":
        refused = None
    else:
        return Decision(400, f"receiver type {receiver.type!r} is not one of {', '.join(TYPES)}")
    if refused is not None:
        return refused
    if receiver.events and event not in receiver.events:
        return Decision(200, f"event {event!r} ignored")
    return Decision(200, f"reconciliation requested for {len(receiver.targets)} GitRepositories", receiver.targets)
