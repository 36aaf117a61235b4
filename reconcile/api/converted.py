"""Requests on a served version that is not the storage version of a built-in kind (autoscaling/v1
HorizontalPodAutoscalers, stored as autoscaling/v2).

Every other resource is stored as it is served (a CRD with several versions and conversion
strategy None only relabels apiVersion, which is all the registry does). A built-in kind with a
real conversion between versions names its pair of functions in `CONVERTERS`; requests on the
non-storage version are then served here, at the API's edge: a body is decoded and checked
against the version it was sent in (schema, defaults, unknown fields), converted up and handed to
`rest` on the storage version, and every answer (get, list, watch events, write results) is
converted down. Tables are printed from the stored objects (the printer reads the storage form).
Patches apply to the requested version's view of the stored object, then convert back up, so a
v1 merge patch means what it means upstream. A server-side apply of the served version reckons
field ownership in that version's paths (upstream converts managed fields between versions; here
an entry names the fields of the version its manager applied, so two managers applying different
versions do not see each other's fields as conflicts).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from reconcile.api import authn, fieldmanager, http, listing, registry, rest, routing, tables, validation
from reconcile.core import applymerge, errors, hpaconversion, patches

Request = http.Request
Response = http.Response


@dataclass(frozen=True)
class Converter:
    """`down(stored)`: the served version's view; `up(served, stored or None)`: the storage form
    (the stored object, on an update, keeps what the served version cannot say)."""

    down: Callable[[dict[str, Any]], dict[str, Any]]
    up: Callable[[dict[str, Any], dict[str, Any] | None], dict[str, Any]]


# (group, plural, served version) -> its converter from and to the storage version
CONVERTERS: dict[tuple[str, str, str], Converter] = {
    ("autoscaling", "horizontalpodautoscalers", "v1"): Converter(hpaconversion.to_v1, hpaconversion.to_v2),
}


def converter(resource: registry.Resource) -> Converter | None:
    return CONVERTERS.get((resource.group, resource.plural, resource.version)) if resource.builtin else None


def storage_of(reg: registry.Registry, resource: registry.Resource) -> registry.Resource | None:
    """The storage version's resource when `resource` is a converted version of a built-in kind, else None."""
    if converter(resource) is None:
        return None
    crd = reg.crd(resource.crd_name) or {}
    for version in (crd.get("spec") or {}).get("versions") or []:
        if version.get("storage"):
            return reg.get(resource.group, version["name"], resource.plural)
    return None


