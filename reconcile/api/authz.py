"""May this user do this: the authorize stage of the request pipeline.

The pipeline builds upstream's authorization `Attributes` for every request (verb, API group,
resource, subresource, namespace, name for resource requests; the path for others) and asks the
configured `Authorizer`. RBAC plugs in here; until then the server runs with `AlwaysAllow`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from reconcile.api import authn
from reconcile.core import selectors

# Verbs of resource requests, as upstream's RequestInfoFactory names them.
READ_VERBS = frozenset({"get", "list", "watch"})


@dataclass(frozen=True, slots=True)
class Attributes:
    user: authn.UserInfo
    verb: str  # get list watch create update patch delete deletecollection (or the HTTP verb, lower case)
    resource_request: bool
    path: str
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    # A list's or watch's fieldSelector terms (upstream's GetFieldSelector, 1.31+): what lets the node
    # authorizer allow `spec.nodeName=<node>` and nothing wider. Empty when none was sent or it did
    # not parse (the handler answers that 400 later).
    field_selector: tuple[selectors.FieldRequirement, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


class Authorizer(Protocol):
    async def authorize(self, attributes: Attributes) -> Decision: ...


class AlwaysAllow:
    """Every request is allowed (the stand-in until RBAC)."""

    ALLOW = Decision(True)

    async def authorize(self, attributes: Attributes) -> Decision:
        return self.ALLOW


def resource_verb(method: str, *, has_name: bool, watch: bool) -> str:
    """Upstream's mapping of an HTTP method on a resource path to an authorization verb."""
    if method in ("GET", "HEAD"):
        if watch:
            return "watch"
        return "get" if has_name else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if has_name else "deletecollection"
    return method.lower()
