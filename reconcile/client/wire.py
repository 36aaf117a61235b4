"""The parts of a call that do no I/O, shared by the sync and async clients.

Each verb is a function that returns a `RequestSpec` (method, path, query, body, headers);
the two clients only send specs and hand responses back here to be decoded, so paths,
parameters, content types and error mapping exist exactly once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx

from reconcile.client import options as options_mod
from reconcile.core import errors

PatchType = Literal["merge", "json", "strategic", "apply"]

PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
JSON = "application/json"


@dataclass
class RequestSpec:
    """One HTTP request, described but not sent."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = False
    read_timeout: float | None = None  # only for streams: None = wait forever


# --- paths ---------------------------------------------------------------------------------


def group_version_path(api_version: str) -> str:
    """`/api/v1` for the core group, `/apis/{group}/{version}` for the rest."""
    if "/" not in api_version:
        return f"/api/{api_version}"
    return f"/apis/{api_version}"


def collection_path(api_version: str, plural: str, *, namespace: str | None = None) -> str:
    path = group_version_path(api_version)
    if namespace:
        path += f"/namespaces/{_segment(namespace)}"
    return f"{path}/{_segment(plural)}"


def object_path(
    api_version: str, plural: str, name: str, *, namespace: str | None = None, subresource: str | None = None
) -> str:
    if not name:
        raise errors.BadRequest("resource name may not be empty")
    path = f"{collection_path(api_version, plural, namespace=namespace)}/{_segment(name)}"
    if subresource:
        path += f"/{_segment(subresource)}"
    return path


def _segment(value: str) -> str:
    """A path segment, escaped so a name can never add or climb path levels."""
    if value in (".", ".."):
        raise errors.BadRequest(f"invalid path segment {value!r}")
    return quote(value, safe="")


def split_api_version(api_version: str) -> tuple[str, str]:
    """("apps", "v1") for "apps/v1", ("", "v1") for "v1"."""
    group, _, version = api_version.rpartition("/")
    return group, version


# --- request builders ------------------------------------------------------------------------


def _write_params(
    *, dry_run: bool = False, field_manager: str | None = None, field_validation: str | None = None
) -> dict[str, str]:
    params: dict[str, str] = {}
    if dry_run:
        params["dryRun"] = "All"
    if field_manager:
        params["fieldManager"] = field_manager
    if field_validation:
        params["fieldValidation"] = field_validation
    return params


def namespace_of(obj: dict[str, Any], namespace: str | None) -> str | None:
    """The explicit namespace wins over the object's own `metadata.namespace`."""
    return namespace or (obj.get("metadata") or {}).get("namespace") or None