class Owner(Protocol):
    """What this module uses of `handlers.ResourceHandlers` (which calls it: no import back)."""

    api: rest.Rest

    def serve_stored(self, request: Request, resource: registry.Resource, info: routing.RequestInfo, verb: str,
                     user: authn.UserInfo) -> Awaitable[Response]: ...
    def watch_response(self, request: Request, resource: registry.Resource, selection: rest.Selection, *,
                       convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Response: ...
    def body(self, request: Request, *, what: str = "object", strict: bool = False) -> Awaitable[Any]: ...
    def created_body(self, request: Request, resource: registry.Resource, *, strict: bool = False) -> Awaitable[Any]: ...
    def updated_body(self, request: Request, resource: registry.Resource, *, strict: bool) -> Awaitable[Any]: ...
    def selection(self, request: Request, resource: registry.Resource, namespace: str | None) -> rest.Selection: ...
    def field_validation(self, request: Request) -> str: ...
    def field_manager(self, request: Request, options_kind: str) -> str: ...
    def dry_run(self, request: Request) -> bool: ...
    def include_object(self, request: Request) -> str: ...
    def patch_kind(self, request: Request) -> str: ...


class ConvertedVersion:
    """Serves one request on a converted version through `rest` on its storage version."""

    def __init__(self, owner: Owner, served: registry.Resource, storage: registry.Resource) -> None:
        self.owner = owner
        self.api: rest.Rest = owner.api
        self.served = served
        self.storage = storage
        found = converter(served)
        assert found is not None
        self.convert = found

    async def serve(self, request: Request, info: routing.RequestInfo, verb: str, user: authn.UserInfo) -> Response:
        method = request.method
        if info.subresource not in (None, "status"):
            raise errors.no_such_resource()
        if method == "DELETE":  # answers a Status or the object being deleted: nothing version-specific
            return await self.owner.serve_stored(request, self.storage, info, verb, user)
        if method == "GET" and info.name is None:
            return await (self._watch(request, info) if verb == "watch" else self._list(request, info))
        if method == "GET":
            entry = await self.api.get(self.storage, info.namespace, info.name,
                                       resource_version=request.query_params.get("resourceVersion"))
            if http.wants_table(request):
                table = tables.to_table(self.storage, [entry.obj], include_object=self.owner.include_object(request))
                table.setdefault("metadata", {})["resourceVersion"] = entry.obj["metadata"].get("resourceVersion", "")
                return http.json_response(table, content_type=http.TABLE_CONTENT_TYPE)
            return http.json_response(self.convert.down(entry.obj))
        if method == "POST" and info.name is None:
            return await self._create(request, info, user)
        if method == "PUT" and info.name is not None:
            return await self._update(request, info, user)
        if method == "PATCH" and info.name is not None:
            return await self._patch(request, info, user)
        raise errors.MethodNotAllowed(f"the server does not allow this method on the requested resource "
                                      f"({method} {self.served.group_resource})")

    async def _list(self, request: Request, info: routing.RequestInfo) -> Response:
        query = request.query_params
        options = listing.list_options(resource_version=query.get("resourceVersion"),
                                       match=query.get("resourceVersionMatch"), limit=query.get("limit"),
                                       continue_token=query.get("continue"))
        selection = self.owner.selection(request, self.served, info.namespace)
        result = await self.api.list(self.storage, selection, options)
        list_meta: dict[str, Any] = {"resourceVersion": str(result.revision)}
        if result.continue_token:
            list_meta["continue"] = result.continue_token
            if result.remaining is not None:
                list_meta["remainingItemCount"] = result.remaining
        if http.wants_table(request):
            table = tables.to_table(self.storage, [e.obj for e in result.entries],
                                    include_object=self.owner.include_object(request))
            table["metadata"] = list_meta
            return http.json_response(table, content_type=http.TABLE_CONTENT_TYPE)
        return http.json_response({"kind": self.served.list_kind, "apiVersion": self.served.api_version,
                                   "metadata": list_meta,
                                   "items": [self.convert.down(e.obj) for e in result.entries]})

    async def _watch(self, request: Request, info: routing.RequestInfo) -> Response:
        """Events of the served version (a watch of tables prints the stored objects)."""
        selection = self.owner.selection(request, self.served, info.namespace)
        return self.owner.watch_response(request, self.served, selection, convert=self.convert.down)

    def _checked(self, body: Any, namespace: str | None, field_validation: str) -> tuple[dict[str, Any], list[str]]:
        """The body as the served version: kind and apiVersion, then schema, defaults, unknown fields."""
        if not isinstance(body, dict):
            raise errors.BadRequest(f"{self.served.kind} in version \"{self.served.version}\" cannot be handled as "
                                    f"a {self.served.kind}: the body must be a JSON or YAML object")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if kind not in (None, "", self.served.kind) or api_version not in (None, "", self.served.api_version):
            raise errors.BadRequest(f"the API version in the data ({api_version}) does not match the expected API "
                                    f"version ({self.served.api_version})")
        body["apiVersion"], body["kind"] = self.served.api_version, self.served.kind
        warnings = validation.prepare(self.served, body, field_validation=field_validation)
        return body, warnings

    async def _create(self, request: Request, info: routing.RequestInfo, user: authn.UserInfo) -> Response:
        field_validation = self.owner.field_validation(request)
        body = await self.owner.created_body(request, self.served, strict=field_validation == "Strict")
        served, warnings = self._checked(body, info.namespace, field_validation)
        result = await self.api.create(self.storage, info.namespace, self.convert.up(served, None),
                                       dry_run=self.owner.dry_run(request), field_validation=field_validation, user=user,
                                       field_manager=self.owner.field_manager(request, "CreateOptions"))
        return self._written(result, warnings, status=201)

    async def _update(self, request: Request, info: routing.RequestInfo, user: authn.UserInfo) -> Response:
        assert info.name is not None
        field_validation = self.owner.field_validation(request)
        body = await self.owner.updated_body(request, self.served, strict=field_validation == "Strict")
        served, warnings = self._checked(body, info.namespace, field_validation)
        precondition = (served.get("metadata") or {}).get("resourceVersion") or None
        given = (served.get("metadata") or {}).get("name")
        if given and given != info.name:
            raise errors.BadRequest(f"the name of the object ({given}) does not match the name on the URL ({info.name})")

        def mutate(old: dict[str, Any]) -> dict[str, Any]:
            new = self.convert.up(served, old)
            new.setdefault("metadata", {})["name"] = info.name
            return new

        result = await self.api.guarded_update(
            self.storage, info.namespace, info.name, mutate, subresource=info.subresource, precondition=precondition,
            dry_run=self.owner.dry_run(request), field_validation=field_validation, user=user,
            field_manager=self.owner.field_manager(request, "UpdateOptions"))
        return self._written(result, warnings)

    async def _patch(self, request: Request, info: routing.RequestInfo, user: authn.UserInfo) -> Response:
        assert info.name is not None
        name = info.name
        patch_kind = self.owner.patch_kind(request)
        field_validation = self.owner.field_validation(request)
        force = http.query_bool(request, "force") if "force" in request.query_params else None
        given = request.query_params.get("fieldManager")
        manager = given if patch_kind == "apply" else self.owner.field_manager(request, "PatchOptions")
        fieldmanager.validate_options("PatchOptions", manager, apply=patch_kind == "apply", force=force, patch=True)
        patch = await self.owner.body(request, what="patch", strict=field_validation == "Strict")
        if patch_kind == "json" and not isinstance(patch, list):
            raise errors.BadRequest("json patch must be a list of operations")
        if patch_kind != "json" and not isinstance(patch, dict):
            raise errors.BadRequest("patch must be a JSON object")
        precondition = None
        if isinstance(patch, dict) and isinstance(patch.get("metadata"), dict):
            precondition = patch["metadata"].get("resourceVersion") or None
        if patch_kind == "apply":
            fieldmanager.check_applied(self.served, patch)

        def mutate(old: dict[str, Any]) -> dict[str, Any]:
            view = self.convert.down(old)
            if patch_kind == "merge":
                patched = patches.merge_patch(view, patch)
            elif patch_kind == "json":
                patched = patches.json_patch(view, patch)
            elif patch_kind == "strategic":
                patched = patches.strategic_merge_patch(view, patch, self.served.schema)
            else:  # field ownership is reckoned in the served version's paths (managedFields carry them)
                assert manager is not None
                patched = fieldmanager.apply(self.served, view, patch, manager, force=bool(force),
                                             subresource=info.subresource)
            served, _ = self._checked(patched, info.namespace, field_validation)
            return self.convert.up(served, old)

        dry_run = self.owner.dry_run(request)
        try:
            result = await self.api.guarded_update(
                self.storage, info.namespace, name, mutate, subresource=info.subresource, precondition=precondition,
                dry_run=dry_run, field_validation=field_validation, user=user, field_manager=manager,
                operation=applymerge.APPLY if patch_kind == "apply" else applymerge.UPDATE)
        except errors.NotFound:
            if patch_kind != "apply" or info.subresource is not None:
                raise
            result = await self._apply_create(info, name, patch, field_validation, dry_run, user, manager)
        return self._written(result, [], status=201 if result.created else 200)

    async def _apply_create(self, info: routing.RequestInfo, name: str, patch: dict[str, Any], field_validation: str,
                            dry_run: bool, user: authn.UserInfo, manager: str | None) -> rest.WriteResult:
        """An apply that creates: the applied configuration is the new object; its manager owns its
        fields, in the served version's paths as its later applies reckon them."""
        body = copy.deepcopy(patch)
        body.setdefault("metadata", {})["name"] = name
        served, _ = self._checked(body, info.namespace, field_validation)
        stored = self.convert.up(served, None)
        return await self.api.create(self.storage, info.namespace, stored, dry_run=dry_run,
                                     field_validation=field_validation, user=user, field_manager=manager,
                                     applied=patch)

    def _written(self, result: rest.WriteResult, warnings: list[str], *, status: int = 200) -> Response:
        every = warnings + result.warnings
        headers = {"Warning": http.warning_header(every)} if every else None
        return http.json_response(self.convert.down(result.obj), status=status, headers=headers)

