"""The bootstrap token authenticator (upstream's `--enable-bootstrap-token-auth`).

`Bearer <id>.<secret>` proves `system:bootstrap:<id>` (groups `system:bootstrappers` and the
token's `auth-extra-groups`) when the Secret `kube-system/bootstrap-token-<id>` holds that secret,
is not expired and allows `usage-bootstrap-authentication` (`reconcile.core.bootstraptoken`). The
Secret is read from the API server's watch cache, so a lookup costs no etcd round trip and a
deleted or expired token stops working at once. A token of the right shape that nothing proves is a
401 (`tokens.BearerToken`); why is logged, never answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from reconcile.api import authn
from reconcile.core import bootstraptoken

log = logging.getLogger("reconcile.api.authn")

# secret name in kube-system -> the Secret (None: not there)
SecretLookup = Callable[[str], dict[str, Any] | None]


class BootstrapTokens:
    """A `tokens.TokenAuthenticator`: None for tokens of another shape, so the next one is asked."""

    def __init__(self, lookup: SecretLookup) -> None:
        self._lookup = lookup

    async def authenticate_token(self, token: str) -> authn.UserInfo | None:
        parsed = bootstraptoken.parse(token)
        if parsed is None:
            return None
        secret = self._lookup(bootstraptoken.secret_name(parsed.id))
        groups = bootstraptoken.verify(secret, parsed, usage="authentication")
        if groups is None:
            log.info("bootstrap token %s refused (unknown, wrong secret, expired or not for authentication)",
                     parsed.id)
            return None
        return authn.UserInfo(bootstraptoken.USER_PREFIX + parsed.id, groups=groups)
