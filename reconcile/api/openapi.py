"""OpenAPI v3 documents (`/openapi/v3` and one per group/version) built from the registry's schemas.

kubectl reads them to learn that PATCH accepts `fieldValidation` (else it refuses to apply without
client-side validation), and reads the component schemas' `x-kubernetes-patch-*` extensions to compute
strategic merge patches. Documents are cached per registry revision; the hash in the index changes with
the content, because kubectl caches documents by URL.
"""

from __future__ import annotations

import copy
import hashlib
import json
import weakref
from typing import Any

from reconcile.api import registry
from reconcile.core import errors

OPENAPI_VERSION = "3.0.0"
KUBE_VERSION = "v1.32.0"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_BUILTIN_PACKAGES = {
    "": "io.k8s.api.core",
    "apps": "io.k8s.api.apps",
    "autoscaling": "io.k8s.api.autoscaling",
    "coordination.k8s.io": "io.k8s.api.coordination",
    "discovery.k8s.io": "io.k8s.api.discovery",
    "policy": "io.k8s.api.policy",
    "scheduling.k8s.io": "io.k8s.api.scheduling",
    "networking.k8s.io": "io.k8s.api.networking",
    "apiextensions.k8s.io": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions",
}
_PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json")
_SMP = "application/strategic-merge-patch+json"

_cache: weakref.WeakKeyDictionary[registry.Registry, tuple[int, dict[tuple[str, str], tuple[dict, str]]]]
_cache = weakref.WeakKeyDictionary()


def gv_path(group: str, version: str) -> str:
    """The index key and URL tail of a group/version: "api/v1" or "apis/apps/v1"."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def parse_gv_path(path: str) -> tuple[str, str]:
    """Inverse of `gv_path` (for `/openapi/v3/<path>`); NotFound for anything else."""
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "api":
        return "", parts[1]
    if len(parts) == 3 and parts[0] == "apis":
        return parts[1], parts[2]
    raise errors.no_such_resource()


def schema_name(group: str, version: str, kind: str) -> str:
    """Upstream's component names: io.k8s.api.apps.v1.Deployment; CRDs: reversed group (com.example.v1.Widget)."""
    package = _BUILTIN_PACKAGES.get(group) or ".".join(reversed(group.split(".")))
    return f"{package}.{version}.{kind}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _param(name: str, where: str = "query", *, required: bool = False, kind: str = "string") -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": where, "schema": {"type": kind, "uniqueItems": True}}
    if required:
        param["required"] = True
    return param


_WRITE_PARAMS = [_param("dryRun"), _param("fieldManager"), _param("fieldValidation")]
_LIST_PARAMS = [_param(p) for p in ("labelSelector", "fieldSelector", "continue", "resourceVersion",
                                    "resourceVersionMatch")] + [
    _param("limit", kind="integer"), _param("timeoutSeconds", kind="integer"), _param("watch", kind="boolean"),
    _param("allowWatchBookmarks", kind="boolean")]


def _op(res: registry.Resource, action: str, op_id: str, response: dict, *, params: list | None = None,
        body: dict | None = None, body_types: tuple[str, ...] = ("application/json",)) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": op_id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": res.group, "version": res.version, "kind": res.kind},
        "parameters": list(params or []),
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": response}}},
                      "401": {"description": "Unauthorized"}},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {t: {"schema": body} for t in body_types}}
    if action in ("post",):
        op["responses"]["201"] = {"description": "Created", "content": {"application/json": {"schema": response}}}
    return op


def _paths_for(res: registry.Resource) -> dict[str, dict[str, Any]]:
    base = f"/{gv_path(res.group, res.version)}"
    scoped = f"{base}/namespaces/{{namespace}}/{res.plural}" if res.namespaced else f"{base}/{res.plural}"
    kind_ref = _ref(schema_name(res.group, res.version, res.kind))
    list_ref = _ref(schema_name(res.group, res.version, res.list_kind))
    status_ref = _ref(_META + "Status")
    ns = [_param("namespace", "path", required=True)] if res.namespaced else []
    name = [_param("name", "path", required=True)]
    patch_types = _PATCH_TYPES + ((_SMP,) if res.builtin else ())
    patch_body = _ref(_META + "Patch")
    suffix = res.kind
    paths: dict[str, dict[str, Any]] = {
        scoped: {
            "parameters": ns,
            "get": _op(res, "list", f"list{suffix}", list_ref, params=_LIST_PARAMS),
            "post": _op(res, "post", f"create{suffix}", kind_ref, params=_WRITE_PARAMS, body=kind_ref),
            "delete": _op(res, "deletecollection", f"deletecollection{suffix}", status_ref, params=_LIST_PARAMS),
        },
        f"{scoped}/{{name}}": {
            "parameters": ns + name,
            "get": _op(res, "get", f"read{suffix}", kind_ref),
            "put": _op(res, "put", f"replace{suffix}", kind_ref, params=_WRITE_PARAMS, body=kind_ref),
            "patch": _op(res, "patch", f"patch{suffix}", kind_ref, params=[*_WRITE_PARAMS, _param("force", kind="boolean")],
                         body=patch_body, body_types=patch_types),
            "delete": _op(res, "delete", f"delete{suffix}", status_ref, params=[_param("dryRun"),
                          _param("gracePeriodSeconds", kind="integer"), _param("propagationPolicy")]),
        },
    }
    if res.namespaced:
        paths[f"{base}/{res.plural}"] = {"get": _op(res, "list", f"list{suffix}ForAllNamespaces", list_ref,
                                                    params=_LIST_PARAMS)}
    subresources = [("status", kind_ref)] if res.has_status else []
    if res.scale is not None:
        subresources.append(("scale", _ref("io.k8s.api.autoscaling.v1.Scale")))
    for sub, ref in subresources:
        title = sub.capitalize()
        paths[f"{scoped}/{{name}}/{sub}"] = {
            "parameters": ns + name,
            "get": _op(res, "get", f"read{suffix}{title}", ref),
            "put": _op(res, "put", f"replace{suffix}{title}", ref, params=_WRITE_PARAMS, body=ref),
            "patch": _op(res, "patch", f"patch{suffix}{title}", ref,
                         params=[*_WRITE_PARAMS, _param("force", kind="boolean")], body=patch_body,
                         body_types=patch_types),
        }
    return paths


