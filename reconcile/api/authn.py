"""Who is calling: the authenticate stage of the request pipeline.

An `Authenticator` turns a request's credentials into a `UserInfo` (None: it recognises none of
them). The pipeline asks the configured authenticator on every request and refuses with 401 when
no user comes back and anonymous requests are not allowed for the path.

Until the security issue lands, the server is configured with `TrustEveryone`: every caller acts
as a cluster administrator. Its name says what it is, so nobody mistakes it for a secured default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class UserInfo:
    """Upstream's `user.Info`: a name, a uid, groups and extra attributes."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)


ANONYMOUS = UserInfo("system:anonymous", groups=("system:unauthenticated",))
# The API server's own writes (bootstrap namespaces, built-in definitions), as upstream's loopback client.
SERVER = UserInfo("system:apiserver", groups=("system:masters", "system:authenticated"))


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request presents, handed over by the pipeline (so authenticators know no HTTP library)."""

    headers: Mapping[str, str]  # Authorization, impersonation headers, ... (names in any case)
    peer_certificate: bytes | None = None  # DER, when the client authenticated with a TLS certificate


class Authenticator(Protocol):
    async def authenticate(self, credentials: Credentials) -> UserInfo | None:
        """The user the credentials prove, or None when they carry nothing this one knows."""
        ...


class TrustEveryone:
    """Every request is a cluster administrator's (no credentials are read). A stand-in until the
    cluster has credentials; never the default once the security issue is done."""

    USER = UserInfo("system:admin", groups=("system:masters", "system:authenticated"))

    async def authenticate(self, credentials: Credentials) -> UserInfo | None:
        return self.USER
