"""Impersonation: `Impersonate-User`, `-Group`, `-Uid` and `-Extra-<key>` headers (`kubectl --as`).

A pipeline step between authenticate and authorize, as upstream's WithImpersonation filter: each
thing asked for is authorized separately as the verb `impersonate` (users, groups, uids,
userextras/<key>, or the ServiceAccount itself for `system:serviceaccount:NS:NAME`); the first
refusal is a 403 naming it, and only when every part is allowed does the request go on as the
other user. Groups, uid and extras without a user are refused (upstream answers that with 500).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

from reconcile.api import authn, authz
from reconcile.core import errors

USER, GROUP, UID = "impersonate-user", "impersonate-group", "impersonate-uid"
EXTRA_PREFIX = "impersonate-extra-"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
AUTHENTICATED, UNAUTHENTICATED = "system:authenticated", "system:unauthenticated"
VERB = "impersonate"


def _values(headers: Mapping[str, str], name: str) -> list[str]:
    getlist = getattr(headers, "getlist", None)
    if getlist is not None:
        return list(getlist(name))
    value = headers.get(name)
    return [value] if value is not None else []


def _extra_headers(headers: Mapping[str, str]) -> dict[str, list[str]]:
    extra: dict[str, list[str]] = {}
    raw = getattr(headers, "raw", None)
    pairs: list[tuple[str, str]]
    if raw is not None:
        pairs = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]
    else:
        pairs = [(k.lower(), v) for k, v in headers.items()]
    for name, value in pairs:
        if name.startswith(EXTRA_PREFIX):
            key = urllib.parse.unquote(name[len(EXTRA_PREFIX):])
            extra.setdefault(key, []).append(value)
    return extra


def requested(headers: Mapping[str, str]) -> bool:
    """Whether the request asks to impersonate anyone (the cheap check every request pays)."""
    raw = getattr(headers, "raw", None)
    if raw is not None:
        return any(k[:12].lower() == b"impersonate-" for k, _ in raw)
    return any(k.lower().startswith("impersonate-") for k in headers)


class Refused(Exception):
    """One part of an impersonation is not authorized; the pipeline answers 403 for `attributes`."""

    def __init__(self, attributes: authz.Attributes, reason: str) -> None:
        super().__init__(reason)
        self.attributes = attributes
        self.reason = reason


def _split_service_account(name: str) -> tuple[str, str] | None:
    if not name.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    parts = name[len(SERVICE_ACCOUNT_PREFIX):].split(":")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


async def impersonate(headers: Mapping[str, str], requester: authn.UserInfo,
                      authorizer: authz.Authorizer, *, path: str = "") -> authn.UserInfo:
    """The user the request acts as: `requester`, or the impersonated user when every part of the
    impersonation is authorized (else `Refused`, for the pipeline's 403)."""
    username = headers.get(USER) or ""
    groups_asked = _values(headers, GROUP)
    uid = headers.get(UID) or ""
    extra = _extra_headers(headers)
    if not username:
        if groups_asked or uid or extra:
            asked = [f"groups {groups_asked}" if groups_asked else "", f"uid {uid!r}" if uid else "",
                     f"extra {sorted(extra)}" if extra else ""]
            raise errors.InternalError("Internal error occurred: requested "
                                       + ", ".join(a for a in asked if a) + " without impersonating a user")
        return requester
    checks: list[tuple[str, str, str, str, str]] = []  # (group, resource, subresource, namespace, name)
    groups: list[str] = []
    service_account = _split_service_account(username)
    if service_account is not None:
        namespace, name = service_account
        checks.append(("", "serviceaccounts", "", namespace, name))
        if not groups_asked:
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    else:
        checks.append(("", "users", "", "", username))
    for group in groups_asked:
        checks.append(("", "groups", "", "", group))
        groups.append(group)
    if uid:
        checks.append(("authentication.k8s.io", "uids", "", "", uid))
    for key, values in extra.items():
        for value in values:
            checks.append(("authentication.k8s.io", "userextras", key, "", value))
    for api_group, resource, subresource, namespace, name in checks:
        attributes = authz.Attributes(requester, VERB, True, path, api_group, "", resource, subresource, namespace,
                                      name)
        decision = await authorizer.authorize(attributes)
        if not decision.allowed:
            raise Refused(attributes, decision.reason)
    if username != authn.ANONYMOUS.name:
        if AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
            groups.append(AUTHENTICATED)
    elif UNAUTHENTICATED not in groups:
        groups.append(UNAUTHENTICATED)
    return authn.UserInfo(username, uid, tuple(groups), {k: tuple(v) for k, v in extra.items()})
