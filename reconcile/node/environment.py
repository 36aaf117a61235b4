"""A container's environment as Kubernetes computes it: envFrom, env, valueFrom, $(VAR) expansion.

Resolved here (not in the template) because ConfigMap and Secret values need API reads; the
template then only lays the final list out. A missing key or object that is not `optional` is a
`ConfigError`, which the agent reports as waiting reason `CreateContainerConfigError`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable
from typing import Any

from reconcile.core import errors

Fetch = Callable[[str, str, str], Awaitable[dict | None]]  # (plural, namespace, name) -> object or None

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ConfigError(Exception):
    """The container cannot be configured yet (a referenced ConfigMap/Secret key is missing)."""


def expand(text: str, values: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: known names are replaced, unknown ones stay, `$$` is `$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return values[name] if name in values else match.group(0)

    return _REFERENCE.sub(replace, text)


def field_value(pod: dict[str, Any], field_path: str, *, host_ip: str) -> str:
    """The downward API fields a container may ask for with `fieldRef`."""
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    simple = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP") or host_ip,
    }
    if field_path in simple:
        return str(simple[field_path] or "")
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", field_path)
    if match:
        return str((metadata.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ConfigError(f'unsupported fieldRef fieldPath "{field_path}"')


def decoded_data(obj: dict[str, Any], plural: str) -> dict[str, bytes]:
    """The key -> bytes map of a ConfigMap (data + binaryData) or a Secret (base64 data)."""
    if plural == "secrets":
        return {k: base64.b64decode(v or "") for k, v in (obj.get("data") or {}).items()}
    data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v or "") for k, v in (obj.get("binaryData") or {}).items()})
    return data


async def _key(fetch: Fetch, plural: str, namespace: str, ref: dict[str, Any]) -> str | None:
    kind = "configmap" if plural == "configmaps" else "secret"
    name = ref.get("name") or ""
    obj = await fetch(plural, namespace, name)
    if obj is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{kind} "{name}" not found')
    data = decoded_data(obj, plural)
    if ref["key"] not in data:
        if ref.get("optional"):
            return None
        raise ConfigError(f"couldn't find key {ref['key']} in {kind.capitalize()} {namespace}/{name}")
    return data[ref["key"]].decode("utf-8", "replace")


async def resolve(pod: dict[str, Any], container: dict[str, Any], fetch: Fetch, *,
                  host_ip: str) -> tuple[list[dict[str, str]], list[str] | None, list[str] | None]:
    """(env as [{name, value}], command, args) with every reference resolved and expanded."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    values: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        for plural, field in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            ref = source.get(field)
            if not ref:
                continue
            obj = await fetch(plural, namespace, ref.get("name") or "")
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{field[:-3].lower()} "{ref.get("name")}" not found')
            for key, raw in decoded_data(obj, plural).items():
                values[prefix + key] = raw.decode("utf-8", "replace")
    for item in container.get("env") or []:
        name = item["name"]
        source = item.get("valueFrom")
        if source is None:
            values[name] = expand(str(item.get("value") or ""), values)
        elif source.get("fieldRef"):
            values[name] = field_value(pod, source["fieldRef"]["fieldPath"], host_ip=host_ip)
        elif source.get("configMapKeyRef"):
            found = await _key(fetch, "configmaps", namespace, source["configMapKeyRef"])
            if found is not None:
                values[name] = found
        elif source.get("secretKeyRef"):
            found = await _key(fetch, "secrets", namespace, source["secretKeyRef"])
            if found is not None:
                values[name] = found
        elif source.get("resourceFieldRef"):
            values[name] = resource_field(container, source["resourceFieldRef"])
    env = [{"name": k, "value": v} for k, v in values.items()]
    command = [expand(str(p), values) for p in container["command"]] if container.get("command") else None
    args = [expand(str(p), values) for p in container["args"]] if container.get("args") else None
    return env, command, args


def resource_field(container: dict[str, Any], ref: dict[str, Any]) -> str:
    """A container's request or limit (`limits.cpu`, ...) as env vars and downwardAPI files show it."""
    kind, _, resource = str(ref.get("resource") or "").partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(resource)
    return "0" if value is None else str(value)


def fetcher(client: Any) -> Fetch:
    """A `Fetch` over an AsyncClient: NotFound becomes None."""

    async def fetch(plural: str, namespace: str, name: str) -> dict | None:
        try:
            return await client.get("v1", plural, name, namespace=namespace)
        except errors.NotFound:
            return None

    return fetch
