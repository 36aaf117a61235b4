"""Bootstrap tokens as upstream stores them: one Secret per token, read by the API server's
authenticator, written by `reconcile token create`, removed by the tokencleaner when expired.

    kind: Secret
    metadata: {name: bootstrap-token-<id>, namespace: kube-system}
    type: bootstrap.kubernetes.io/token
    data (base64): token-id: <id>  token-secret: <secret>  expiration: <RFC 3339>
                   usage-bootstrap-authentication: "true"  usage-bootstrap-signing: "true"
                   auth-extra-groups: system:bootstrappers:<x>,...  description: ...

A token is `<id>.<secret>`, id `[a-z0-9]{6}` (public: it names the Secret) and secret `[a-z0-9]{16}`.
The authenticated user is `system:bootstrap:<id>` in `system:bootstrappers` plus the extra groups
(each must start with `system:bootstrappers:`, as upstream validates them).
"""

from __future__ import annotations

import base64
import datetime
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

SECRET_TYPE = "bootstrap.kubernetes.io/token"
NAMESPACE = "kube-system"
NAME_PREFIX = "bootstrap-token-"
USER_PREFIX = "system:bootstrap:"
GROUP = "system:bootstrappers"
EXTRA_GROUP_PREFIX = "system:bootstrappers:"
DEFAULT_EXTRA_GROUP = "system:bootstrappers:kubeadm:default-node-token"  # what `kubeadm token create` adds

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
ID_RE = re.compile(r"^[a-z0-9]{6}$")
EXTRA_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"

ID_KEY, SECRET_KEY, EXPIRATION_KEY = "token-id", "token-secret", "expiration"
USAGE_AUTHENTICATION, USAGE_SIGNING = "usage-bootstrap-authentication", "usage-bootstrap-signing"
EXTRA_GROUPS_KEY, DESCRIPTION_KEY = "auth-extra-groups", "description"


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    secret: str

    def __str__(self) -> str:
        return f"{self.id}.{self.secret}"


def parse(text: str) -> Token | None:
    """`<id>.<secret>`, or None when the text is not a bootstrap token's shape."""
    found = TOKEN_RE.match(text)
    return Token(found.group(1), found.group(2)) if found else None


def generate() -> Token:
    """A new token from the system's CSPRNG (kubeadm's alphabet and lengths)."""
    return Token("".join(secrets.choice(ALPHABET) for _ in range(6)),
                 "".join(secrets.choice(ALPHABET) for _ in range(16)))


def secret_name(token_id: str) -> str:
    return NAME_PREFIX + token_id


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def rfc3339(at: datetime.datetime) -> str:
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_secret(token: Token, *, ttl: datetime.timedelta | None, description: str = "",
               extra_groups: tuple[str, ...] = (DEFAULT_EXTRA_GROUP,), usages: tuple[str, ...] = ("authentication", "signing"),
               now: datetime.datetime | None = None) -> dict[str, Any]:
    """The Secret `kubeadm token create` writes for `token` (no expiration when `ttl` is None or zero)."""
    for extra in extra_groups:
        if not EXTRA_GROUP_RE.match(extra):
            raise ValueError(f"auth-extra-group {extra!r} does not match the required pattern "
                             f"{EXTRA_GROUP_RE.pattern}")
    data = {ID_KEY: token.id, SECRET_KEY: token.secret}
    if ttl:
        data[EXPIRATION_KEY] = rfc3339((now or datetime.datetime.now(datetime.UTC)) + ttl)
    for usage in usages:
        data[f"usage-bootstrap-{usage}"] = "true"
    if extra_groups:
        data[EXTRA_GROUPS_KEY] = ",".join(extra_groups)
    if description:
        data[DESCRIPTION_KEY] = description
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": secret_name(token.id), "namespace": NAMESPACE},
            "data": {k: _b64(v) for k, v in data.items()}}


def data_value(secret: dict[str, Any], key: str) -> str:
    """A data field decoded ("" when missing or not base64)."""
    raw = (secret.get("data") or {}).get(key)
    if not isinstance(raw, str):
        return ""
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return ""


def expiration(secret: dict[str, Any]) -> datetime.datetime | None:
    """When the token ends (None: never); an unparsable expiration is treated as already past."""
    text = data_value(secret, EXPIRATION_KEY)
    if not text:
        return None
    try:
        at = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.datetime.min.replace(tzinfo=datetime.UTC)
    return at if at.tzinfo else at.replace(tzinfo=datetime.UTC)


def expired(secret: dict[str, Any], now: datetime.datetime | None = None) -> bool:
    at = expiration(secret)
    return at is not None and at <= (now or datetime.datetime.now(datetime.UTC))


def extra_groups(secret: dict[str, Any]) -> tuple[str, ...] | None:
    """The auth-extra-groups, or None when one of them is not valid (then the token is refused)."""
    text = data_value(secret, EXTRA_GROUPS_KEY)
    groups = tuple(g.strip() for g in text.split(",") if g.strip()) if text else ()
    if any(not EXTRA_GROUP_RE.match(g) for g in groups):
        return None
    return groups


def verify(secret: dict[str, Any] | None, token: Token, *, usage: str,
           now: datetime.datetime | None = None) -> tuple[str, ...] | None:
    """The token's groups when `secret` proves `token` for `usage` ("authentication" or "signing"):
    of the right type, not being deleted, the same id, the same secret (compared in constant time),
    not expired, the usage enabled, valid extra groups. None otherwise."""
    if not isinstance(secret, dict) or secret.get("type") != SECRET_TYPE:
        return None
    if (secret.get("metadata") or {}).get("deletionTimestamp"):
        return None
    if data_value(secret, ID_KEY) != token.id:
        return None
    if not hmac.compare_digest(data_value(secret, SECRET_KEY).encode(), token.secret.encode()):
        return None
    if expired(secret, now):
        return None
    if data_value(secret, f"usage-bootstrap-{usage}") != "true":
        return None
    extra = extra_groups(secret)
    if extra is None:
        return None
    return tuple(dict.fromkeys((GROUP, *extra)))