def name_of(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def get_request(
    api_version: str, plural: str, name: str, *, namespace: str | None = None, subresource: str | None = None
) -> RequestSpec:
    return RequestSpec(
        "GET", object_path(api_version, plural, name, namespace=namespace, subresource=subresource)
    )


def list_request(
    api_version: str,
    plural: str,
    *,
    namespace: str | None = None,
    options: options_mod.ListOptions | None = None,
) -> RequestSpec:
    params = (options or options_mod.ListOptions()).params()
    return RequestSpec("GET", collection_path(api_version, plural, namespace=namespace), params=params)


def create_request(
    api_version: str,
    plural: str,
    obj: dict[str, Any],
    *,
    namespace: str | None = None,
    dry_run: bool = False,
    field_manager: str | None = None,
    field_validation: str | None = None,
) -> RequestSpec:
    params = _write_params(dry_run=dry_run, field_manager=field_manager, field_validation=field_validation)
    path = collection_path(api_version, plural, namespace=namespace_of(obj, namespace))
    return RequestSpec("POST", path, params=params, json=obj)


def replace_request(
    api_version: str,
    plural: str,
    obj: dict[str, Any],
    *,
    namespace: str | None = None,
    subresource: str | None = None,
    dry_run: bool = False,
    field_manager: str | None = None,
    field_validation: str | None = None,
) -> RequestSpec:
    params = _write_params(dry_run=dry_run, field_manager=field_manager, field_validation=field_validation)
    path = object_path(
        api_version, plural, name_of(obj), namespace=namespace_of(obj, namespace), subresource=subresource
    )
    return RequestSpec("PUT", path, params=params, json=obj)


def patch_request(
    api_version: str,
    plural: str,
    name: str,
    patch: Any,
    *,
    namespace: str | None = None,
    patch_type: PatchType = "merge",
    field_manager: str | None = None,
    force: bool = False,
    subresource: str | None = None,
    dry_run: bool = False,
    field_validation: str | None = None,
) -> RequestSpec:
    if patch_type not in PATCH_CONTENT_TYPES:
        raise errors.BadRequest(
            f"unknown patch type {patch_type!r}: use one of {', '.join(PATCH_CONTENT_TYPES)}"
        )
    if patch_type == "apply" and not field_manager:
        raise errors.BadRequest("fieldManager is required for apply patch")
    params = _write_params(dry_run=dry_run, field_manager=field_manager, field_validation=field_validation)
    if force:
        params["force"] = "true"
    # JSON is valid YAML, so an apply patch can go as JSON text under the apply content type.
    body = (
        patch if isinstance(patch, bytes) else (patch.encode() if isinstance(patch, str) else _dumps(patch))
    )
    path = object_path(api_version, plural, name, namespace=namespace, subresource=subresource)
    return RequestSpec(
        "PATCH", path, params=params, content=body, headers={"Content-Type": PATCH_CONTENT_TYPES[patch_type]}
    )


def delete_request(
    api_version: str,
    plural: str,
    name: str,
    *,
    namespace: str | None = None,
    propagation_policy: str | None = None,
    grace_period_seconds: int | None = None,
    dry_run: bool = False,
    preconditions: dict[str, str] | None = None,
) -> RequestSpec:
    params = _write_params(dry_run=dry_run)
    if propagation_policy:
        params["propagationPolicy"] = propagation_policy
    if grace_period_seconds is not None:
        params["gracePeriodSeconds"] = str(grace_period_seconds)
    body: dict[str, Any] | None = None
    if preconditions:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": preconditions}
    return RequestSpec(
        "DELETE", object_path(api_version, plural, name, namespace=namespace), params=params, json=body
    )


def delete_collection_request(
    api_version: str,
    plural: str,
    *,
    namespace: str | None = None,
    options: options_mod.ListOptions | None = None,
    propagation_policy: str | None = None,
    dry_run: bool = False,
) -> RequestSpec:
    params = _write_params(dry_run=dry_run)
    selection = (options or options_mod.ListOptions()).selection()
    params.update(selection.params())
    if propagation_policy:
        params["propagationPolicy"] = propagation_policy
    return RequestSpec("DELETE", collection_path(api_version, plural, namespace=namespace), params=params)


def watch_request(
    api_version: str,
    plural: str,
    *,
    namespace: str | None = None,
    options: options_mod.ListOptions | None = None,
    idle_timeout: float | None = None,
) -> RequestSpec:
    """A watch stream; `idle_timeout` is how long the client waits for a line before giving up."""
    options = options or options_mod.ListOptions()
    read_timeout = idle_timeout
    if options.timeout_seconds is not None:
        # the server closes the stream itself; only a dead connection should trip the client
        read_timeout = max(read_timeout or 0.0, options.timeout_seconds + 30.0)
    return RequestSpec(
        "GET",
        collection_path(api_version, plural, namespace=namespace),
        params=options.params(watch=True),
        stream=True,
        read_timeout=read_timeout,
    )


# --- responses -------------------------------------------------------------------------------


def error_for(response: httpx.Response) -> errors.ApiError:
    """The typed error for a non-2xx answer; a body that is not a Status still maps by code."""
    status: dict[str, Any] = {}
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        status = body
    else:
        text = response.content.decode("utf-8", "replace").strip()[:500]
        status = {"message": text or f"HTTP {response.status_code} {response.reason_phrase}".strip()}
    status.setdefault("code", response.status_code)
    return errors.from_status(status, http_code=response.status_code)


def check(response: httpx.Response) -> None:
    """Raise the mapped error unless the answer is 2xx (the body must already be read)."""
    if not response.is_success:
        raise error_for(response)


def decode(response: httpx.Response) -> Any:
    """The JSON body of a successful answer (raises the mapped error otherwise)."""
    check(response)
    if not response.content:
        return {}
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise errors.InternalError(
            f"{response.request.method} {response.request.url}: answer is not JSON "
            f"({response.headers.get('content-type', 'no content type')})"
        ) from exc


def parse_watch_line(line: str | bytes) -> dict[str, Any] | None:
    """One event from a watch stream; ERROR events become exceptions (410 -> `errors.Gone`)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8")
    line = line.strip()
    if not line:
        return None
    try:
        event = json.loads(line)
    except ValueError as exc:
        raise errors.InternalError(f"malformed watch event: {line[:200]!r}") from exc
    if not isinstance(event, dict) or "type" not in event:
        raise errors.InternalError(f"malformed watch event: {line[:200]!r}")
    if event["type"] == "ERROR":
        status = event.get("object") or {}
        if not isinstance(status, dict):
            status = {"message": str(status)}
        raise errors.from_status(status, http_code=int(status.get("code") or 500))
    return event


def transport_error(exc: httpx.HTTPError, server: str) -> errors.ServiceUnavailable:
    """httpx's connection failures, in our terms and naming the server that failed."""
    return errors.ServiceUnavailable(f"cannot reach the API server at {server}: {type(exc).__name__}: {exc}")


def headers_for(spec: RequestSpec) -> dict[str, str]:
    headers = {"Accept": JSON}
    headers.update(spec.headers)
    return headers


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
