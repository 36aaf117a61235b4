"""Identities from request headers: a test aid for per-user behaviour until real authenticators exist.

With `reconcile apiserver --insecure-identity-headers`, `X-Remote-User` names the caller and each
`X-Remote-Group` header adds a group (the headers of upstream's request-header authentication, but
without the front proxy's client certificate that proves who set them: any caller can claim any user,
so this is no more trusting than `TrustEveryone`, which it falls back to when `X-Remote-User` is
absent). It exists so the audit log and the in-flight limits can be tested with several users against
a real server today. Never for a real cluster: the secured default will refuse the flag.
"""

from __future__ import annotations

from reconcile.api import authn

USER_HEADER = "x-remote-user"
GROUP_HEADER = "x-remote-group"


class HeaderIdentity:
    def __init__(self, fallback: authn.Authenticator) -> None:
        self.fallback = fallback

    async def authenticate(self, credentials: authn.Credentials) -> authn.UserInfo | None:
        headers = credentials.headers
        name = headers.get(USER_HEADER)
        if not name:
            return await self.fallback.authenticate(credentials)
        getlist = getattr(headers, "getlist", None)
        groups = list(getlist(GROUP_HEADER)) if getlist is not None else [g for g in [headers.get(GROUP_HEADER)] if g]
        if "system:authenticated" not in groups:
            groups.append("system:authenticated")  # as upstream adds it to every authenticated user
        return authn.UserInfo(name, groups=tuple(groups))