def _object_meta() -> dict[str, Any]:
    string, time = {"type": "string"}, {"type": "string", "format": "date-time"}
    owner = {"type": "object", "required": ["apiVersion", "kind", "name", "uid"], "properties": {
        "apiVersion": string, "kind": string, "name": string, "uid": string,
        "controller": {"type": "boolean"}, "blockOwnerDeletion": {"type": "boolean"}},
        "x-kubernetes-map-type": "atomic"}
    return {"type": "object", "properties": {
        "name": string, "generateName": string, "namespace": string, "uid": string, "resourceVersion": string,
        "selfLink": string, "generation": {"type": "integer", "format": "int64"}, "creationTimestamp": time,
        "deletionTimestamp": time, "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
        "labels": {"type": "object", "additionalProperties": string},
        "annotations": {"type": "object", "additionalProperties": string},
        "finalizers": {"type": "array", "items": string, "x-kubernetes-list-type": "set",
                       "x-kubernetes-patch-strategy": "merge"},
        "ownerReferences": {"type": "array", "items": owner, "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["uid"], "x-kubernetes-patch-merge-key": "uid",
                            "x-kubernetes-patch-strategy": "merge"},
        "managedFields": {"type": "array", "items": {"type": "object",
                                                     "x-kubernetes-preserve-unknown-fields": True}},
    }}


def _common_schemas() -> dict[str, Any]:
    string = {"type": "string"}
    return {
        _META + "ObjectMeta": _object_meta(),
        _META + "ListMeta": {"type": "object", "properties": {"continue": string, "resourceVersion": string,
                                                              "remainingItemCount": {"type": "integer"}}},
        _META + "Status": {"type": "object", "properties": {
            "apiVersion": string, "kind": string, "status": string, "message": string, "reason": string,
            "code": {"type": "integer"}, "details": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "metadata": _ref(_META + "ListMeta")}},
        _META + "Patch": {"type": "object", "description": "Patch is provided to give a concrete name and type "
                                                            "to the Kubernetes PATCH request body."},
    }


def _scale_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": _ref(_META + "ObjectMeta"),
        "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "format": "int32"}}},
        "status": {"type": "object", "required": ["replicas"], "properties": {
            "replicas": {"type": "integer", "format": "int32"}, "selector": {"type": "string"}}}},
        "x-kubernetes-group-version-kind": [{"group": "autoscaling", "version": "v1", "kind": "Scale"}]}


def _kind_schema(res: registry.Resource) -> dict[str, Any]:
    schema = copy.deepcopy(res.schema)
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string"}
    props["kind"] = {"type": "string"}
    props["metadata"] = _ref(_META + "ObjectMeta")
    schema["x-kubernetes-group-version-kind"] = [{"group": res.group, "version": res.version, "kind": res.kind}]
    return schema


def _list_schema(res: registry.Resource) -> dict[str, Any]:
    return {"type": "object", "required": ["items"], "properties": {
        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": _ref(_META + "ListMeta"),
        "items": {"type": "array", "items": _ref(schema_name(res.group, res.version, res.kind))}},
        "x-kubernetes-group-version-kind": [{"group": res.group, "version": res.version, "kind": res.list_kind}]}


def _build(reg: registry.Registry, group: str, version: str) -> dict[str, Any]:
    found = sorted((r for r in reg.resources() if r.group == group and r.version == version), key=lambda r: r.plural)
    if not found:
        raise errors.no_such_resource()
    paths: dict[str, Any] = {}
    schemas = _common_schemas()
    for res in found:
        paths.update(_paths_for(res))
        schemas[schema_name(group, version, res.kind)] = _kind_schema(res)
        schemas[schema_name(group, version, res.list_kind)] = _list_schema(res)
        if res.scale is not None:
            schemas["io.k8s.api.autoscaling.v1.Scale"] = _scale_schema()
    return {"openapi": OPENAPI_VERSION, "info": {"title": "Kubernetes", "version": KUBE_VERSION},
            "paths": paths, "components": {"schemas": schemas}}


def _entry(reg: registry.Registry, group: str, version: str) -> tuple[dict, str]:
    revision, docs = _cache.get(reg, (-1, {}))
    if revision != reg.revision:
        docs = {}
        _cache[reg] = (reg.revision, docs)
    key = (group, version)
    if key not in docs:
        doc = _build(reg, group, version)
        digest = hashlib.sha512(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest().upper()
        docs[key] = (doc, digest)
    return docs[key]


def openapi_document(reg: registry.Registry, group: str, version: str) -> dict[str, Any]:
    """`GET /openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}` (shared; do not mutate)."""
    return _entry(reg, group, version)[0]


def document_hash(reg: registry.Registry, group: str, version: str) -> str:
    """The content hash kubectl sees in the index URL; changes whenever the document does."""
    return _entry(reg, group, version)[1]


def openapi_index(reg: registry.Registry) -> dict[str, Any]:
    """`GET /openapi/v3`: one entry per group/version with a content-hashed URL."""
    paths = {}
    for group, versions in reg.group_versions().items():
        for version in versions:
            key = gv_path(group, version)
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={document_hash(reg, group, version)}"}
    return {"paths": paths}
