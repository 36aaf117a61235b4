"""HTTP verbs on resource paths, mapped onto `rest` operations: the pipeline's last stages.

The pipeline has decoded the path and authenticated and authorized the caller; `serve` finds the
resource in the registry, decodes the query and body (bounded), calls `rest` (which admits,
validates and stores) and encodes the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from reconcile.api import (
    authn,
    converted,
    decoding,
    deleteoptions,
    eviction,
    fieldmanager,
    http,
    listing,
    podproxy,
    protobodies,
    registry,
    resourcemetrics,
    rest,
    routing,
    tables,
    watch,
)
from reconcile.core import errors, patches, selectors

PATCH_KINDS = {
    http.MERGE_PATCH: "merge",
    http.JSON_PATCH: "json",
    http.STRATEGIC_PATCH: "strategic",
    http.APPLY_PATCH: "apply",
}
FIELD_VALIDATION = {"strict": "Strict", "warn": "Warn", "ignore": "Ignore"}
# A create-only resource that is answered, never stored (the review kinds): (resource, namespace,
# body, user) -> the object to answer with.
VirtualCreate = Callable[[registry.Resource, str | None, dict[str, Any], authn.UserInfo], Awaitable[dict[str, Any]]]
# A POST to a subresource served by code (serviceaccounts/token): (namespace, name, body, user) ->
# (the object to answer with, warnings).
SubresourceCreate = Callable[[str | None, str, Any, authn.UserInfo], Awaitable[tuple[dict[str, Any], list[str]]]]


@dataclass(frozen=True)
class CodeSubresource:
    """A create-only subresource of a built-in kind, and how to read its protobuf body (kubectl sends
    some only in protobuf); None: protobuf is refused with 415 as elsewhere."""

    create: SubresourceCreate
    protobuf: Callable[[bytes], dict[str, Any]] | None = None


# Resources with an `approval` subresource (upstream: CertificateSigningRequests): written like /status.
APPROVAL_RESOURCES = frozenset({"certificatesigningrequests.certificates.k8s.io"})


class ResourceHandlers:
    """Holds the registry and the `Rest` service; `dispatch` is the Starlette endpoint."""

    def __init__(self, api: rest.Rest, *, bookmark_interval: float = 30.0,
                 decoder: decoding.BodyDecoder | None = None) -> None:
        self.api = api
        self.registry: registry.Registry = api.registry
        self.bookmark_interval = bookmark_interval
        self.decoder = decoder or decoding.BodyDecoder()
        # resource -> its create handler, for the virtual (never stored) kinds; None for the others
        self.virtual: Callable[[registry.Resource], VirtualCreate | None] = lambda resource: None
        # (group, plural, subresource) of a built-in kind -> its handler
        self.code_subresources: dict[tuple[str, str, str], CodeSubresource] = {}
        self.kubelet = podproxy.KubeletClientConfig()  # how the log/exec proxies reach node agents
        self.metrics = resourcemetrics.ResourceMetrics(api, lambda base: self.kubelet.client_config(base))
        self.evictions = eviction.Evictions(api)

    async def _body(self, request: Request, *, what: str = "object", strict: bool = False) -> Any:
        """The request body, read under the size cap and decoded (bounded, off the loop when large)."""
        return await self.decoder.decode(await http.read_body(request), http.media_type(request), what=what,
                                         strict=strict)

    async def _created_body(self, request: Request, resource: registry.Resource, *, strict: bool = False) -> Any:
        """A POSTed object: protobuf for the built-in kinds kubectl sends only so (`protobodies`), else
        as `_body` (protobuf elsewhere is 415)."""
        raw = await http.read_body(request)
        media = http.media_type(request)
        if resource.builtin and protobodies.is_protobuf(raw, media):
            if protobodies.decoder_for(resource.api_version, resource.kind) is not None:
                return await self.decoder.decode_protobuf(raw, resource.api_version, resource.kind)
        return await self.decoder.decode(raw, media, what="object", strict=strict)

    async def _updated_body(self, request: Request, resource: registry.Resource, *, strict: bool) -> Any:
        """A PUT object: protobuf for the kinds whose updates `protobodies` reads whole (UPDATABLE:
        `kubectl certificate approve`'s CSR), else as `_body` (protobuf elsewhere is 415)."""
        raw = await http.read_body(request)
        media = http.media_type(request)
        if (resource.builtin and (resource.api_version, resource.kind) in protobodies.UPDATABLE
                and protobodies.is_protobuf(raw, media)):
            return await self.decoder.decode_protobuf(raw, resource.api_version, resource.kind)
        return await self.decoder.decode(raw, media, what="object", strict=strict)

    # --- what converted.py shares with the stored versions' handlers ---

    body = _body
    created_body = _created_body
    updated_body = _updated_body

    @staticmethod
    def selection(request: Request, resource: registry.Resource, namespace: str | None) -> rest.Selection:
        return _selection(request, resource, namespace)

    @staticmethod
    def field_validation(request: Request) -> str:
        return _field_validation(request)

    @staticmethod
    def field_manager(request: Request, options_kind: str) -> str:
        return _field_manager(request, options_kind)

    @staticmethod
    def dry_run(request: Request) -> bool:
        return _dry_run(request)

    @staticmethod
    def include_object(request: Request) -> str:
        return _include_object(request)

    @staticmethod
    def patch_kind(request: Request) -> str:
        """The patch type of the Content-Type (415 for another media type)."""
        patch_kind = PATCH_KINDS.get(http.media_type(request))
        if patch_kind is None:
            raise errors.UnsupportedMediaType(
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{', '.join(http.PATCH_TYPES)}"
            )
        return patch_kind

    async def upgrade(self, scope: Any, receive: Any, send: Any, info: routing.RequestInfo,
                      user: authn.UserInfo) -> None:
        """A WebSocket upgrade of a resource: pods/exec, pods/attach (proxied to the node agent)."""
        assert info.plural is not None
        resource = self.registry.get(info.group, info.version, info.plural)
        if resource is None or info.name is None or info.namespace is None:
            raise errors.no_such_resource()
        if not podproxy.handles_upgrade(resource, info):
            raise errors.BadRequest("this resource does not upgrade to a WebSocket")
        await podproxy.upgrade(self.api, scope, receive, send, info, kubelet=self.kubelet)

    async def serve(self, request: Request, info: routing.RequestInfo, verb: str, user: authn.UserInfo) -> Response:
        """The endpoint of every resource request (`info.plural` is set)."""
        http.check_accept(request)
        assert info.plural is not None
        resource = self.registry.get(info.group, info.version, info.plural)
        if resource is None:
            raise errors.no_such_resource()
        if info.namespace is not None and not resource.namespaced:
            raise errors.no_such_resource()
        if info.name is not None and resource.namespaced and info.namespace is None:
            raise errors.no_such_resource()
        storage = converted.storage_of(self.registry, resource)
        if storage is not None:  # autoscaling/v1 HPAs: served through the storage version (autoscaling/v2)
            return await converted.ConvertedVersion(self, resource, storage).serve(request, info, verb, user)
        return await self.serve_stored(request, resource, info, verb, user)

    async def serve_stored(self, request: Request, resource: registry.Resource, info: routing.RequestInfo, verb: str,
                           user: authn.UserInfo) -> Response:
        """A request on a version stored as it is served (every resource but a converted version's)."""
        method = request.method
        if resourcemetrics.serves(resource):  # NodeMetrics, PodMetrics: read from the node agents
            return http.json_response(await self.metrics.serve(
                resource, verb=verb, namespace=info.namespace, name=info.name,
                selection=_selection(request, resource, info.namespace)))
        virtual = self.virtual(resource)
        if virtual is not None:
            return await self._virtual_create(request, resource, info, user, virtual)
        if info.name is None:
            if method == "GET":
                return await self._list_or_watch(request, resource, info, watching=verb == "watch")
            if method == "POST":
                return await self._create(request, resource, info, user)
            if method == "DELETE":
                return await self._delete_collection(request, resource, info, user)
        else:
            if podproxy.handles(resource, info):  # pods/log, pods/exec: proxied to the pod's node agent
                return await podproxy.handle(self.api, request, info, kubelet=self.kubelet)
            code = self.code_subresources.get((resource.group, resource.plural, info.subresource or "")) \
                if resource.builtin and info.subresource else None
            if code is not None:
                return await self._code_subresource(request, resource, info, user, code)
            if method == "GET":
                return await self._get(request, resource, info)
            if method == "PUT":
                return await self._update(request, resource, info, user)
            if method == "PATCH":
                return await self._patch(request, resource, info, user)
            if method == "DELETE" and info.subresource is None:
                return await self._delete(request, resource, info, user)
            if method == "POST" and info.subresource == "binding":
                return await self._bind(request, resource, info, user)
            if method == "POST" and info.subresource == "eviction" and resource.builtin \
                    and resource.group_resource == "pods":
                return await self._evict(request, info, user)
        raise errors.MethodNotAllowed(
            f"the server does not allow this method on the requested resource ({method} {resource.group_resource})"
        )

    async def _virtual_create(self, request: Request, resource: registry.Resource, info: routing.RequestInfo,
                              user: authn.UserInfo, create: VirtualCreate) -> Response:
        if request.method != "POST" or info.name is not None:
            raise errors.MethodNotAllowed(
                f"the server does not allow this method on the requested resource ({request.method} "
                f"{resource.group_resource})")
        body = await self._created_body(request, resource)
        return http.json_response(await create(resource, info.namespace, body, user), status=201)

    async def _code_subresource(self, request: Request, resource: registry.Resource, info: routing.RequestInfo,
                                user: authn.UserInfo, code: CodeSubresource) -> Response:
        assert info.name is not None
        if request.method != "POST":
            raise errors.MethodNotAllowed(
                f"the server does not allow this method on the requested resource ({request.method} "
                f"{resource.group_resource}/{info.subresource})")
        raw = await http.read_body(request)
        media = http.media_type(request)
        if code.protobuf is not None and protobodies.is_protobuf(raw, media):
            body = code.protobuf(raw)
        else:
            body = await self.decoder.decode(raw, media, what="object")
        obj, warnings = await code.create(info.namespace, info.name, body, user)
        headers = {"Warning": http.warning_header(warnings)} if warnings else None
        return http.json_response(obj, status=201, headers=headers)

    # --- reads ---

    async def _get(self, request: Request, resource: registry.Resource, info: routing.RequestInfo) -> Response:
        assert info.name is not None
        if info.subresource == "scale":
            return http.json_response(await self.api.get_scale(resource, info.namespace, info.name))
        if info.subresource not in (None, "status", "approval"):
            raise _no_subresource(info)
        if info.subresource == "status" and not resource.has_status:
            raise _no_subresource(info)
        if info.subresource == "approval" and resource.group_resource not in APPROVAL_RESOURCES:
            raise _no_subresource(info)
        entry = await self.api.get(resource, info.namespace, info.name,
                                   resource_version=request.query_params.get("resourceVersion"))
        if http.wants_table(request):
            table = tables.to_table(resource, [entry.obj], include_object=_include_object(request))
            table.setdefault("metadata", {})["resourceVersion"] = entry.obj["metadata"].get("resourceVersion", "")
            return http.json_response(table, content_type=http.TABLE_CONTENT_TYPE)
        return http.json_response(entry.raw)

    async def _list_or_watch(self, request: Request, resource: registry.Resource, info: routing.RequestInfo, *,
                             watching: bool) -> Response:
        selection = _selection(request, resource, info.namespace)
        query = request.query_params
        if watching:
            return self._watch(request, resource, selection)
        options = listing.list_options(resource_version=query.get("resourceVersion"),
                                       match=query.get("resourceVersionMatch"), limit=query.get("limit"),
                                       continue_token=query.get("continue"))
        result = await self.api.list(resource, selection, options)
        list_meta: dict[str, Any] = {"resourceVersion": str(result.revision)}
        if result.continue_token:
            list_meta["continue"] = result.continue_token
            if result.remaining is not None:
                list_meta["remainingItemCount"] = result.remaining
        if http.wants_table(request):
            table = tables.to_table(resource, [e.obj for e in result.entries], include_object=_include_object(request))
            table["metadata"] = list_meta
            return http.json_response(table, content_type=http.TABLE_CONTENT_TYPE)
        head = orjson.dumps({"kind": resource.list_kind, "apiVersion": resource.api_version, "metadata": list_meta})
        body = head[:-1] + b',"items":[' + b",".join(e.raw for e in result.entries) + b"]}"
        return http.json_response(body)

    def _watch(self, request: Request, resource: registry.Resource, selection: rest.Selection) -> Response:
        return self.watch_response(request, resource, selection)

    def watch_response(self, request: Request, resource: registry.Resource, selection: rest.Selection, *,
                       convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Response:
        """The streaming watch answer; `convert` shows each object as a converted version does."""
        query = request.query_params
        match = query.get("resourceVersionMatch")
        send_initial = http.query_bool(request, "sendInitialEvents") if "sendInitialEvents" in query else None
        if send_initial is not None and match != listing.NOT_OLDER_THAN:
            raise errors.BadRequest("resourceVersionMatch: Forbidden: sendInitialEvents requires setting "
                                    f"resourceVersionMatch to {listing.NOT_OLDER_THAN}")
        if match and not (match == listing.NOT_OLDER_THAN and send_initial is not None):
            raise errors.BadRequest(f'resourceVersionMatch: Forbidden: "{match}" is not allowed for watch '
                                    "unless sendInitialEvents is given and resourceVersionMatch=NotOlderThan")
        options = watch.WatchOptions(
            resource_version=listing.parse_resource_version(query.get("resourceVersion")),
            timeout_seconds=http.query_int(request, "timeoutSeconds"),
            bookmarks=http.query_bool(request, "allowWatchBookmarks"),
            bookmark_interval=self.bookmark_interval,
            table=http.wants_table(request),
            include_object=_include_object(request),
            send_initial_events=send_initial,
            convert=convert,
        )
        media = http.TABLE_CONTENT_TYPE if options.table else http.JSON
        return StreamingResponse(watch.stream(self.api, resource, selection, options), media_type=media)

    # --- writes ---

    async def _create(self, request: Request, resource: registry.Resource, info: routing.RequestInfo,
                      user: authn.UserInfo) -> Response:
        field_validation = _field_validation(request)
        body = await self._created_body(request, resource, strict=field_validation == "Strict")
        result = await self.api.create(resource, info.namespace, body, dry_run=_dry_run(request),
                                       field_validation=field_validation, user=user,
                                       field_manager=_field_manager(request, "CreateOptions"))
        return _written(result, status=201)

    async def _update(self, request: Request, resource: registry.Resource, info: routing.RequestInfo,
                      user: authn.UserInfo) -> Response:
        assert info.name is not None
        field_validation = _field_validation(request)
        body = await self._updated_body(request, resource, strict=field_validation == "Strict")
        manager = _field_manager(request, "UpdateOptions")
        if info.subresource == "scale":
            scale = await self.api.write_scale(resource, info.namespace, info.name, lambda _: body,
                                               dry_run=_dry_run(request), user=user, field_manager=manager)
            return http.json_response(scale)
        self._check_write_subresource(resource, info)
        result = await self.api.update(resource, info.namespace, info.name, body, subresource=info.subresource,
                                       dry_run=_dry_run(request), field_validation=field_validation,
                                       user=user, field_manager=manager)
        return _written(result)

    async def _patch(self, request: Request, resource: registry.Resource, info: routing.RequestInfo,
                     user: authn.UserInfo) -> Response:
        assert info.name is not None
        patch_kind = self.patch_kind(request)
        field_validation = _field_validation(request)
        force = http.query_bool(request, "force") if "force" in request.query_params else None
        given = request.query_params.get("fieldManager")
        # an apply names its manager; other writes default to the User-Agent's, as upstream
        manager = given if patch_kind == "apply" else _field_manager(request, "PatchOptions")
        fieldmanager.validate_options("PatchOptions", manager, apply=patch_kind == "apply", force=force, patch=True)
        patch = await self._body(request, what="patch", strict=field_validation == "Strict")
        if info.subresource == "scale":
            scale = await self.api.write_scale(resource, info.namespace, info.name,
                                               lambda current: _patch_scale(current, patch_kind, patch),
                                               dry_run=_dry_run(request), user=user, field_manager=manager)
            return http.json_response(scale)
        self._check_write_subresource(resource, info)
        result = await self.api.patch(
            resource, info.namespace, info.name, patch_kind, patch, subresource=info.subresource,
            dry_run=_dry_run(request), field_validation=field_validation,
            field_manager=manager, force=force, user=user,
        )
        return _written(result, status=201 if result.created else 200)

    def _check_write_subresource(self, resource: registry.Resource, info: routing.RequestInfo) -> None:
        if info.subresource is None:
            return
        if info.subresource == "status" and resource.has_status:
            return
        if info.subresource == "approval" and resource.group_resource in APPROVAL_RESOURCES:
            return
        raise _no_subresource(info)

    async def _delete(self, request: Request, resource: registry.Resource, info: routing.RequestInfo,
                      user: authn.UserInfo) -> Response:
        assert info.name is not None
        options = await self._delete_options(request)
        result = await self.api.delete(resource, info.namespace, info.name, options=options,
                                       dry_run=_dry_run(request) or deleteoptions.is_dry_run(options),
                                       user=user)
        if not result.deleted:
            return http.json_response(result.obj)
        if self.api.strategy(resource).returns_deleted_object:
            return http.json_response(result.obj)
        metadata = result.obj["metadata"]
        details = {"name": metadata["name"], "kind": resource.plural, "uid": metadata.get("uid")}
        if resource.group:
            details["group"] = resource.group
        return http.json_response(http.success_status(details))

    async def _delete_collection(self, request: Request, resource: registry.Resource,
                                 info: routing.RequestInfo, user: authn.UserInfo) -> Response:
        options = await self._delete_options(request)
        removed = await self.api.delete_collection(resource, _selection(request, resource, info.namespace),
                                                   options=options, dry_run=_dry_run(request), user=user)
        return http.json_response({"kind": resource.list_kind, "apiVersion": resource.api_version,
                                   "metadata": {}, "items": removed})

    async def _bind(self, request: Request, resource: registry.Resource, info: routing.RequestInfo,
                    user: authn.UserInfo) -> Response:
        assert info.name is not None
        binding = await self._body(request, what="Binding")
        await self.api.bind(resource, info.namespace, info.name, binding, user=user)
        return http.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
                                  status=201)

    async def _evict(self, request: Request, info: routing.RequestInfo, user: authn.UserInfo) -> Response:
        """pods/eviction: a JSON Eviction (kubectl drain's) or a protobuf one (client-go's typed clients)."""
        assert info.name is not None and info.namespace is not None
        raw = await http.read_body(request)
        media = http.media_type(request)
        if protobodies.is_protobuf(raw, media):
            body = await self.decoder.decode_protobuf(raw, "policy/v1", "Eviction")
        else:
            body = await self.decoder.decode(raw, media, what="Eviction")
        status = await self.evictions.evict(info.namespace, info.name, body, dry_run=_dry_run(request), user=user)
        return http.json_response(status, status=201)

    async def _delete_options(self, request: Request) -> dict[str, Any]:
        body = await http.read_body(request)
        decoded = None
        media = http.media_type(request)
        if body and protobodies.is_protobuf(body, media):  # client-go's typed Delete (kubectl drain's)
            decoded = protobodies.delete_options(body)
        elif body.strip():
            decoded = await self.decoder.decode(body, media, what="DeleteOptions")
        return deleteoptions.normalized(decoded, query_policy=request.query_params.get("propagationPolicy") or None,
                                        query_grace=http.query_int(request, "gracePeriodSeconds"))


def _written(result: rest.WriteResult, *, status: int = 200) -> Response:
    headers = None
    if result.warnings:
        headers = {"Warning": http.warning_header(result.warnings)}
    return http.json_response(result.obj, status=status, headers=headers)


def _field_manager(request: Request, options_kind: str) -> str:
    """Who a write is by: `fieldManager` (validated, 422 as upstream), else the User-Agent's first part."""
    given = request.query_params.get("fieldManager")
    fieldmanager.validate_options(options_kind, given)
    return fieldmanager.manager_name(given, request.headers.get("user-agent"))


def _no_subresource(info: routing.RequestInfo) -> errors.NotFound:
    return errors.no_such_resource()


def _selection(request: Request, resource: registry.Resource, namespace: str | None) -> rest.Selection:
    labels = request.query_params.get("labelSelector")
    fields = request.query_params.get("fieldSelector")
    field_selector = None
    if fields:
        field_selector = selectors.parse_fields(fields, supported=selectors.field_labels(resource.group, resource.kind))
    return rest.Selection(
        namespace=namespace,
        labels=selectors.parse_labels(labels) if labels else None,
        fields=field_selector,
    )


def _dry_run(request: Request) -> bool:
    values = request.query_params.getlist("dryRun")
    for value in values:
        if value not in ("All", ""):
            raise errors.BadRequest(f'Unsupported value: "{value}": supported values: "All"')
    return "All" in values


def _field_validation(request: Request) -> str:
    value = request.query_params.get("fieldValidation")
    if value is None or value == "":
        return "Strict"
    mode = FIELD_VALIDATION.get(value.lower())
    if mode is None:
        raise errors.BadRequest(f'fieldValidation: Unsupported value: "{value}": supported values: "Ignore", "Strict", "Warn"')
    return mode


def _include_object(request: Request) -> str:
    value = request.query_params.get("includeObject") or "Metadata"
    if value not in ("Metadata", "Object", "None"):
        raise errors.BadRequest(f'includeObject: Unsupported value: "{value}"')
    return value


def _patch_scale(current: dict[str, Any], patch_kind: str, patch: Any) -> dict[str, Any]:
    if patch_kind == "json":
        return patches.json_patch(current, patch)
    return patches.merge_patch(current, patch)
