"""The audit stage of the request pipeline: upstream's `audit.k8s.io/v1` Events, one JSON line per stage.

The pipeline asks the `Auditor` right after authentication (a request that fails it is audited as
`system:anonymous`); the policy (`auditpolicy`) decides the level. At `None` nothing more happens.
Otherwise a `RequestAudit` follows the request: `RequestReceived` is written at once, long-running
requests (watches, exec, logs) write `ResponseStarted` when their response begins, and every request
ends with `ResponseComplete` (or `Panic` if sending its response failed). `Request` adds the body
the client sent (`requestObject`), `RequestResponse` also the body answered (`responseObject`), as
upstream does: a policy that asks for Secrets at those levels gets their data, so the default
policy (`auditpolicy.DEFAULT_POLICY`) keeps Secrets at `Metadata`.

Hooks for the stages after this one (authorization, admission plugins such as Pod Security in audit
mode, impersonation): `add_annotation(key, value)` and `set_impersonated_user(user)` act on the
request being served, found through a context variable as upstream finds it in the request's
context, so no signature between here and a plugin has to change. Without an audited request they
do nothing.

Lines are serialized here, on the event loop (cheap; a response body is embedded as the bytes it
was sent as), and handed to the backend (`auditlog.LogBackend`), which writes off the loop.
"""

from __future__ import annotations

import contextvars
import logging
import os
import time
from typing import Any, Protocol

import orjson

from reconcile.api import auditpolicy, authn, authz, protobodies
from reconcile.core import decoding

log = logging.getLogger("reconcile.api.audit")

API_VERSION = "audit.k8s.io/v1"
MAX_RECORDED_BODY = 3 * 1024 * 1024  # the API's own request cap


class Backend(Protocol):
    def submit(self, line: bytes) -> None: ...


_current: contextvars.ContextVar[RequestAudit | None] = contextvars.ContextVar("reconcile_audit", default=None)


def add_annotation(key: str, value: str) -> None:
    """Annotate the audit event of the request being served (upstream's `audit.AddAuditAnnotation`).

    A key keeps its first value, as upstream: a second, different value is logged and ignored.
    """
    record = _current.get()
    if record is not None:
        record.annotate(key, value)


def set_impersonated_user(user: authn.UserInfo) -> None:
    """Record that the request acts as `user` (impersonation): the event then names both."""
    record = _current.get()
    if record is not None:
        record.impersonated = user


def current() -> RequestAudit | None:
    """The audit record of the request being served (None when it is not audited)."""
    return _current.get()


_second_text: tuple[int, str] = (-1, "")  # the last whole second formatted, reused within that second


def _timestamp(moment: float) -> str:
    """RFC 3339 in UTC with microseconds, as upstream's MicroTime (strftime is the slow part of an
    event; its seconds are formatted once per second)."""
    global _second_text
    second = int(moment)
    if _second_text[0] != second:
        _second_text = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second_text[1]}.{int((moment - second) * 1_000_000):06d}Z"


class BodyTap:
    """The request's `receive`, keeping a copy of the body once `recording` is set (Request levels)."""

    __slots__ = ("_receive", "recording", "chunks", "size")

    def __init__(self, receive: Any) -> None:
        self._receive = receive
        self.recording = False
        self.chunks: list[bytes] = []
        self.size = 0

    async def __call__(self) -> Any:
        message = await self._receive()
        if self.recording and message.get("type") == "http.request":
            chunk = message.get("body", b"")
            if chunk and self.size + len(chunk) <= MAX_RECORDED_BODY:
                self.chunks.append(chunk)
                self.size += len(chunk)
        return message

    def body(self) -> bytes:
        return b"".join(self.chunks)


