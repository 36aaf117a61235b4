"""ServiceAccount tokens: their claims, their keys, and the authenticator that reads them.

As upstream's (pkg/serviceaccount):
- A token is a JWT signed with --service-account-signing-key-file: `iss` (the first
  --service-account-issuer), `sub` = `system:serviceaccount:NS:NAME`, `aud` (the request's audiences,
  else --api-audiences), `exp`, `iat`, `nbf`, `jti`, and the private claim `kubernetes.io` with the
  namespace, the ServiceAccount's name and uid, and the object it is bound to (a Pod, with its Node,
  or a Secret or a Node). Legacy Secret-based tokens are never minted. `tokenrequest` serves the
  API that mints them.
- The authenticator takes only tokens whose (unverified) `iss` is one of the issuers; it verifies
  the signature with the --service-account-key-file keys, the times (one minute of leeway, as
  go-jose's), the audience against the requested ones (--api-audiences), and that the
  ServiceAccount and the bound object still exist with the same uid (read from the watch caches, as
  upstream reads its informers). The user is `system:serviceaccount:NS:NAME` in
  `system:serviceaccounts` and `system:serviceaccounts:NS`, with the pod, node and credential id
  (`JTI=...`) as extra. Any failure is a None (the pipeline's plain 401); the reason is logged and
  shown by TokenReview, never in a 401.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconcile.api import authn, jwts
from reconcile.core import meta
from reconcile.pki import certs

log = logging.getLogger(__name__)

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
GROUP = "authentication.k8s.io"
API_VERSION = f"{GROUP}/v1"
MIN_EXPIRATION = 600  # ten minutes
DEFAULT_EXPIRATION = 3600
MAX_EXPIRATION = 1 << 32
WARN_ONLY_EXPIRATION = 3607  # admission's projected tokens: extended, with a warnafter
EXTENDED_EXPIRATION = 365 * 24 * 3600
LEEWAY = 60  # go-jose's DefaultLeeway
DELETED_GRACE = 60  # a bound object being deleted keeps its tokens this long (upstream's 60 s)
USER_PREFIX = "system:serviceaccount:"
ALL_GROUP = "system:serviceaccounts"
PRIVATE = "kubernetes.io"
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"

# (group, plural, namespace or None, name) -> the object as cached, or None
Lookup = Callable[[str, str, str | None, str], dict[str, Any] | None]


def username(namespace: str, name: str) -> str:
    return f"{USER_PREFIX}{namespace}:{name}"


def groups(namespace: str) -> tuple[str, ...]:
    return (ALL_GROUP, f"{ALL_GROUP}:{namespace}")


class KeyError_(ValueError):
    """A key file that cannot be used: the server does not start."""


@dataclass(frozen=True)
class Settings:
    """The API server's ServiceAccount flags (upstream's names)."""

    issuers: tuple[str, ...] = ()  # --service-account-issuer (repeatable); the first one signs
    key_files: tuple[str, ...] = ()  # --service-account-key-file: verification keys
    signing_key_file: str | None = None  # --service-account-signing-key-file
    api_audiences: tuple[str, ...] = ()  # --api-audiences (default: the issuers)
    max_expiration: int = 0  # --service-account-max-token-expiration, seconds; 0: none
    extend_expiration: bool = True  # --service-account-extend-token-expiration

    @property
    def enabled(self) -> bool:
        return bool(self.signing_key_file or self.key_files)

    def issuer_list(self) -> tuple[str, ...]:
        return self.issuers or (DEFAULT_ISSUER,)

    def audiences(self) -> tuple[str, ...]:
        return self.api_audiences or self.issuer_list()


@dataclass(frozen=True)
class Signer:
    private_pem: bytes
    algorithm: str
    kid: str


def load_keys(settings: Settings) -> tuple[Signer | None, list[jwts.VerificationKey]]:
    """The signing key and the verification keys; the signing key's public half always verifies."""
    signer = None
    verification: list[jwts.VerificationKey] = []
    try:
        if settings.signing_key_file:
            private = Path(settings.signing_key_file).read_bytes()
            public = certs.signing_public_key(private)
            signer = Signer(private, certs.jws_algorithm(private), certs.key_id(public))
            verification.append(jwts.VerificationKey(public, signer.algorithm, signer.kid))
        for path in settings.key_files:
            for public in certs.verification_keys(Path(path).read_bytes()):
                key = jwts.VerificationKey(public, certs.jws_algorithm(public), certs.key_id(public))
                if key not in verification:
                    verification.append(key)
    except OSError as exc:
        raise KeyError_(f"cannot read {exc.filename}: {exc.strerror}") from None
    except certs.CertificateError as exc:
        raise KeyError_(str(exc)) from None
    return signer, verification


