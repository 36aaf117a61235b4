"""The one path every API request takes, as named stages.

    decode      what is asked: a resource request (`RequestInfo` and its verb) or a non-resource path;
                query options and bodies are decoded later, bounded, by the stage that needs them
    authenticate  who asks (`authn`); 401 when nobody is proven and the path is not public
    audit       the policy's level for this request, and its events (`audit`), when auditing is on;
                a request refused before this point is audited as `system:anonymous`
    impersonate   act as another user (`impersonation`), when the headers ask and `authz` allows it;
                the audit event names both users
    limit       a seat among the requests in flight (`flowcontrol`), when limits are on; 429 when none
                is free. Long-running requests (watches, exec, logs) take none
    authorize   may they (`authz`); 403 when not (401 for an anonymous caller: log in first);
                the public paths are answered to anyone
    admit       mutating, then validating admission plugins (`admission`), run by `rest` on each write
    validate    schema (`validation`) and per-kind rules (`strategies`), run by `rest`
    store       compare-and-swap in etcd (`rest`), reads from the watch cache
    encode      the response: JSON, a Table, a watch stream (`handlers`)

The first five run here for every request, resource or not; a request for a resource then goes
straight to `handlers.ResourceHandlers.serve` (nearly all traffic: no router, no middleware), the
rest (discovery, OpenAPI, health, version) to the Starlette app. Errors of any stage become a
Kubernetes `Status` in one place (`error_response`). A fast path may skip work, never a stage: with
auditing and limits off (their default for now) those two stages cost one attribute test each.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from reconcile.api import audit, authn, authz, flowcontrol, http, impersonation, routing
from reconcile.core import errors, selectors, webhookreceiver

log = logging.getLogger("reconcile.api")

RESOURCE_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
# Answered to anyone, as upstream's system:public-info-viewer allows.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/livez", "/version", "/version/"})
# Answered to anyone too, because the request proves itself: a GitOps Receiver's hook, whose path is
# a digest of a secret token and whose body is signed with it (`gitopshooks`).
PUBLIC_PREFIXES = (webhookreceiver.PATH_PREFIX,)

ResourceEndpoint = Callable[[Request, routing.RequestInfo, str, authn.UserInfo], Awaitable[Response]]
AsgiApp = Callable[[Any, Any, Any], Awaitable[None]]
# a WebSocket upgrade of a resource (pods/exec, attach, portforward): (scope, receive, send, info, user)
UpgradeEndpoint = Callable[[Any, Any, Any, routing.RequestInfo, authn.UserInfo], Awaitable[None]]
# Subresources that run code or reach into a pod: a WebSocket GET to them is also authorized as
# `create`, as kube-apiserver does since 1.35 (AuthorizePodWebsocketUpgradeCreatePermission): before,
# `get` on pods/exec let a "read-only" role exec through the WebSocket endpoint.
CREATE_ON_UPGRADE = frozenset({"exec", "attach", "portforward"})


@dataclass(frozen=True, slots=True)
class Target:
    """The decode stage's answer: what the request asks for."""

    path: str
    verb: str
    info: routing.RequestInfo | None  # None: a non-resource path (discovery, OpenAPI, health, ...)
    long_running: bool = False  # a watch, exec, attach, port-forward, proxy or log: held open by design
    # A list or watch: its fieldSelector's terms, and the name it pins with `metadata.name=` (upstream's
    # RequestInfo names such a request's object, so RBAC's resourceNames and the node authorizer see it).
    field_selector: tuple[selectors.FieldRequirement, ...] = ()
    selector_name: str = ""


