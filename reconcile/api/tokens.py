"""Bearer tokens: the `Authorization: Bearer <token>` authenticator and the static token file.

`BearerToken` is a request authenticator (`authn.Authenticator`) that hands the token to each of
its `TokenAuthenticator`s in turn. A request that presents a bearer token none of them accepts is
refused with 401 (upstream's "invalid bearer token"), never treated as anonymous.

Extension point: bootstrap tokens (`bootstrap-token-<id>` Secrets in kube-system) and
ServiceAccount JWTs are further `TokenAuthenticator`s appended to `BearerToken.authenticators`
(see `authenticators.build`); each returns None for tokens that are not its kind.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from reconcile.api import authn
from reconcile.core import errors

log = logging.getLogger(__name__)


class TokenAuthenticator(Protocol):
    async def authenticate_token(self, token: str) -> authn.UserInfo | None:
        """The user `token` proves, or None when this authenticator does not know it."""
        ...


def _digest(token: str) -> bytes:
    # Tokens are looked up by digest: the table never holds them, and a lookup's timing says
    # nothing about how close a guess was.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class TokenFile:
    """Upstream's `--token-auth-file`: CSV lines `token,user,uid[,"group1,group2"]`, read once at start."""

    def __init__(self, users: dict[bytes, authn.UserInfo]) -> None:
        self._users = users

    @classmethod
    def load(cls, path: str | Path) -> TokenFile:
        return cls.parse(Path(path).read_text(encoding="utf-8"), source=str(path))

    @classmethod
    def parse(cls, text: str, *, source: str = "<token file>") -> TokenFile:
        users: dict[bytes, authn.UserInfo] = {}
        number = 0
        for record in csv.reader(io.StringIO(text), skipinitialspace=False):
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # a blank line
            if len(record) < 3:
                raise ValueError(f"token file '{source}' must have at least 3 columns (token, user name, user uid), "
                                 f"found {len(record)}")
            number += 1
            token, name, uid = record[0], record[1], record[2]
            if not token:
                log.warning("empty token has been found in token file '%s', record number '%d'", source, number)
                continue
            groups = tuple(g for g in record[3].split(",")) if len(record) >= 4 and record[3] else ()
            key = _digest(token)
            if key in users:
                log.warning("duplicate token has been found in token file '%s', record number '%d'", source, number)
            users[key] = authn.UserInfo(name, uid, groups)
        return cls(users)

    def __len__(self) -> int:
        return len(self._users)

    async def authenticate_token(self, token: str) -> authn.UserInfo | None:
        return self._users.get(_digest(token))


def bearer_token(credentials: authn.Credentials) -> str | None:
    """The token of `Authorization: Bearer <token>` (scheme in any case), or None."""
    header = credentials.headers.get("authorization")
    if not header:
        return None
    parts = header.split(" ")
    if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
        return None
    return parts[1]


class BearerToken:
    """A request authenticator over token authenticators; an unknown token is a 401."""

    def __init__(self, authenticators: Sequence[TokenAuthenticator]) -> None:
        self.authenticators = list(authenticators)

    async def authenticate(self, credentials: authn.Credentials) -> authn.UserInfo | None:
        token = bearer_token(credentials)
        if token is None:
            return None
        for authenticator in self.authenticators:
            user = await authenticator.authenticate_token(token)
            if user is not None:
                return user
        raise errors.Unauthorized("Unauthorized")