def _ref(obj: dict[str, Any]) -> dict[str, str]:
    metadata = obj.get("metadata") or {}
    return {"name": str(metadata.get("name") or ""), "uid": str(metadata.get("uid") or "")}


def claims(*, issuer: str, service_account: dict[str, Any], audiences: Sequence[str], expiration: int,
           now: int, pod: dict[str, Any] | None = None, node: dict[str, Any] | None = None,
           secret: dict[str, Any] | None = None, warn_after: int = 0) -> dict[str, Any]:
    """Upstream's token.Claims: the public and private claims of one token."""
    metadata = service_account.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "")
    private: dict[str, Any] = {"namespace": namespace, "serviceaccount": _ref(service_account)}
    if pod is not None:
        private["pod"] = _ref(pod)
    if secret is not None:
        private["secret"] = _ref(secret)
    if node is not None:
        private["node"] = _ref(node)
    if warn_after:
        private["warnafter"] = now + warn_after
    return {"aud": list(audiences), "exp": now + expiration, "iat": now, "iss": issuer,
            "jti": str(uuid.uuid4()), PRIVATE: private, "nbf": now,
            "sub": username(namespace, str(metadata.get("name") or ""))}


@dataclass
class Review:
    """What the authenticator made of a token it recognised (its issuer)."""

    user: authn.UserInfo | None = None
    audiences: list[str] = field(default_factory=list)
    error: str = ""


