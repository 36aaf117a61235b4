"""List and watch options as upstream validates them, and continue tokens that cannot be forged.

Pure functions, so the rules of the resourceVersion table (kubernetes-wire-notes 8.2) are tested
without a server. A continue token names the snapshot revision, the last key relative to the list's
own prefix (as upstream's `DecodeContinue` does), and a digest of what was listed (resource,
namespace, selectors): a token made for one list cannot read keys of another, and a changed
selector on a later page is refused instead of silently mixing two lists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

import orjson

from reconcile.core import errors

NOT_OLDER_THAN, EXACT = "NotOlderThan", "Exact"
MATCHES = (NOT_OLDER_THAN, EXACT)
TOKEN_VERSION = "meta.k8s.io/v1"


@dataclass(frozen=True, slots=True)
class ListOptions:
    """A list request's paging and consistency, validated."""

    resource_version: str | None = None  # None: most recent (a consistent read)
    match: str | None = None  # NotOlderThan | Exact | None
    limit: int | None = None
    continue_token: str | None = None

    @property
    def exact_revision(self) -> int | None:
        """The revision to read at exactly (served from etcd's history), or None."""
        if self.resource_version in (None, "", "0"):
            return None
        if self.match == EXACT or (self.match is None and self.limit):
            return int(self.resource_version)
        return None


MAX_REVISION = 2**63 - 1  # etcd revisions are int64


def parse_resource_version(value: str | None, *, what: str = "resourceVersion") -> str | None:
    """'' and None mean unset; otherwise a non-negative decimal integer etcd can reach (400 for anything
    else: a revision beyond int64 never comes, so waiting for it 3 s to answer 504 would only stall)."""
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit():
        raise errors.BadRequest(f'invalid {what} "{value}": must be a non-negative integer')
    digits = value.lstrip("0") or "0"
    if len(digits) > 19 or int(digits) > MAX_REVISION:  # the length first: int() refuses 4,300+ digits
        raise errors.BadRequest(f'invalid {what} "{value[:40]}": must be at most {MAX_REVISION}')
    return digits


def list_options(*, resource_version: str | None, match: str | None, limit: str | None,
                 continue_token: str | None) -> ListOptions:
    rv = parse_resource_version(resource_version)
    match = match or None
    if match is not None and match not in MATCHES:
        raise errors.BadRequest(f'resourceVersionMatch: Unsupported value: "{match}": supported values: '
                                '"Exact", "NotOlderThan"')
    parsed_limit = parse_limit(limit)
    token = continue_token or None
    if match is not None:
        if rv is None:
            raise errors.BadRequest("resourceVersionMatch is forbidden unless resourceVersion is provided")
        if token:
            raise errors.BadRequest("resourceVersionMatch is forbidden when continue is provided")
        if match == EXACT and rv == "0":
            raise errors.BadRequest('resourceVersionMatch "Exact" is forbidden for resourceVersion "0"')
    if token and rv not in (None, "0"):
        raise errors.BadRequest("specifying resource version is not allowed when using continue")
    return ListOptions(resource_version=rv, match=match, limit=parsed_limit, continue_token=token)


def parse_limit(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        limit = int(value)
    except ValueError:
        raise errors.BadRequest(f'invalid value for limit: "{value}": must be an integer') from None
    if limit < 0:
        raise errors.BadRequest(f"limit: Invalid value: {limit}: must be greater than or equal to 0")
    return limit or None  # 0: no limit, as upstream


def scope_digest(prefix: str, selection: str) -> str:
    """What a token is bound to: the listed prefix (resource and namespace) and the selectors."""
    return hashlib.sha256(f"{prefix}\0{selection}".encode()).hexdigest()[:16]


def encode_continue(revision: int, last_key: str, *, prefix: str, selection: str) -> str:
    """A token for the page after `last_key` (an absolute store key under `prefix`)."""
    assert last_key.startswith(prefix)
    raw = orjson.dumps({"v": TOKEN_VERSION, "rv": revision, "start": last_key[len(prefix):],
                        "scope": scope_digest(prefix, selection)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str, *, prefix: str, selection: str) -> tuple[int, str]:
    """(revision, the absolute key to continue after); 400 for a token not made for this list."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        version, revision, start, scope = data["v"], data["rv"], data["start"], data["scope"]
    except (binascii.Error, ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise errors.BadRequest("continue key is not valid: illegal base64 data or unknown format") from None
    if version != TOKEN_VERSION or not isinstance(revision, int) or isinstance(revision, bool) or revision <= 0:
        raise errors.BadRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    if not isinstance(start, str) or not start or "\0" in start or any(p in ("", ".", "..") for p in start.split("/")):
        raise errors.BadRequest("continue key is not valid: the start key must be a relative key")
    if scope != scope_digest(prefix, selection):
        raise errors.BadRequest("continue key is not valid: it was made for a different list "
                                "(resource, namespace or selectors changed)")
    return revision, prefix + start
