"""The authentication chain: which authenticators the server asks, and what it adds to their answer.

Upstream's union of request authenticators: each is asked in order and the first user proven
wins; an authenticator that finds bad credentials (an unknown bearer token, a certificate that
does not verify) raises `errors.Unauthorized`, which counts only if no other proves a user.
Every user proven gets the group `system:authenticated`. A request with no credentials at all is
`system:anonymous` (group `system:unauthenticated`) when anonymous requests are enabled
(`--anonymous-auth`, the default, as upstream), and otherwise unauthenticated (the pipeline
answers 401 except on its public paths).

With no authenticator configured the server keeps `authn.TrustEveryone` (every caller an
administrator), so nothing changes until a flag asks for authentication.

Extension point: the x509 client-certificate authenticator (it reads `Credentials.peer_certificate`)
and the ServiceAccount and bootstrap-token authenticators (`tokens.TokenAuthenticator`s inside
`tokens.BearerToken`) are added in `build`, in upstream's order: x509, then bearer tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from reconcile.api import authn, tokens
from reconcile.core import errors

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"


def with_authenticated(user: authn.UserInfo) -> authn.UserInfo:
    """Upstream's AuthenticatedGroupAdder."""
    if user.name == authn.ANONYMOUS.name or AUTHENTICATED in user.groups or UNAUTHENTICATED in user.groups:
        return user
    return replace(user, groups=(*user.groups, AUTHENTICATED))


class Chain:
    """The configured authenticators in order, then (optionally) anonymous."""

    def __init__(self, authenticators: Sequence[authn.Authenticator], *, anonymous: bool) -> None:
        self.authenticators = list(authenticators)
        self.anonymous = anonymous

    async def authenticate(self, credentials: authn.Credentials) -> authn.UserInfo | None:
        failure: errors.Unauthorized | None = None
        for authenticator in self.authenticators:
            try:
                user = await authenticator.authenticate(credentials)
            except errors.Unauthorized as exc:
                failure = failure or exc
                continue
            if user is not None:
                return with_authenticated(user)
        if failure is not None:
            raise errors.Unauthorized("Unauthorized")  # never says which credential failed, or why
        return authn.ANONYMOUS if self.anonymous else None


@dataclass
class Settings:
    """What `build` needs from the server's configuration."""

    token_auth_file: str | None = None  # upstream's --token-auth-file (CSV)
    anonymous_auth: bool = True  # requests without credentials are system:anonymous (else 401)


def build(settings: Settings) -> authn.Authenticator:
    """The server's authenticator: `TrustEveryone` when nothing is configured, else the chain."""
    request_authenticators: list[authn.Authenticator] = []
    token_authenticators: list[tokens.TokenAuthenticator] = []
    if settings.token_auth_file:
        token_authenticators.append(tokens.TokenFile.load(settings.token_auth_file))
    if token_authenticators:
        request_authenticators.append(tokens.BearerToken(token_authenticators))
    if not request_authenticators:
        return authn.TrustEveryone()
    return Chain(request_authenticators, anonymous=settings.anonymous_auth)
