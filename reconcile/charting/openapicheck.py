"""`chart lint`'s check of rendered objects against the server's OpenAPI v3 documents.

Why not only the server's dry run: a dry-run create prunes unknown fields of custom resources
silently and only warns about those of built-in kinds, and it needs the namespace to exist. The
schemas the server publishes at `/openapi/v3` say which fields each kind has and their types, so
lint can name every unknown field and every wrongly typed value by its path, offline from any
namespace. The walk follows the structural-schema rules the server applies: `properties`,
`additionalProperties`, `items`, `$ref`/`allOf`, `x-kubernetes-preserve-unknown-fields`,
`x-kubernetes-int-or-string`, `nullable`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_REF = "#/components/schemas/"
_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float),
                                       "boolean": (bool,), "object": (dict,), "array": (list,)}
_MAX_DEPTH = 64  # a schema that refers to itself (JSONSchemaProps) cannot loop the walk

Fetch = Callable[[str, dict[str, str]], dict[str, Any]]


def _resolve(node: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref` and single-entry `allOf` wrappers (how upstream documents wrap a $ref)."""
    for _ in range(20):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            node = {**components.get(ref[len(_REF):], {}), **{k: v for k, v in node.items() if k != "$ref"}}
        elif isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1 and isinstance(node["allOf"][0], dict):
            node = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
        else:
            break
    return node


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", dict: "object", list: "array", type(None): "null"}.get(type(value), type(value).__name__)


def _is(value: Any, kind: str) -> bool:
    if isinstance(value, bool):
        return kind == "boolean"
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(kind, (object,)))


def check(obj: Any, schema: dict[str, Any], components: dict[str, Any]) -> list[str]:
    """Every unknown field and wrongly typed value of `obj`, as upstream words them:
    `unknown field "spec.replicaz"`, `spec.replicas: Invalid value: "string": spec.replicas in body
    must be of type integer: "string"`."""
    problems: list[str] = []
    _walk(obj, schema, components, "", problems, 0)
    return problems


def _walk(value: Any, node: dict[str, Any], components: dict[str, Any], path: str, out: list[str],
          depth: int) -> None:
    if depth > _MAX_DEPTH or not isinstance(node, dict):
        return
    node = _resolve(node, components)
    if value is None:
        return  # null: the server drops it (or rejects it with its own message); not a type to name here
    if node.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            out.append(f'{path}: Invalid value: "{_type_of(value)}": {path} in body must be of type '
                       f'integer-or-string: "{_type_of(value)}"')
        return
    kind = node.get("type")
    if isinstance(kind, str) and kind in _TYPES and not _is(value, kind):
        out.append(f'{path or "<root>"}: Invalid value: "{_type_of(value)}": {path or "<root>"} in body must be of '
                   f'type {kind}: "{_type_of(value)}"')
        return
    if isinstance(value, dict):
        props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
        extra = node.get("additionalProperties")
        open_ended = bool(node.get("x-kubernetes-preserve-unknown-fields")) or extra is True or (
            not props and extra is None)
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if key in props:
                _walk(item, props[key], components, child, out, depth + 1)
            elif isinstance(extra, dict):
                _walk(item, extra, components, child, out, depth + 1)
            elif not open_ended:
                out.append(f'unknown field "{child}"')
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for index, item in enumerate(value):
            _walk(item, node["items"], components, f"{path}[{index}]", out, depth + 1)


class Schemas:
    """The server's OpenAPI v3 schemas by (apiVersion, kind), each group/version fetched once.

    `fetch(path, params)` GETs a JSON document (the CLI's client); it raises the client's errors,
    which the caller turns into "not checked" lines."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._index: dict[str, Any] | None = None
        self._documents: dict[str, dict[str, Any] | None] = {}

    def index(self) -> dict[str, Any]:
        """`/openapi/v3`'s group/version entries (fetched on first use; raises what `fetch` raises)."""
        if self._index is None:
            self._index = self._fetch("/openapi/v3", {}).get("paths") or {}
        return self._index

    def lookup(self, api_version: str, kind: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(schema of the kind, the document's components), or None when the server publishes none."""
        group, _, version = api_version.rpartition("/")
        key = f"apis/{group}/{version}" if group else f"api/{version}"
        entries = self.index()
        if key not in self._documents:
            entry = entries.get(key)
            if not isinstance(entry, dict):
                self._documents[key] = None
            else:
                url = entry.get("serverRelativeURL") or f"/openapi/v3/{key}"
                path, _, query = str(url).partition("?")
                params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                self._documents[key] = self._fetch(path, params)
        document = self._documents[key]
        if document is None:
            return None
        components = (document.get("components") or {}).get("schemas") or {}
        for schema in components.values():
            for gvk in schema.get("x-kubernetes-group-version-kind") or []:
                if (gvk.get("group", ""), gvk.get("version"), gvk.get("kind")) == (group, version, kind):
                    return schema, components
        return None
