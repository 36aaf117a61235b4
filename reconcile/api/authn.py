"""Who is calling: the authenticate stage of the request pipeline.

An `Authenticator` turns a request's credentials into a `UserInfo` (None: it recognises none of
them). The pipeline asks the configured authenticator on every request and refuses with 401 when
no user comes back and anonymous requests are not allowed for the path.

Authenticators compose in a `Chain` (upstream's union authenticator): each is asked in turn and
the first user proven wins, so a request without a client certificate falls through to the next
kind of credential (tokens) and, when nothing proves a user, to anonymous handling in the pipeline.

A server without a client CA (and without other authenticators) is configured with
`TrustEveryone`: every caller acts as a cluster administrator. Its name says what it is, so nobody
mistakes it for a secured default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconcile.core import errors


@dataclass(frozen=True, slots=True)
class UserInfo:
    """Upstream's `user.Info`: a name, a uid, groups and extra attributes."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)


ANONYMOUS = UserInfo("system:anonymous", groups=("system:unauthenticated",))  # see UNAUTHENTICATED
# The API server's own writes (bootstrap namespaces, built-in definitions), as upstream's loopback client.
SERVER = UserInfo("system:apiserver", groups=("system:masters", "system:authenticated"))


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request presents, handed over by the pipeline (so authenticators know no HTTP library)."""

    headers: Mapping[str, str]  # Authorization, impersonation headers, ... (names in any case)
    peer_certificate: bytes | None = None  # DER, when the client authenticated with a TLS certificate


AUTHENTICATED = "system:authenticated"  # the group of every user an authenticator proves
UNAUTHENTICATED = "system:unauthenticated"  # the group of the anonymous user


def describe(user: UserInfo) -> dict[str, Any]:
    """A user as `authentication.k8s.io/v1` `UserInfo`: what reviews answer and audit events record."""
    info: dict[str, Any] = {"username": user.name}
    if user.uid:
        info["uid"] = user.uid
    if user.groups:
        info["groups"] = list(user.groups)
    if user.extra:
        info["extra"] = {k: list(v) for k, v in user.extra.items()}
    return info


class Authenticator(Protocol):
    async def authenticate(self, credentials: Credentials) -> UserInfo | None:
        """The user the credentials prove, or None when they carry nothing this one knows; raises
        `errors.Unauthorized` for a credential it knows and rejects (an invalid certificate)."""
        ...


class Chain:
    """Asks each authenticator in order; the first user proven wins. A rejected credential fails
    the request (401) only when no later authenticator proves a user, as upstream's union does; with
    nothing presented at all the answer is None (anonymous, for the pipeline to allow or refuse)."""

    def __init__(self, authenticators: Iterable[Authenticator]) -> None:
        self.authenticators = tuple(authenticators)

    async def authenticate(self, credentials: Credentials) -> UserInfo | None:
        rejected: errors.Unauthorized | None = None
        for authenticator in self.authenticators:
            try:
                user = await authenticator.authenticate(credentials)
            except errors.Unauthorized as exc:
                rejected = rejected or exc
                continue
            if user is not None:
                return user
        if rejected is not None:
            raise rejected
        return None


class TrustEveryone:
    """Every request is a cluster administrator's (no credentials are read). A stand-in until the
    cluster has credentials; never the default once the security issue is done."""

    USER = UserInfo("system:admin", groups=("system:masters", "system:authenticated"))

    async def authenticate(self, credentials: Credentials) -> UserInfo | None:
        return self.USER
