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

`build` adds them in upstream's order: x509 client certificates (`clientcerts`, from
`Credentials.peer_certificate`), then bearer tokens (`tokens.TokenAuthenticator`s inside
`tokens.BearerToken`: the static token file, ServiceAccount tokens (`satokens`, built by the
server because it reads the watch caches), bootstrap tokens (`bootstraptokens`, from the Secrets
in the watch cache).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from reconcile.api import authn, bootstraptokens, clientcerts, tokens

AUTHENTICATED = authn.AUTHENTICATED
UNAUTHENTICATED = authn.UNAUTHENTICATED


# user as an authenticator returned it -> (that user, it with system:authenticated). The token file
# answers every request of a user with the same object, so the copy is made once, not per request.
# Keyed by identity (a held entry keeps its id from being reused); bounded for authenticators that
# build a new object per request.
_ADDED: dict[int, tuple[authn.UserInfo, authn.UserInfo]] = {}
_ADDED_SIZE = 1024


def with_authenticated(user: authn.UserInfo) -> authn.UserInfo:
    """Upstream's AuthenticatedGroupAdder."""
    if user.name == authn.ANONYMOUS.name or AUTHENTICATED in user.groups or UNAUTHENTICATED in user.groups:
        return user
    held = _ADDED.get(id(user))
    if held is not None and held[0] is user:
        return held[1]
    added = replace(user, groups=(*user.groups, AUTHENTICATED))
    if len(_ADDED) >= _ADDED_SIZE:
        _ADDED.clear()
    _ADDED[id(user)] = (user, added)
    return added


class Chain:
    """The configured authenticators (upstream's union, `authn.Chain`), then (optionally) anonymous."""

    def __init__(self, authenticators: Sequence[authn.Authenticator], *, anonymous: bool) -> None:
        self.union = authn.Chain(authenticators)
        self.anonymous = anonymous

    async def authenticate(self, credentials: authn.Credentials) -> authn.UserInfo | None:
        user = await self.union.authenticate(credentials)  # a rejected credential nothing else proves: 401
        if user is not None:
            return with_authenticated(user)
        return authn.ANONYMOUS if self.anonymous else None


@dataclass
class Settings:
    """What `build` needs from the server's configuration."""

    client_ca_file: str | None = None  # upstream's --client-ca-file: x509 client certificates
    token_auth_file: str | None = None  # upstream's --token-auth-file (CSV)
    anonymous_auth: bool = True  # requests without credentials are system:anonymous (else 401)
    # ServiceAccount JWTs (satokens.ServiceAccountTokens), when the server has verification keys
    service_account_tokens: tokens.TokenAuthenticator | None = None
    # filled by `build`: the bearer-token authenticators in order (TokenReview asks the same ones)
    token_authenticators: list[tokens.TokenAuthenticator] = field(default_factory=list)
    # upstream's --enable-bootstrap-token-auth: how to read kube-system's Secrets (None: off)
    bootstrap_secrets: bootstraptokens.SecretLookup | None = None


def build(settings: Settings) -> authn.Authenticator:
    """The server's authenticator: `TrustEveryone` when nothing is configured, else the chain."""
    request_authenticators: list[authn.Authenticator] = []
    token_authenticators = settings.token_authenticators
    token_authenticators.clear()
    if settings.client_ca_file:
        request_authenticators.append(clientcerts.ClientCertificates.from_file(settings.client_ca_file))
    if settings.token_auth_file:
        token_authenticators.append(tokens.TokenFile.load(settings.token_auth_file))
    if settings.service_account_tokens is not None:
        token_authenticators.append(settings.service_account_tokens)
    if settings.bootstrap_secrets is not None:
        token_authenticators.append(bootstraptokens.BootstrapTokens(settings.bootstrap_secrets))
    if token_authenticators:
        request_authenticators.append(tokens.BearerToken(token_authenticators))
    if not request_authenticators:
        return authn.TrustEveryone()
    return Chain(request_authenticators, anonymous=settings.anonymous_auth)