class RequestAudit:
    """One audited request: what its events share, and what later stages add to them."""

    def __init__(self, auditor: Auditor, decision: auditpolicy.Decision, attributes: authz.Attributes, *,
                 request_uri: str, source_ips: list[str], user_agent: str, audit_id: str,
                 tap: BodyTap | None, long_running: bool) -> None:
        self.auditor = auditor
        self.decision = decision
        self.attributes = attributes
        self.request_uri = request_uri
        self.source_ips = source_ips
        self.user_agent = user_agent
        self.audit_id = audit_id
        self.tap = tap
        self.long_running = long_running
        self.received = time.time()
        self.annotations: dict[str, str] = {}
        self.impersonated: authn.UserInfo | None = None
        self.status_code = 0
        self.response_status: dict[str, Any] | None = None
        self.response_body: bytes | None = None
        self.object_name = ""  # for a create: the name the server gave the object
        self._token: contextvars.Token[RequestAudit | None] | None = None
        if tap is not None and not long_running and decision.level in (auditpolicy.REQUEST,
                                                                       auditpolicy.REQUEST_RESPONSE):
            tap.recording = True  # a long-running request's body is a stream (exec's stdin), not an object

    def annotate(self, key: str, value: str) -> None:
        existing = self.annotations.get(key)
        if existing is None:
            self.annotations[key] = value
        elif existing != value:
            log.warning("audit annotation %r already set to %r; %r ignored", key, existing, value)

    def activate(self) -> None:
        """Make this the request being served, for `add_annotation` and `set_impersonated_user`."""
        self._token = _current.set(self)

    def deactivate(self) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    # --- the response ---

    def responded(self, status_code: int, body: bytes | None) -> None:
        """What the response is: its code and, for bodies of our own JSON, the Status or the object."""
        self.status_code = status_code
        if body is None or self.long_running or not body.startswith(b"{"):
            return
        if body.startswith(b'{"kind":"Status"'):
            self.response_status = _status_of(body)
        if self.decision.level == auditpolicy.REQUEST_RESPONSE:
            self.response_body = body
        if self.attributes.verb == "create" and not self.attributes.name and status_code < 300:
            self.object_name = _name_of(body)

    def started(self) -> None:
        if self.long_running:
            self._emit(auditpolicy.STARTED)

    def complete(self, *, panic: bool = False) -> None:
        self._emit(auditpolicy.PANIC if panic else auditpolicy.COMPLETE)

    # --- events ---

    def _emit(self, stage: str) -> None:
        if stage in self.decision.omit_stages:
            return
        self.auditor.write(self.event(stage))

    def event(self, stage: str) -> dict[str, Any]:
        attributes = self.attributes
        event: dict[str, Any] = {
            "kind": "Event", "apiVersion": API_VERSION, "level": self.decision.level, "auditID": self.audit_id,
            "stage": stage, "requestURI": self.request_uri, "verb": attributes.verb,
            "user": authn.describe(attributes.user),
        }
        if self.impersonated is not None:
            event["impersonatedUser"] = authn.describe(self.impersonated)
        event["sourceIPs"] = self.source_ips
        if self.user_agent:
            event["userAgent"] = self.user_agent
        if attributes.resource_request:
            event["objectRef"] = self._object_ref()
        if stage != auditpolicy.RECEIVED:
            event["responseStatus"] = self.response_status or {"metadata": {}, "code": self.status_code or 500}
            if stage == auditpolicy.PANIC:
                event["responseStatus"] = {"metadata": {}, "status": "Failure", "code": 500,
                                           "message": "the response could not be sent"}
        if stage in (auditpolicy.COMPLETE, auditpolicy.PANIC):
            request_object = self._request_object()
            if request_object is not None:
                event["requestObject"] = request_object
            if self.response_body is not None:
                event["responseObject"] = self._response_object()
        event["requestReceivedTimestamp"] = _timestamp(self.received)
        event["stageTimestamp"] = _timestamp(time.time())
        if self.annotations:
            event["annotations"] = dict(self.annotations)
        return event

    def _object_ref(self) -> dict[str, Any]:
        attributes = self.attributes
        ref: dict[str, Any] = {"resource": attributes.resource}
        if attributes.namespace:
            ref["namespace"] = attributes.namespace
        name = attributes.name or self.object_name
        if name:
            ref["name"] = name
        if attributes.api_group:
            ref["apiGroup"] = attributes.api_group
        if attributes.api_version:
            ref["apiVersion"] = attributes.api_version
        if attributes.subresource:
            ref["subresource"] = attributes.subresource
        return ref

    def _request_object(self) -> Any:
        if self.tap is None or not self.tap.recording or not self.tap.size:
            return None
        body = self.tap.body()
        if body[:4] == protobodies.MAGIC:  # kubectl's protobuf bodies, recorded as the JSON they mean
            obj = protobodies.recorded(body)
            if obj is None:
                return None
            return _without_managed_fields(obj) if self.decision.omit_managed_fields else obj
        try:
            obj = decoding.load_json(body) if body.lstrip()[:1] in (b"{", b"[") else decoding.load_yaml(body)
        except decoding.DecodeError:
            return None  # the request was refused for it; its bytes are not an object to record
        return _without_managed_fields(obj) if self.decision.omit_managed_fields else obj

    def _response_object(self) -> Any:
        body = self.response_body
        assert body is not None
        if self.decision.omit_managed_fields and b'"managedFields"' in body:
            return _without_managed_fields(orjson.loads(body))
        if b"\n" in body:  # not our compact encoding: re-encode, a JSON line holds no raw newline
            return orjson.loads(body)
        return orjson.Fragment(body)


