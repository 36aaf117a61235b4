"""HTTP plumbing: reading bodies safely, content negotiation, and JSON/Status responses.

Everything here exists so a hostile or broken request fails fast with a clear Status:
bodies are capped while they stream in, and any Accept that allows JSON gets JSON.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.datastructures import Headers, QueryParams
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from reconcile.api import decoding
from reconcile.core import decoding as core_decoding
from reconcile.core import errors

MAX_BODY_BYTES = 3 * 1024 * 1024
INLINE_BODY_BYTES = 64 * 1024
JSON = "application/json"
TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
DISCOVERY_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, APPLY_PATCH)


_NO_QUERY = QueryParams()


class _Headers(Headers):
    """Starlette's `Headers` whose `get` scans the ASGI scope's header list once and returns the
    default for an absent header (the inherited `get` raises and catches a KeyError for each, and
    `accept` is often absent)."""

    def __init__(self, scope: Any) -> None:
        super().__init__(scope=scope)
        self._raw_headers: list[tuple[bytes, bytes]] = scope["headers"]

    def get(self, key: str, default: Any = None) -> Any:
        wanted = key.lower().encode("latin-1")
        for name, value in self._raw_headers:
            if name == wanted:
                return value.decode("latin-1")
        return default


class ApiRequest(Request):
    """A Starlette `Request` for the resource paths, made cheaper where every request pays:
    an empty query string is not parsed, and header lookups do not raise for absent headers."""

    @property
    def query_params(self) -> QueryParams:
        if not self.scope["query_string"]:
            return _NO_QUERY
        return super().query_params

    @property
    def headers(self) -> Headers:
        if not hasattr(self, "_headers"):
            self._headers = _Headers(self.scope)
        return self._headers


class JSONBytes(Response):
    """A JSON response whose headers are built directly: nearly every API answer is one of these,
    and Starlette's general header assembly is a measurable share of a small request."""

    def __init__(self, body: bytes, *, status: int = 200, content_type: str = JSON,
                 headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.body = body
        self.background = None
        raw = [(b"content-length", str(len(body)).encode()), (b"content-type", content_type.encode("latin-1"))]
        if headers:
            raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
        self.raw_headers = raw


def json_response(body: Any, *, status: int = 200, content_type: str = JSON, headers: dict[str, str] | None = None) -> Response:
    return JSONBytes(body if isinstance(body, bytes) else orjson.dumps(body), status=status,
                     content_type=content_type, headers=headers)


def status_response(error: errors.ApiError) -> Response:
    headers = None
    if isinstance(error, errors.TooManyRequests):
        headers = {"Retry-After": str((error.details or {}).get("retryAfterSeconds", 1))}
    return json_response(error.to_status(), status=error.code, headers=headers)


# As upstream's warning recorder (apiserver/pkg/endpoints/filters/warning.go), but in UTF-8 bytes, not
# runes (a client's whole header block may be as small as 16 KiB): past 4 KiB in all, each warning is
# cut to 256 characters, and those that still do not fit are dropped.
WARNINGS_TOTAL_BYTES = 4 * 1024
WARNING_ITEM_CHARS = 256
_CONTROL = {code: " " for code in (*range(0x20), 0x7F)}


def warning_header(warnings: list[str]) -> str:
    """The `Warning` header for `warnings` (`299 - "text"` each), as a str whose latin-1 encoding is
    the UTF-8 the header carries (what Go writes). Warnings quote what clients sent (unknown field
    names), so control characters become spaces (a newline in a header dropped the connection, after
    the write was stored) and the length is bounded as upstream's."""
    texts = [w.translate(_CONTROL) for w in warnings]
    if sum(len(t.encode()) for t in texts) > WARNINGS_TOTAL_BYTES:
        texts = [t if len(t) <= WARNING_ITEM_CHARS else t[: WARNING_ITEM_CHARS - 3] + "..." for t in texts]
        kept, total = [], 0
        for text in texts:
            total += len(text.encode())
            if total > WARNINGS_TOTAL_BYTES:
                break
            kept.append(text)
        texts = kept
    value = ", ".join('299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"' for text in texts)
    return value.encode("utf-8", "replace").decode("latin-1")


def success_status(details: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


async def read_body(request: Request, *, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:  # straight from `receive`: Starlette's stream() generator costs more than the copy
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> errors.RequestEntityTooLarge:
    return errors.RequestEntityTooLarge(f"Request entity too large: limit is {limit}")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def decode_object(body: bytes, content_type: str, *, what: str = "object") -> Any:
    """Decode a small body right here (a subresource's options); the resource verbs use the
    pipeline's `decoding.BodyDecoder`, which moves large bodies off the event loop."""
    if len(body) > INLINE_BODY_BYTES:
        raise _too_large(INLINE_BODY_BYTES)
    if not body.strip():
        raise errors.BadRequest(f"the body of the request was empty; expected a {what}")
    try:
        return decoding.decode_now(body, decoding.format_of(body, content_type), strict=False)
    except core_decoding.DecodeError as exc:
        raise errors.BadRequest(f"error decoding the request body: {exc}") from None


def wants_table(request: Request) -> bool:
    return "as=Table" in request.headers.get("accept", "")


def check_accept(request: Request) -> None:
    """406 only when the client rules JSON out entirely."""
    accept = request.headers.get("accept", "")
    if not accept:
        return
    lowered = accept.lower()
    if "json" in lowered or "*/*" in lowered or "application/*" in lowered or "yaml" in lowered:
        return
    raise errors.NotAcceptable(f"only the following media types are accepted: application/json (asked for {accept})")


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"", "0", "f", "F", "FALSE", "false", "False"})


def query_bool(request: Request, name: str) -> bool:
    """A boolean query parameter as Go's strconv.ParseBool reads it (400 for anything else)."""
    value = request.query_params.get(name, "")
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise errors.BadRequest(f'invalid value for {name}: "{value}": must be a boolean')


def query_int(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise errors.BadRequest(f"invalid value for {name}: {value!r}: must be an integer") from None
