"""`reconcile explain KIND[.field.path]`: documentation from the schemas the server serves.

The schema comes from the server's OpenAPI v3 document for the kind's group-version, or,
failing that, from the resource definition (CRD object) itself, so built-in and custom
kinds are explained the same way.
"""

from __future__ import annotations

import textwrap
from typing import Any

import click

from reconcile.cli import common
from reconcile.core import errors

_REF = "#/components/schemas/"


@click.command()
@click.argument("target")
@click.option("--recursive", is_flag=True, help="Print every nested field name with its type.")
@common.connection_options
@common.handle_errors
def explain(target: str, recursive: bool) -> None:
    """Describe KIND or one of its fields (KIND.spec.replicas)."""
    session = common.Session()
    kind, *path = target.split(".")
    res = common.resolve(session, kind)
    schema, components = load_schema(session, res)
    if schema is None:
        common.fail(f"no schema found for {common.kind_ref(res)}")
        return
    node = schema
    for index, part in enumerate(path):
        node = child(node, part, components)
        if node is None:
            common.fail(f'field "{part}" does not exist in {".".join([res.kind, *path[:index]])}')
            return
    click.echo(render(res, path, node, components, recursive=recursive))


def load_schema(session: common.Session, res: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(schema of the kind, components for $ref lookups)."""
    try:
        found = _from_openapi(session, res)
        if found is not None:
            return found
    except errors.ApiError:
        pass
    return _from_crd(session, res), {}


def _from_openapi(session: common.Session, res: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
    index = session.client.request("GET", "/openapi/v3", headers={"Accept": "application/json"}).json()
    key = f"apis/{res.group}/{res.version}" if res.group else f"api/{res.version}"
    entry = (index.get("paths") or {}).get(key)
    if not entry:
        return None
    url = entry.get("serverRelativeURL") or f"/openapi/v3/{key}"
    path, _, query = url.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
    doc = session.client.request("GET", path, params=params, headers={"Accept": "application/json"}).json()
    components = (doc.get("components") or {}).get("schemas") or {}
    for schema in components.values():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            if gvk.get("group", "") == res.group and gvk.get("version") == res.version \
                    and gvk.get("kind") == res.kind:
                return schema, components
    return None


def _from_crd(session: common.Session, res: Any) -> dict[str, Any] | None:
    names = [f"{res.plural}.{res.group}" if res.group else res.plural]
    if not res.group:
        names.append(f"{res.plural}.core")
    for name in names:
        try:
            crd = session.client.get("apiextensions.k8s.io/v1", "customresourcedefinitions", name)
        except errors.NotFound:
            continue
        for version in (crd.get("spec") or {}).get("versions") or []:
            if version.get("name") == res.version:
                return ((version.get("schema") or {}).get("openAPIV3Schema")) or None
    return None


def resolve(node: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref` and single-entry `allOf` wrappers, keeping the outer description."""
    seen = 0
    while seen < 20:
        seen += 1
        if "$ref" in node and node["$ref"].startswith(_REF):
            target = components.get(node["$ref"][len(_REF):], {})
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        elif isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
            inner = node["allOf"][0]
            node = {**inner, **{k: v for k, v in node.items() if k != "allOf"}}
        else:
            return node
    return node


def child(node: dict[str, Any], name: str, components: dict[str, Any]) -> dict[str, Any] | None:
    """The schema of field `name` (through arrays: `containers.image` explains the item's field)."""
    node = resolve(node, components)
    while node.get("type") == "array" and isinstance(node.get("items"), dict):
        node = resolve(node["items"], components)
    props = node.get("properties") or {}
    return resolve(props[name], components) if name in props else None


def type_name(node: dict[str, Any], components: dict[str, Any]) -> str:
    """kubectl's type words: string, integer, boolean, Object, []Object, map[string]string, IntOrString."""
    node = resolve(node, components)
    if node.get("x-kubernetes-int-or-string"):
        return "IntOrString"
    kind = node.get("type")
    if kind == "array":
        return "[]" + type_name(node.get("items") or {}, components)
    if kind == "object" or node.get("properties"):
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and not node.get("properties"):
            return "map[string]" + type_name(extra, components)
        return "Object"
    return str(kind or "Object")


def render(res: Any, path: list[str], node: dict[str, Any], components: dict[str, Any], *,
           recursive: bool = False) -> str:
    """KIND, VERSION, [FIELD], DESCRIPTION, FIELDS in kubectl explain's layout."""
    node = resolve(node, components)
    lines = [f"GROUP:      {res.group}"] if res.group else []
    lines += [f"KIND:       {res.kind}", f"VERSION:    {res.version}", ""]
    if path:
        lines += [f"FIELD: {path[-1]} <{type_name(node, components)}>", ""]
    lines.append("DESCRIPTION:")
    lines.extend(_wrap(node.get("description") or "<empty>", indent=4))
    fields_node = node
    while fields_node.get("type") == "array" and isinstance(fields_node.get("items"), dict):
        fields_node = resolve(fields_node["items"], components)
    props = fields_node.get("properties") or {}
    if props:
        lines += ["", "FIELDS:"]
        required = set(fields_node.get("required") or [])
        if recursive:
            lines.extend(_recursive_fields(fields_node, components, indent=2, depth=0))
        else:
            for name in sorted(props):
                prop = resolve(props[name], components)
                flag = " -required-" if name in required else ""
                lines.append(f"  {name}\t<{type_name(prop, components)}>{flag}")
                lines.extend(_wrap(prop.get("description") or "<no description>", indent=4))
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _recursive_fields(node: dict[str, Any], components: dict[str, Any], *, indent: int, depth: int) -> list[str]:
    out: list[str] = []
    if depth > 15:
        return out
    props = node.get("properties") or {}
    for name in sorted(props):
        prop = resolve(props[name], components)
        out.append(" " * indent + f"{name}\t<{type_name(prop, components)}>")
        inner = prop
        while inner.get("type") == "array" and isinstance(inner.get("items"), dict):
            inner = resolve(inner["items"], components)
        out.extend(_recursive_fields(inner, components, indent=indent + 2, depth=depth + 1))
    return out


def _wrap(text: str, *, indent: int) -> list[str]:
    lines: list[str] = []
    for paragraph in str(text).splitlines() or [""]:
        lines.extend(textwrap.wrap(paragraph, width=80, initial_indent=" " * indent,
                                   subsequent_indent=" " * indent) or [""])
    return lines
