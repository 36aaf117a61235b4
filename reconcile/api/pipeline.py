"""The one path every API request takes, as named stages.

    decode      what is asked: a resource request (`RequestInfo` and its verb) or a non-resource path;
                query options and bodies are decoded later, bounded, by the stage that needs them
    authenticate  who asks (`authn`); 401 when nobody is proven and the path is not public
    impersonate   act as another user (`impersonation`), when the headers ask and `authz` allows it
    authorize   may they (`authz`); 403 when not (401 for an anonymous caller: log in first);
                the public paths are answered to anyone
    admit       mutating, then validating admission plugins (`admission`), run by `rest` on each write
    validate    schema (`validation`) and per-kind rules (`strategies`), run by `rest`
    store       compare-and-swap in etcd (`rest`), reads from the watch cache
    encode      the response: JSON, a Table, a watch stream (`handlers`)

The first three run here for every request, resource or not; a request for a resource then goes
straight to `handlers.ResourceHandlers.serve` (nearly all traffic: no router, no middleware), the
rest (discovery, OpenAPI, health, version) to the Starlette app. Errors of any stage become a
Kubernetes `Status` in one place (`error_response`). A fast path may skip work, never a stage.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from reconcile.api import authn, authz, http, impersonation, routing
from reconcile.core import errors

log = logging.getLogger("reconcile.api")

RESOURCE_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
# Answered to anyone, as upstream's system:public-info-viewer allows.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/livez", "/version", "/version/"})

ResourceEndpoint = Callable[[Request, routing.RequestInfo, str, authn.UserInfo], Awaitable[Response]]
AsgiApp = Callable[[Any, Any, Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Target:
    """The decode stage's answer: what the request asks for."""

    path: str
    verb: str
    info: routing.RequestInfo | None  # None: a non-resource path (discovery, OpenAPI, health, ...)


class Pipeline:
    """The API server's ASGI application."""

    def __init__(self, *, resources: ResourceEndpoint, others: AsgiApp,
                 authenticator: authn.Authenticator, authorizer: authz.Authorizer) -> None:
        self.resources = resources
        self.others = others
        self.authenticator = authenticator
        self.authorizer = authorizer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan
            await self.others(scope, receive, send)
            return
        request = http.ApiRequest(scope, receive)
        try:
            target = decode(request)
            requester = await self.authenticate(request, target)
            user = await self.impersonate(request, requester, target)
            await self.authorize(user, target, anonymous=requester.name == authn.ANONYMOUS.name)
            if target.info is None:
                await self.others(scope, receive, send)
                return
            response = await self.resources(request, target.info, target.verb, user)
        except ClientDisconnect:
            return
        except Exception as exc:  # every stage's failure is a Status, never a traceback
            response = error_response(exc, request)
        await response(scope, receive, send)

    async def authenticate(self, request: Request, target: Target) -> authn.UserInfo:
        user = await self.authenticator.authenticate(authn.Credentials(request.headers))
        if user is not None:
            return user
        if target.path in PUBLIC_PATHS:
            return authn.ANONYMOUS
        raise errors.Unauthorized("Unauthorized")

    async def impersonate(self, request: Request, requester: authn.UserInfo, target: Target) -> authn.UserInfo:
        headers = request.headers
        if not impersonation.requested(headers):
            return requester
        try:
            return await impersonation.impersonate(headers, requester, self.authorizer, path=target.path)
        except impersonation.Refused as refused:
            raise forbidden(refused.attributes, refused.reason) from None

    async def authorize(self, user: authn.UserInfo, target: Target, *, anonymous: bool = False) -> None:
        info = target.info
        if info is None:
            attributes = authz.Attributes(user, target.verb, False, target.path)
        else:
            namespace = info.namespace or ""
            if not namespace and info.plural == "namespaces" and not info.group and info.name:
                namespace = info.name  # upstream's RequestInfo: a namespace is in itself
            attributes = authz.Attributes(user, target.verb, True, target.path, info.group, info.version,
                                          info.plural or "", info.subresource or "", namespace, info.name or "")
        decision = await self.authorizer.authorize(attributes)
        if not decision.allowed:
            if info is None and target.path in PUBLIC_PATHS:
                return  # health and version answer anyone, whatever the policy says
            if anonymous:
                raise errors.Unauthorized("Unauthorized")  # says nothing of what exists or is allowed
            raise forbidden(attributes, decision.reason)


def decode(request: Request) -> Target:
    """The decode stage: a resource request's `RequestInfo` and verb, or a non-resource path."""
    scope = request.scope
    path, method = scope["path"], scope["method"]
    if method in RESOURCE_METHODS and is_resource_path(path):
        info = routing.parse(path)  # not request.url: building a URL costs ~5% of a GET
        if info.plural is not None:
            watch = method == "GET" and info.name is None and http.query_bool(request, "watch")
            return Target(path, authz.resource_verb(method, has_name=info.name is not None, watch=watch), info)
    return Target(path, method.lower(), None)


def is_resource_path(path: str) -> bool:
    """`/api/{version}/...` or `/apis/{group}/{version}/...` (not the group and version indexes above them)."""
    if path.startswith("/api/"):
        return len(path) > 5 and path[5] != "/"
    if path.startswith("/apis/"):
        return path.count("/") >= 3 and not path.endswith("/") or path.count("/") >= 4
    return False


def forbidden(attributes: authz.Attributes, reason: str) -> errors.Forbidden:
    """Upstream's wording (responsewriters.Forbidden + errors.NewForbidden):
    `deployments.apps "x" is forbidden: User "u" cannot get resource "deployments" in API group "apps" ...`,
    with details {name, group, kind: the plural}."""
    user = attributes.user.name
    if not attributes.resource_request:
        message = f'forbidden: User "{user}" cannot {attributes.verb} path "{attributes.path}"'
        details = None
    else:
        resource = attributes.resource + (f"/{attributes.subresource}" if attributes.subresource else "")
        group = f' in API group "{attributes.api_group}"'
        scope = f' in the namespace "{attributes.namespace}"' if attributes.namespace else " at the cluster scope"
        qualified = f"{attributes.resource}.{attributes.api_group}" if attributes.api_group else attributes.resource
        what = f'{qualified} "{attributes.name}"' if attributes.name else qualified
        message = f'{what} is forbidden: User "{user}" cannot {attributes.verb} resource "{resource}"{group}{scope}'
        details = {"name": attributes.name, "kind": attributes.resource} if attributes.name else \
            {"kind": attributes.resource}
        if attributes.api_group:
            details["group"] = attributes.api_group
    if reason:
        message += f": {reason}"
    return errors.Forbidden(message, details=details)


def error_response(exc: BaseException, request: Request) -> Response:
    """Any failure as a Kubernetes Status: ApiErrors as they are, storage trouble as 503/500, and a
    bug as a logged 500 whose message names the exception (never a traceback on the wire)."""
    if isinstance(exc, errors.ApiError):
        return http.status_response(exc)
    if isinstance(exc, errors.StoreUnavailable):
        return http.status_response(errors.ServiceUnavailable(f"storage is unavailable: {exc}"))
    if isinstance(exc, errors.StorageError):
        return http.status_response(errors.InternalError(f"Internal error occurred: {exc}"))
    if isinstance(exc, RecursionError):  # a backstop: bodies are depth-limited when decoded
        return http.status_response(errors.BadRequest("the request is nested too deeply to process"))
    log.error("internal error serving %s %s", request.method, request.scope.get("path"), exc_info=exc)
    return http.status_response(errors.InternalError(f"Internal error occurred: {exc}",
                                                     details={"causes": [{"message": str(exc)}]}))