class Pipeline:
    """The API server's ASGI application.

    `auditor` (None: auditing off) and `limiter` (None: no in-flight limits) are the audit and
    limit stages.
    """

    def __init__(self, *, resources: ResourceEndpoint, others: AsgiApp,
                 authenticator: authn.Authenticator, authorizer: authz.Authorizer,
                 auditor: audit.Auditor | None = None, limiter: flowcontrol.Limiter | None = None,
                 upgrades: UpgradeEndpoint | None = None) -> None:
        self.resources = resources
        self.upgrades = upgrades
        self.others = others
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.auditor = auditor
        self.limiter = limiter

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await self.serve_websocket(scope, receive, send)
            return
        if scope["type"] != "http":  # lifespan
            await self.others(scope, receive, send)
            return
        tap = None
        if self.auditor is not None:
            receive = tap = audit.BodyTap(receive)
        request = http.ApiRequest(scope, receive)
        target: Target | None = None
        audited = False  # the audit stage has run (its record is None when the policy says None)
        record: audit.RequestAudit | None = None
        seat: flowcontrol.Seat | None = None
        try:
            try:
                target = decode(request)
                requester = await self.authenticate(request, target)
                attributes = authorization_attributes(requester, target)
                if self.auditor is not None:
                    audited = True
                    record = self.begin_audit(request, attributes, tap, target.long_running)
                user = await self.impersonate(request, requester, target)
                if user is not requester:  # the audit event keeps the requester; the rest acts as the user
                    attributes = authorization_attributes(user, target)
                if self.limiter is not None and not target.long_running:
                    seat = self.limiter.acquire(user, target.verb)
                await self.authorize(attributes, record, anonymous=requester.name == authn.ANONYMOUS.name)
                if target.info is None:
                    await self.serve_others(scope, receive, send, record)
                    return
                response = await self.resources(request, target.info, target.verb, user)
            except ClientDisconnect:
                if record is not None:
                    record.responded(500, None)
                    record.complete()
                return
            except Exception as exc:  # every stage's failure is a Status, never a traceback
                response = error_response(exc, request)
                if self.auditor is not None and not audited:  # refused before the audit stage
                    anonymous = authorization_attributes(authn.ANONYMOUS, target or Target(
                        scope["path"], scope["method"].lower(), None))
                    record = self.begin_audit(request, anonymous, tap, False)
            await self.send_response(response, scope, receive, send, record)
        finally:
            if seat is not None:
                seat.release()
            if record is not None:
                record.deactivate()

    async def serve_websocket(self, scope: Any, receive: Any, send: Any) -> None:
        """A WebSocket upgrade (a GET): the decode, authenticate, impersonate and authorize stages as
        for any request, then the upgrade endpoint. A refusal is answered before the handshake as
        an HTTP Status response (the ASGI denial-response extension), so clients see the 401/403/404
        they would for a plain GET. Not audited yet, and holding no seat (long-running). The endpoint raises only
        before it accepts the upgrade; after that it reports errors on the stream itself."""
        request = http.ApiRequest(dict(scope, type="http", method="GET"), receive)
        try:
            target = decode(request)
            if target.info is None or target.info.plural is None or self.upgrades is None:
                raise errors.no_such_resource()
            requester = await self.authenticate(request, target)
            user = await self.impersonate(request, requester, target)
            anonymous = requester.name == authn.ANONYMOUS.name
            attributes = authorization_attributes(user, target)
            await self.authorize(attributes, anonymous=anonymous)
            if target.info.subresource in CREATE_ON_UPGRADE:
                await self.authorize(authorization_attributes(user, Target(
                    target.path, "create", target.info, True)), anonymous=anonymous)
            await self.upgrades(scope, receive, send, target.info, user)  # raises only before its handshake
        except Exception as exc:
            await deny_websocket(error_response(exc, request), scope, receive, send)

    def begin_audit(self, request: Request, attributes: authz.Attributes, tap: audit.BodyTap | None,
                    long_running: bool) -> audit.RequestAudit | None:
        assert self.auditor is not None
        record = self.auditor.begin(attributes, scope=request.scope, tap=tap, long_running=long_running)
        if record is not None:
            record.activate()
        return record

    async def send_response(self, response: Response, scope: Any, receive: Any, send: Any,
                            record: audit.RequestAudit | None) -> None:
        if record is None:
            await response(scope, receive, send)
            return
        body = getattr(response, "body", None)
        record.responded(response.status_code, body if isinstance(body, bytes) else None)
        response.raw_headers.append((b"audit-id", record.audit_id.encode("latin-1")))
        record.started()
        try:
            await response(scope, receive, send)
        except BaseException:
            record.complete(panic=True)
            raise
        record.complete()

    async def serve_others(self, scope: Any, receive: Any, send: Any, record: audit.RequestAudit | None) -> None:
        """The Starlette app's paths; audited from the status it sends."""
        if record is None:
            await self.others(scope, receive, send)
            return
        audit_id = record.audit_id.encode("latin-1")

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                record.responded(message["status"], None)
                message = dict(message, headers=[*message.get("headers", ()), (b"audit-id", audit_id)])
            await send(message)

        try:
            await self.others(scope, receive, sending)
        except BaseException:
            record.complete(panic=True)
            raise
        record.complete()

    async def authenticate(self, request: Request, target: Target) -> authn.UserInfo:
        credentials = authn.Credentials(request.headers, peer_certificate=peer_certificate(request.scope))
        user = await self.authenticator.authenticate(credentials)
        if user is not None:
            return user
        if public(target.path):
            return authn.ANONYMOUS
        raise errors.Unauthorized("Unauthorized")

    async def impersonate(self, request: Request, requester: authn.UserInfo, target: Target) -> authn.UserInfo:
        headers = request.headers
        if not impersonation.requested(headers):
            return requester
        try:
            user = await impersonation.impersonate(headers, requester, self.authorizer, path=target.path)
        except impersonation.Refused as refused:
            if requester.name == authn.ANONYMOUS.name:  # as for any request: log in first, learn nothing
                raise errors.Unauthorized("Unauthorized") from None
            raise forbidden(refused.attributes, refused.reason) from None
        audit.set_impersonated_user(user)
        return user

    async def authorize(self, attributes: authz.Attributes, record: audit.RequestAudit | None = None, *,
                        anonymous: bool = False) -> None:
        decision = await self.authorizer.authorize(attributes)
        if record is not None:  # upstream's annotations of the authorization stage
            record.annotate("authorization.k8s.io/decision", "allow" if decision.allowed else "forbid")
            record.annotate("authorization.k8s.io/reason", decision.reason)
        if not decision.allowed:
            if not attributes.resource_request and public(attributes.path):
                return  # health, version and hooks answer anyone, whatever the policy says
            if anonymous:
                raise errors.Unauthorized("Unauthorized")  # says nothing of what exists or is allowed
            raise forbidden(attributes, decision.reason)


