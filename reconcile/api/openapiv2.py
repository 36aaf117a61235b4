"""`GET /openapi/v2`: the Swagger 2.0 document, made from the same per-group/version OpenAPI v3
documents `/openapi/v3` serves (so the two never disagree).

Why it exists: kubectl 1.32 checks `fieldValidation` support through `/openapi/v3`, but a `kind: List`
file always takes the v2 route (wire notes, streaming-protobuf-ssa.md §5.1), and a 404 there makes
`kubectl apply -f list.yaml` fail unless `--validate=false`.

kubectl asks for gnostic's protobuf `openapi_v2.Document` (Accept
`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) and cannot read JSON in its place. It
gets a Document holding `swagger` and `info` only, no definitions: kubectl then finds no schema for a
list's items, validates nothing client-side, and the server validates each object as it does every
write. Everyone else (Accept JSON) gets the whole Swagger document with definitions and paths.
"""

from __future__ import annotations

import copy
from typing import Any

from reconcile.api import openapi, registry

PROTOBUF_ACCEPT = "application/com.github.proto-openapi.spec.v2"
# kube-openapi answers the dot form; Go's mime parser refuses the `@` form kubectl asks with.
PROTOBUF_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_V3_REF = "#/components/schemas/"
_V2_REF = "#/definitions/"
# Schema keywords OpenAPI v3 has and Swagger 2.0 does not: dropped (their constraint stays on the server).
_V3_ONLY = frozenset({"nullable", "anyOf", "oneOf", "not", "writeOnly", "deprecated"})


def wants_protobuf(accept: str) -> bool:
    return PROTOBUF_ACCEPT in accept


def protobuf_document() -> bytes:
    """gnostic `Document{swagger: "2.0" (1), info: Info{title (1), version (2)} (2)}`."""
    title, version = b"Kubernetes", openapi.KUBE_VERSION.encode()
    info = _field(1, title) + _field(2, version)
    return _field(1, b"2.0") + _field(2, info)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited field; every length here is under 128, so it is one byte."""
    assert len(payload) < 128, "a longer field needs a multi-byte varint"
    return bytes([number << 3 | 2, len(payload)]) + payload


def document(reg: registry.Registry) -> dict[str, Any]:
    """The Swagger 2.0 document of every group/version the server serves."""
    paths: dict[str, Any] = {}
    definitions: dict[str, Any] = {}
    for group, versions in sorted(reg.group_versions().items()):
        for version in versions:
            v3 = openapi.openapi_document(reg, group, version)
            for path, item in v3["paths"].items():
                paths[path] = _path_item(item)
            for name, schema in v3["components"]["schemas"].items():
                definitions[name] = _schema(schema)
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": openapi.KUBE_VERSION},
            "paths": dict(sorted(paths.items())), "definitions": dict(sorted(definitions.items()))}


def _schema(value: Any) -> Any:
    """A v3 schema (or part of one) in v2 terms: references re-pointed, v3-only keywords dropped."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in _V3_ONLY:
                continue
            if key == "$ref" and isinstance(item, str) and item.startswith(_V3_REF):
                out[key] = _V2_REF + item[len(_V3_REF):]
            else:
                out[key] = _schema(item)
        return out
    if isinstance(value, list):
        return [_schema(item) for item in value]
    return value


def _parameter(param: dict[str, Any]) -> dict[str, Any]:
    """v3 `{name, in, schema: {type}}` -> v2 `{name, in, type}` (non-body parameters carry their type inline)."""
    out = {k: v for k, v in param.items() if k != "schema"}
    out.update(copy.deepcopy(param.get("schema", {})))
    return out


def _operation(op: dict[str, Any]) -> dict[str, Any]:
    out = {k: copy.deepcopy(v) for k, v in op.items() if k not in ("parameters", "requestBody", "responses")}
    params = [_parameter(p) for p in op.get("parameters", [])]
    body = op.get("requestBody")
    if body is not None:
        content = body.get("content", {})
        out["consumes"] = list(content)
        schema = next(iter(content.values()), {}).get("schema", {})
        params.insert(0, {"name": "body", "in": "body", "required": bool(body.get("required")),
                          "schema": _schema(schema)})
    out["parameters"] = params
    produces: list[str] = []
    responses = {}
    for code, response in op.get("responses", {}).items():
        entry = {"description": response.get("description", "")}
        for media_type, media in response.get("content", {}).items():
            if media_type not in produces:
                produces.append(media_type)
            entry["schema"] = _schema(media.get("schema", {}))
        responses[code] = entry
    out["produces"] = produces or ["application/json"]
    out["responses"] = responses
    return out


def _path_item(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in item.items():
        if key == "parameters":
            out[key] = [_parameter(p) for p in value]
        else:
            out[key] = _operation(value)
    return out