class Auditor:
    """The audit stage: the policy and where events go."""

    def __init__(self, policy: auditpolicy.Policy, backend: Backend) -> None:
        self.policy = policy
        self.backend = backend
        self.events = 0  # events handed to the backend

    def begin(self, attributes: authz.Attributes, *, scope: dict[str, Any], tap: BodyTap | None,
              long_running: bool) -> RequestAudit | None:
        """The record of an audited request (its RequestReceived event written), or None at level None."""
        decision = self.policy.decide(attributes)
        if decision.level == auditpolicy.NONE:
            return None
        query = scope.get("query_string") or b""
        uri = scope["path"] + ("?" + query.decode("latin-1") if query else "")
        found = _headers(scope)
        audit_id = found.get(b"audit-id") or _new_audit_id()
        record = RequestAudit(self, decision, attributes, request_uri=uri, source_ips=_source_ips(scope, found),
                              user_agent=found.get(b"user-agent", ""), audit_id=audit_id[:128], tap=tap,
                              long_running=long_running)
        record._emit(auditpolicy.RECEIVED)
        return record

    def write(self, event: dict[str, Any]) -> None:
        self.events += 1
        self.backend.submit(orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE))


def _new_audit_id() -> str:
    """A random (version 4) UUID, as upstream's audit IDs; `uuid.uuid4()` costs twice as much."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_WANTED_HEADERS = frozenset({b"audit-id", b"user-agent", b"x-forwarded-for", b"x-real-ip"})


def _headers(scope: dict[str, Any]) -> dict[bytes, str]:
    """The request headers an event names, in one pass over the ASGI header list (names are lower case)."""
    return {name: value.decode("latin-1") for name, value in scope["headers"] if name in _WANTED_HEADERS}


def _source_ips(scope: dict[str, Any], headers: dict[bytes, str]) -> list[str]:
    """Upstream's order: X-Forwarded-For entries, X-Real-Ip, then the peer's address."""
    ips: list[str] = []
    forwarded = headers.get(b"x-forwarded-for")
    if forwarded:
        ips.extend(part.strip() for part in forwarded.split(",") if part.strip())
    real = headers.get(b"x-real-ip")
    if real and real.strip() not in ips:
        ips.append(real.strip())
    client = scope.get("client")
    if client and client[0] not in ips:
        ips.append(client[0])
    return ips


def _status_of(body: bytes) -> dict[str, Any] | None:
    try:
        status = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(status, dict):
        return None
    return {key: value for key, value in status.items() if key not in ("kind", "apiVersion")}


def _name_of(body: bytes) -> str:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    return str(metadata.get("name") or "") if isinstance(metadata, dict) else ""


def _without_managed_fields(obj: Any) -> Any:
    """The object (or list) without metadata.managedFields: upstream's omitManagedFields."""
    if isinstance(obj, dict):
        metadata = obj.get("metadata")
        if isinstance(metadata, dict) and "managedFields" in metadata:
            obj = dict(obj, metadata={k: v for k, v in metadata.items() if k != "managedFields"})
        items = obj.get("items")
        if isinstance(items, list):
            obj = dict(obj, items=[_without_managed_fields(item) for item in items])
    return obj
