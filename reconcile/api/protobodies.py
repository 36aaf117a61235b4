"""Kubernetes protobuf request bodies the server reads (wire notes §3): the `k8s\\0` envelope and the
messages of the kinds that kubectl 1.32 sends only in protobuf (it does not fall back to JSON on 415).

Those are the review kinds (`kubectl auth can-i` posts a SelfSubjectAccessReview, `--list` a
SelfSubjectRulesReview, `auth whoami` a SelfSubjectReview), TokenRequest (`kubectl create token`)
and the objects of `kubectl create serviceaccount|namespace|configmap|secret|role|rolebinding|
clusterrole|clusterrolebinding|quota|priorityclass|ingress` (the workload and networking kinds'
tables are `protoworkloads`' and `protonetworking`'), and CertificateSigningRequest, which `kubectl certificate
approve|deny` PUTs to `/approval` (its status conditions are read too, since that is what an
approval writes). Protobuf *updates* are read only for the kinds in `UPDATABLE`: the CSR and the
RBAC kinds `kubectl auth reconcile` PUTs. Each kind is a table of the upstream .proto's field numbers
(`core.protomessages`), decoded into the JSON shape the handler validates anyway, so a protobuf
request meets exactly the checks a JSON one does. Answers stay JSON: kubectl's Accept is
`application/vnd.kubernetes.protobuf,application/json`. Status parts are not read: the server
fills them. Anything malformed is a 400 naming the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconcile.api import protoautoscaling, protometa, protonetworking, protoworkloads
from reconcile.core import errors, protowire
from reconcile.core.protomessages import BOOL, BYTES, INT32, INT64, STRING, Field, Map, Message, decode

MAGIC = b"k8s\x00"
MEDIA_TYPES = frozenset({"application/vnd.kubernetes.protobuf", "application/protobuf"})
# The reader is pure Python (~0.6 s per MiB of tiny fields): beyond this (~10 ms) a body is read off
# the event loop. Review bodies and kubectl's generator objects are a few hundred bytes.
INLINE_MAX_BYTES = 16 * 1024

# --- meta/v1 (shared with the workload tables) ----------------------------------------------------

OWNER_REFERENCE, OBJECT_META, SELECTOR_REQUIREMENT = protometa.OWNER_REFERENCE, protometa.OBJECT_META, \
    protometa.SELECTOR_REQUIREMENT
QUANTITY, LABEL_SELECTOR = protometa.QUANTITY, protometa.LABEL_SELECTOR

# --- authorization.k8s.io/v1 ---------------------------------------------------------------------

SELECTOR_ATTRIBUTES = Message("SelectorAttributes", (  # Field- and LabelSelectorAttributes alike
    Field(1, "rawSelector", STRING), Field(2, "requirements", SELECTOR_REQUIREMENT, repeated=True)))
RESOURCE_ATTRIBUTES = Message("ResourceAttributes", (
    Field(1, "namespace", STRING), Field(2, "verb", STRING), Field(3, "group", STRING), Field(4, "version", STRING),
    Field(5, "resource", STRING), Field(6, "subresource", STRING), Field(7, "name", STRING),
    Field(8, "fieldSelector", SELECTOR_ATTRIBUTES), Field(9, "labelSelector", SELECTOR_ATTRIBUTES)))
NON_RESOURCE_ATTRIBUTES = Message("NonResourceAttributes", (Field(1, "path", STRING), Field(2, "verb", STRING)))
EXTRA_VALUE = Message("ExtraValue", (Field(1, "items", STRING, repeated=True),), unwrap=True)
_ATTRIBUTES = (Field(1, "resourceAttributes", RESOURCE_ATTRIBUTES),
               Field(2, "nonResourceAttributes", NON_RESOURCE_ATTRIBUTES))
SELF_SUBJECT_ACCESS_REVIEW_SPEC = Message("SelfSubjectAccessReviewSpec", _ATTRIBUTES)
SUBJECT_ACCESS_REVIEW_SPEC = Message("SubjectAccessReviewSpec", (
    *_ATTRIBUTES, Field(3, "user", STRING), Field(4, "groups", STRING, repeated=True),
    Field(5, "extra", Map(EXTRA_VALUE)), Field(6, "uid", STRING)))
SELF_SUBJECT_RULES_REVIEW_SPEC = Message("SelfSubjectRulesReviewSpec", (Field(1, "namespace", STRING),))

# --- authentication.k8s.io/v1 --------------------------------------------------------------------

BOUND_OBJECT_REFERENCE = Message("BoundObjectReference", (
    Field(1, "kind", STRING), Field(2, "apiVersion", STRING), Field(3, "name", STRING), Field(4, "uid", STRING)))
TOKEN_REQUEST_SPEC = Message("TokenRequestSpec", (
    Field(1, "audiences", STRING, repeated=True), Field(4, "expirationSeconds", INT64, pointer=True),
    Field(3, "boundObjectRef", BOUND_OBJECT_REFERENCE)))
TOKEN_REVIEW_SPEC = Message("TokenReviewSpec", (Field(1, "token", STRING), Field(2, "audiences", STRING, repeated=True)))

# --- core/v1 and rbac.authorization.k8s.io/v1 (what `kubectl create <generator>` sends) ------------

OBJECT_REFERENCE, LOCAL_OBJECT_REFERENCE = protometa.OBJECT_REFERENCE, protometa.LOCAL_OBJECT_REFERENCE
POLICY_RULE = Message("PolicyRule", (
    Field(1, "verbs", STRING, repeated=True), Field(2, "apiGroups", STRING, repeated=True),
    Field(3, "resources", STRING, repeated=True), Field(4, "resourceNames", STRING, repeated=True),
    Field(5, "nonResourceURLs", STRING, repeated=True)))
SUBJECT = Message("Subject", (
    Field(1, "kind", STRING), Field(2, "apiGroup", STRING), Field(3, "name", STRING), Field(4, "namespace", STRING)))
ROLE_REF = Message("RoleRef", (Field(1, "apiGroup", STRING), Field(2, "kind", STRING), Field(3, "name", STRING)))
_BINDING = (Field(1, "metadata", OBJECT_META), Field(2, "subjects", SUBJECT, repeated=True),
            Field(3, "roleRef", ROLE_REF))


def _top(kind: str, *fields: Field) -> Message:
    return Message(kind, fields)


# --- certificates.k8s.io/v1 (`kubectl certificate approve|deny`: a PUT to /approval) ---------------

CSR_CONDITION = Message("CertificateSigningRequestCondition", (
    Field(1, "type", STRING), Field(6, "status", STRING), Field(2, "reason", STRING), Field(3, "message", STRING),
    Field(4, "lastUpdateTime", protometa.TIME_MESSAGE), Field(5, "lastTransitionTime", protometa.TIME_MESSAGE)))
CSR_SPEC = Message("CertificateSigningRequestSpec", (
    Field(1, "request", BYTES), Field(7, "signerName", STRING), Field(8, "expirationSeconds", INT32, pointer=True),
    Field(5, "usages", STRING, repeated=True), Field(2, "username", STRING), Field(3, "uid", STRING),
    Field(4, "groups", STRING, repeated=True), Field(6, "extra", Map(EXTRA_VALUE))))
CSR_STATUS = Message("CertificateSigningRequestStatus", (
    Field(1, "conditions", CSR_CONDITION, repeated=True), Field(2, "certificate", BYTES)))
CERTIFICATE_SIGNING_REQUEST = ("certificates.k8s.io/v1", "CertificateSigningRequest")

# (apiVersion, kind) of the endpoint -> its message, without TypeMeta (the envelope carries that)
MESSAGES: dict[tuple[str, str], Message] = {
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): _top(
        "SelfSubjectAccessReview", Field(1, "metadata", OBJECT_META), Field(2, "spec", SELF_SUBJECT_ACCESS_REVIEW_SPEC)),
    ("authorization.k8s.io/v1", "SubjectAccessReview"): _top(
        "SubjectAccessReview", Field(1, "metadata", OBJECT_META), Field(2, "spec", SUBJECT_ACCESS_REVIEW_SPEC)),
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): _top(
        "LocalSubjectAccessReview", Field(1, "metadata", OBJECT_META), Field(2, "spec", SUBJECT_ACCESS_REVIEW_SPEC)),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): _top(
        "SelfSubjectRulesReview", Field(1, "metadata", OBJECT_META), Field(2, "spec", SELF_SUBJECT_RULES_REVIEW_SPEC)),
    ("authentication.k8s.io/v1", "SelfSubjectReview"): _top("SelfSubjectReview", Field(1, "metadata", OBJECT_META)),
    ("authentication.k8s.io/v1", "TokenReview"): _top(
        "TokenReview", Field(1, "metadata", OBJECT_META), Field(2, "spec", TOKEN_REVIEW_SPEC)),
    ("authentication.k8s.io/v1", "TokenRequest"): _top(
        "TokenRequest", Field(1, "metadata", OBJECT_META), Field(2, "spec", TOKEN_REQUEST_SPEC)),
    ("v1", "ServiceAccount"): _top(
        "ServiceAccount", Field(1, "metadata", OBJECT_META), Field(2, "secrets", OBJECT_REFERENCE, repeated=True),
        Field(3, "imagePullSecrets", LOCAL_OBJECT_REFERENCE, repeated=True),
        Field(4, "automountServiceAccountToken", BOOL, pointer=True)),
    ("v1", "Namespace"): _top(
        "Namespace", Field(1, "metadata", OBJECT_META),
        Field(2, "spec", Message("NamespaceSpec", (Field(1, "finalizers", STRING, repeated=True),)))),
    ("v1", "ConfigMap"): _top(
        "ConfigMap", Field(1, "metadata", OBJECT_META), Field(4, "immutable", BOOL, pointer=True),
        Field(2, "data", Map(STRING)), Field(3, "binaryData", Map(BYTES))),
    ("v1", "Secret"): _top(
        "Secret", Field(1, "metadata", OBJECT_META), Field(5, "immutable", BOOL, pointer=True),
        Field(2, "data", Map(BYTES)), Field(4, "stringData", Map(STRING)), Field(3, "type", STRING)),
    ("v1", "ResourceQuota"): _top(
        "ResourceQuota", Field(1, "metadata", OBJECT_META), Field(2, "spec", Message("ResourceQuotaSpec", (
            Field(1, "hard", Map(QUANTITY)), Field(2, "scopes", STRING, repeated=True),
            Field(3, "scopeSelector", Message("ScopeSelector", (Field(1, "matchExpressions", Message(
                "ScopedResourceSelectorRequirement", (Field(1, "scopeName", STRING), Field(2, "operator", STRING),
                                                      Field(3, "values", STRING, repeated=True))),
                repeated=True),))))))),
    ("rbac.authorization.k8s.io/v1", "Role"): _top(
        "Role", Field(1, "metadata", OBJECT_META), Field(2, "rules", POLICY_RULE, repeated=True)),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): _top(
        "ClusterRole", Field(1, "metadata", OBJECT_META), Field(2, "rules", POLICY_RULE, repeated=True),
        Field(3, "aggregationRule", Message("AggregationRule", (
            Field(1, "clusterRoleSelectors", LABEL_SELECTOR, repeated=True),)))),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): _top("RoleBinding", *_BINDING),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): _top("ClusterRoleBinding", *_BINDING),
    CERTIFICATE_SIGNING_REQUEST: _top(
        "CertificateSigningRequest", Field(1, "metadata", OBJECT_META), Field(2, "spec", CSR_SPEC),
        Field(3, "status", CSR_STATUS)),
    # policy/v1 Eviction: what client-go's typed EvictV1 posts to pods/eviction (kubectl drain's is JSON)
    ("policy/v1", "Eviction"): _top("Eviction", Field(1, "metadata", OBJECT_META),
                                    Field(2, "deleteOptions", protometa.DELETE_OPTIONS)),
    **protoworkloads.MESSAGES,
    **protonetworking.MESSAGES,
    **protoautoscaling.MESSAGES,
}
# Kinds whose protobuf PUT is read too. Only where the table reads every field an update may change:
# a CSR's spec is immutable and its status comes from the old object except what /approval or
# /status writes (conditions, certificate), all in the table; the RBAC kinds (`kubectl auth reconcile`
# PUTs them) have every field of upstream's messages in their tables, ObjectMeta's but what the server
# keeps from the stored object on an update anyway (timestamps, managedFields: absent keeps them);
# elsewhere a partial table would drop fields on an update, so those stay 415.
RBAC_KINDS = frozenset(("rbac.authorization.k8s.io/v1", kind)
                       for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"))
UPDATABLE: frozenset[tuple[str, str]] = frozenset({CERTIFICATE_SIGNING_REQUEST, *RBAC_KINDS})


def is_protobuf(body: bytes, media_type: str) -> bool:
    return media_type in MEDIA_TYPES or body[:4] == MAGIC


def _bad(kind: str, why: str) -> errors.BadRequest:
    return errors.BadRequest(f"the body of the request could not be decoded as a protobuf {kind}: {why}")


def envelope(body: bytes) -> tuple[str, str, bytes]:
    """(apiVersion, kind, raw message) of a runtime.Unknown after the magic."""
    if body[:4] != MAGIC or len(body) == 4:
        raise _bad("object", "missing the k8s\\0 envelope")
    api_version = kind = ""
    raw = b""
    try:
        for number, value in protowire.fields(body[4:]):
            if number == 1:
                for inner, part in protowire.fields(protowire.message_bytes(value)):
                    if inner == 1:
                        api_version = protowire.text(part)
                    elif inner == 2:
                        kind = protowire.text(part)
            elif number == 2:
                raw = protowire.message_bytes(value)
    except protowire.WireError as exc:
        raise _bad("object", str(exc)) from None
    if not api_version or not kind:
        raise _bad("object", "the envelope names no apiVersion or kind")
    return api_version, kind, raw


def decoder_for(api_version: str, kind: str) -> Callable[[bytes], dict[str, Any]] | None:
    """How to read a protobuf body posted to the endpoint of this kind (None: not read; 415)."""
    message = MESSAGES.get((api_version, kind))
    if message is None:
        return None
    return lambda body: decode_object(body, message)


def decode_object(body: bytes, message: Message) -> dict[str, Any]:
    """The body (envelope and message) as the JSON object a client would have sent; its apiVersion
    and kind are the envelope's, for the handler to check as it checks a JSON body's."""
    api_version, kind, raw = envelope(body)
    try:
        fields = decode(message, raw)
    except protowire.WireError as exc:
        raise _bad(message.name, str(exc)) from None
    return {"apiVersion": api_version, "kind": kind, **fields}


def recorded(body: bytes) -> dict[str, Any] | None:
    """What an audit event records as `requestObject` for a protobuf body: the object by its
    envelope's kind, if it has a table and is small enough to read on the loop; else None."""
    if len(body) > INLINE_MAX_BYTES:
        return None
    try:
        api_version, kind, _ = envelope(body)
        read = delete_options if kind == "DeleteOptions" else decoder_for(api_version, kind)
        return read(body) if read is not None else None
    except errors.BadRequest:
        return None


def delete_options(body: bytes) -> dict[str, Any]:
    """A protobuf meta/v1 DeleteOptions (drain's pod DELETE where eviction is not served, client-go's
    typed Delete) as its JSON shape, for `deleteoptions.normalized` to check as it checks JSON."""
    return decode_object(body, protometa.DELETE_OPTIONS)


def token_request(body: bytes) -> dict[str, Any]:
    """A protobuf `authentication.k8s.io/v1` TokenRequest as its JSON shape (status is dropped:
    the server fills it)."""
    obj = decode_object(body, MESSAGES[("authentication.k8s.io/v1", "TokenRequest")])
    obj.setdefault("metadata", {})
    obj.setdefault("spec", {}).setdefault("audiences", [])
    return obj