def _quoted(values: Sequence[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "]"


class ServiceAccountTokens:
    """The ServiceAccount token authenticator (a `tokens.TokenAuthenticator`)."""

    def __init__(self, keys: Sequence[jwts.VerificationKey], *, issuers: Sequence[str],
                 api_audiences: Sequence[str], lookup: Lookup, clock: Callable[[], float] = time.time) -> None:
        self.keys = list(keys)
        self.issuers = tuple(issuers)
        self.api_audiences = list(api_audiences)
        self.lookup = lookup
        self.clock = clock

    async def authenticate_token(self, token: str) -> authn.UserInfo | None:
        review = self.review(token)
        if review is None:
            return None
        if review.user is None:
            log.info("ServiceAccount token refused: %s", review.error)
        return review.user

    def review(self, token: str, audiences: Sequence[str] | None = None) -> Review | None:
        """None when the token is not one of ours (not a JWT, another issuer); else the user or why not."""
        unverified = jwts.unverified_claims(token)
        if unverified is None or unverified.get("iss") not in self.issuers:
            return None
        try:
            found = jwts.verify(token, self.keys)
        except jwts.TokenError as exc:
            return Review(error=str(exc))
        return self._validate(found, list(audiences) if audiences else self.api_audiences)

    def _validate(self, found: dict[str, Any], requested: list[str]) -> Review:
        raw_aud = found.get("aud")
        token_auds = [raw_aud] if isinstance(raw_aud, str) else raw_aud if isinstance(raw_aud, list) else []
        token_auds = [a for a in token_auds if isinstance(a, str)] or list(self.api_audiences)
        shared = [a for a in token_auds if a in requested]
        if not shared:
            return Review(error=f"token audiences {_quoted(token_auds)} is invalid for the target audiences "
                                f"{_quoted(requested)}")
        now = self.clock()
        for name in ("exp", "nbf", "iat"):
            if name in found and not isinstance(found[name], int | float):
                return Review(error=f"service account token has an invalid {name} claim")
        if "exp" not in found or now > found["exp"] + LEEWAY:
            return Review(error="service account token has expired")
        if "nbf" in found and now + LEEWAY < found["nbf"]:
            return Review(error="service account token is not valid yet")
        if "iat" in found and now + LEEWAY < found["iat"]:
            return Review(error="service account token is issued in the future")
        private = found.get(PRIVATE)
        if not isinstance(private, dict) or not isinstance(private.get("serviceaccount"), dict):
            return Review(error="service account token claims are missing kubernetes claims")
        namespace = private.get("namespace")
        sa_ref = private["serviceaccount"]
        if not isinstance(namespace, str) or not namespace or not isinstance(sa_ref.get("name"), str):
            return Review(error="service account token claims are missing kubernetes claims")
        if found.get("sub") != username(namespace, sa_ref["name"]):
            return Review(error="service account token subject does not match its kubernetes claims")
        sa = self.lookup("", "serviceaccounts", namespace, sa_ref["name"])
        if sa is None or self._gone(sa, now):
            return Review(error="service account token has been invalidated")
        if _ref(sa)["uid"] != sa_ref.get("uid"):
            return Review(error=f"service account UID ({_ref(sa)['uid']}) does not match claim ({sa_ref.get('uid')})")
        extra: dict[str, tuple[str, ...]] = {}
        for kind, plural, scoped in (("pod", "pods", True), ("secret", "secrets", True), ("node", "nodes", False)):
            ref = private.get(kind)
            if ref is None:
                continue
            if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
                return Review(error="service account token claims are malformed")
            obj = self.lookup("", plural, namespace if scoped else None, ref["name"])
            if obj is None or self._gone(obj, now):
                return Review(error="service account token has been invalidated")
            if _ref(obj)["uid"] != ref.get("uid"):
                title = {"pod": "pod", "secret": "secret", "node": "node"}[kind]
                return Review(error=f"{title} UID ({_ref(obj)['uid']}) does not match claim ({ref.get('uid')})")
            if kind == "pod":
                extra[EXTRA_POD_NAME], extra[EXTRA_POD_UID] = (ref["name"],), (str(ref.get("uid")),)
            elif kind == "node":
                extra[EXTRA_NODE_NAME], extra[EXTRA_NODE_UID] = (ref["name"],), (str(ref.get("uid")),)
        jti = found.get("jti")
        if isinstance(jti, str) and jti:
            extra[EXTRA_CREDENTIAL_ID] = (f"JTI={jti}",)
        user = authn.UserInfo(username(namespace, sa_ref["name"]), _ref(sa)["uid"], groups(namespace), extra)
        return Review(user=user, audiences=shared)

    @staticmethod
    def _gone(obj: dict[str, Any], now: float) -> bool:
        """Being deleted for longer than the grace (its tokens end then, as upstream's)."""
        stamp = (obj.get("metadata") or {}).get("deletionTimestamp")
        if not stamp:
            return False
        with contextlib.suppress(ValueError, TypeError):
            return meta.parse_time(stamp).timestamp() + DELETED_GRACE < now
        return True


def parse_duration(text: str) -> int:
    """Seconds of a Go duration flag value ("48h", "1h30m", "3600s", "0"); ValueError otherwise."""
    text = text.strip()
    if text in ("0", ""):
        return 0
    units = {"h": 3600, "m": 60, "s": 1}
    total, number = 0.0, ""
    for char in text:
        if char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            total += float(number) * units[char]
            number = ""
        else:
            raise ValueError(f"invalid duration {text!r}")
    if number:
        raise ValueError(f"invalid duration {text!r}: missing unit")
    return int(total)