def public(path: str) -> bool:
    """Whether a non-resource path is answered to anyone (upstream's system:public-info-viewer, and hooks)."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def authorization_attributes(user: authn.UserInfo, target: Target) -> authz.Attributes:
    """Upstream's authorization attributes of a request: what RBAC and the audit policy both match on."""
    info = target.info
    if info is None:
        return authz.Attributes(user, target.verb, False, target.path)
    namespace = info.namespace or ""
    if not namespace and info.plural == "namespaces" and not info.group and info.name:
        namespace = info.name  # upstream's RequestInfo: a namespace is in itself
    return authz.Attributes(user, target.verb, True, target.path, info.group, info.version, info.plural or "",
                            info.subresource or "", namespace, info.name or target.selector_name,
                            target.field_selector)


_DER_OF_PEM: dict[str, bytes] = {}  # every request of a connection shares its PEM string: decode it once
_DER_CACHE_SIZE = 1024


def peer_certificate(scope: Any) -> bytes | None:
    """The TLS client certificate (DER) of the request's connection, from the ASGI TLS extension
    `httpserver.ApiHttpProtocol` fills in (None on plain HTTP, or when the client sent none)."""
    tls = (scope.get("extensions") or {}).get("tls")
    chain = tls.get("client_cert_chain") if tls else None
    if not chain:
        return None
    pem = chain[0]
    der = _DER_OF_PEM.get(pem)
    if der is None:
        if len(_DER_OF_PEM) >= _DER_CACHE_SIZE:
            _DER_OF_PEM.clear()
        der = _DER_OF_PEM[pem] = ssl.PEM_cert_to_DER_cert(pem)
    return der


def decode(request: Request) -> Target:
    """The decode stage: a resource request's `RequestInfo` and verb, or a non-resource path."""
    scope = request.scope
    path, method = scope["path"], scope["method"]
    if method in RESOURCE_METHODS and is_resource_path(path):
        info = routing.parse(path)  # not request.url: building a URL costs ~5% of a GET
        if info.plural is not None:
            watch = method == "GET" and info.name is None and http.query_bool(request, "watch")
            verb = authz.resource_verb(method, has_name=info.name is not None, watch=watch)
            long_running = flowcontrol.is_long_running(verb, info.subresource)
            if verb in ("list", "watch") and "fieldSelector" in request.query_params:
                terms, name = selector_terms(request.query_params.get("fieldSelector"))
                return Target(path, verb, info, long_running, terms, name)
            return Target(path, verb, info, long_running)
    return Target(path, method.lower(), None)


def selector_terms(text: str | None) -> tuple[tuple[selectors.FieldRequirement, ...], str]:
    """A list's fieldSelector as authorization reads it: its terms, and the name an exact
    `metadata.name=` term pins when that is a valid path segment (upstream's RequestInfoFactory).
    A selector that does not parse gives nothing here; the handler refuses it with a 400."""
    try:
        selector = selectors.parse_field_terms(text)
    except errors.ApiError:
        return (), ""
    name = selector.value_for("metadata.name") or ""
    if name in (".", "..") or "/" in name or "%" in name:
        name = ""
    return selector.requirements, name


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


async def deny_websocket(response: Response, scope: Any, receive: Any, send: Any) -> None:
    """Answer a WebSocket upgrade with a plain HTTP response (ASGI `websocket.http.response`)."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": 1008})  # a server without it: a bare 403
        return
    await send({"type": "websocket.http.response.start", "status": response.status_code,
                "headers": response.raw_headers})
    await send({"type": "websocket.http.response.body", "body": bytes(response.body)})
