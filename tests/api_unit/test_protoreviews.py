"""Protobuf bodies of the review kinds and `kubectl create` objects (`api.protobodies` tables read by
`core.protomessages`): what kubectl sends decodes to the JSON a JSON client would send, every table
round-trips, and hostile bytes (truncated, huge varints, wrong wire types, deep nesting, floods of
fields) end as a 400 naming the part, never another exception."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.api import protobodies
from reconcile.core import errors, protomessages, protowire
from reconcile.core.protomessages import BOOL, BYTES, INT32, INT64, STRING, Map, Message
from tests.api_unit import protoencode as pe

AUTHZ = "authorization.k8s.io/v1"
KINDS = sorted(protobodies.MESSAGES)

# --- what kubectl sends ---------------------------------------------------------------------------


def test_kubectl_can_i_bytes() -> None:
    """`kubectl auth can-i create pods -n team` as gogo writes it: every non-pointer string sent, empty
    ones included, ObjectMeta's zero fields and an empty status (captured shape, wire notes §3.3)."""
    empty_meta = b"".join(pe.length_delimited(n, b"") for n in (1, 2, 3, 4, 5, 6)) + pe.tag(7, 0) + b"\x00" \
        + pe.length_delimited(8, b"")
    attributes = b"".join(pe.length_delimited(n, v) for n, v in
                          ((1, b"team"), (2, b"create"), (3, b""), (4, b""), (5, b"pods"), (6, b""), (7, b"")))
    raw = pe.length_delimited(1, empty_meta) + pe.length_delimited(2, pe.length_delimited(1, attributes)) \
        + pe.length_delimited(3, pe.tag(1, 0) + b"\x00" + pe.length_delimited(2, b"") + pe.length_delimited(3, b"")
                              + pe.tag(4, 0) + b"\x00")
    read = protobodies.decoder_for(AUTHZ, "SelfSubjectAccessReview")
    assert read is not None
    assert read(pe.envelope(AUTHZ, "SelfSubjectAccessReview", raw)) == {
        "apiVersion": AUTHZ, "kind": "SelfSubjectAccessReview", "metadata": {},
        "spec": {"resourceAttributes": {"namespace": "team", "verb": "create", "resource": "pods"}}}


def test_subject_access_review_with_extra_and_selectors() -> None:
    obj = {"metadata": {"name": "q"}, "spec": {
        "resourceAttributes": {"verb": "list", "resource": "secrets", "namespace": "ns",
                               "fieldSelector": {"rawSelector": "metadata.name=mine"},
                               "labelSelector": {"requirements": [{"key": "app", "operator": "In", "values": ["a"]}]}},
        "user": "system:node:n1", "groups": ["system:nodes", "system:authenticated"],
        "extra": {"scopes": ["a", "b"], "empty": []}, "uid": "u-1"}}
    decoded = protobodies.decoder_for(AUTHZ, "SubjectAccessReview")(pe.body(AUTHZ, "SubjectAccessReview", obj))
    assert decoded == {"apiVersion": AUTHZ, "kind": "SubjectAccessReview", **obj}


def test_a_certificate_signing_request_reads_whole_with_its_status() -> None:
    """What `kubectl certificate approve` PUTs: the object as it was read, plus an Approved condition."""
    certificates = "certificates.k8s.io/v1"
    obj = {"metadata": {"name": "csr-1", "uid": "u-1", "resourceVersion": "42", "labels": {"a": "b"}},
           "spec": {"request": "LS0tLS1CRUdJTg==", "signerName": "kubernetes.io/kubelet-serving",
                    "expirationSeconds": 3600, "usages": ["digital signature", "server auth"],
                    "username": "system:node:n1", "uid": "user-1", "groups": ["system:nodes"],
                    "extra": {"scopes": ["x"]}},
           "status": {"conditions": [
               {"type": "Approved", "status": "True", "reason": "KubectlApprove",
                "message": "This CSR was approved by kubectl certificate approve.",
                "lastUpdateTime": "2026-12-02T17:00:00Z", "lastTransitionTime": "2026-12-02T17:00:01Z"}],
               "certificate": "Y2VydA=="}}
    assert (certificates, "CertificateSigningRequest") in protobodies.UPDATABLE
    decoded = protobodies.decoder_for(certificates, "CertificateSigningRequest")(
        pe.body(certificates, "CertificateSigningRequest", obj))
    assert decoded == {"apiVersion": certificates, "kind": "CertificateSigningRequest", **obj}
    rbac = {("rbac.authorization.k8s.io/v1", kind) for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")}
    assert protobodies.UPDATABLE == {(certificates, "CertificateSigningRequest"), *rbac}  # others' PUTs stay 415


def test_pointer_fields_keep_their_zero() -> None:
    """An empty fieldSelector is sent (a pointer) and kept; `automountServiceAccountToken: false` is
    not the same as unset."""
    sa = protobodies.decoder_for("v1", "ServiceAccount")(
        pe.body("v1", "ServiceAccount", {"metadata": {"name": "robot"}, "automountServiceAccountToken": False}))
    assert sa == {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"},
                  "automountServiceAccountToken": False}
    review = protobodies.decoder_for(AUTHZ, "SelfSubjectAccessReview")(pe.body(
        AUTHZ, "SelfSubjectAccessReview", {"spec": {"resourceAttributes": {"verb": "get", "fieldSelector": {}}}}))
    assert review["spec"]["resourceAttributes"] == {"verb": "get", "fieldSelector": {}}


def test_the_envelope_kind_is_kept_for_the_handler_to_check() -> None:
    """The endpoint picks the table; the envelope's kind is what the JSON checks then refuse."""
    raw = pe.encode(protobodies.MESSAGES[(AUTHZ, "SelfSubjectRulesReview")], {"spec": {"namespace": "ns"}})
    decoded = protobodies.decoder_for(AUTHZ, "SelfSubjectRulesReview")(pe.envelope("v1", "Namespace", raw))
    assert (decoded["apiVersion"], decoded["kind"]) == ("v1", "Namespace")


def test_kinds_without_a_table_are_not_read() -> None:
    assert protobodies.decoder_for("networking.k8s.io/v1", "NetworkPolicy") is None
    assert protobodies.decoder_for("v1", "Node") is None


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k[1])
def test_tables_are_well_formed(kind: tuple[str, str]) -> None:
    seen: set[int] = set()

    def walk(message: Message) -> None:
        if id(message) in seen:
            return
        seen.add(id(message))
        protomessages.check_table(message)
        for spec in message.fields:
            inner = spec.type.value if isinstance(spec.type, Map) else spec.type
            if isinstance(inner, Message):
                walk(inner)

    walk(protobodies.MESSAGES[kind])


# --- round trips of every table -------------------------------------------------------------------

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)


def _scalar(kind: str) -> st.SearchStrategy[Any]:
    return {STRING: _TEXT, BYTES: st.binary(max_size=8).map(lambda b: __import__("base64").b64encode(b).decode()),
            BOOL: st.booleans(), INT32: st.integers(-(1 << 31), (1 << 31) - 1),
            INT64: st.integers(-(1 << 63), (1 << 63) - 1)}[kind]


def _of(kind: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    if isinstance(kind, Map):
        return st.dictionaries(_TEXT, _of(kind.value, depth), max_size=3)
    if isinstance(kind, Message):
        return _object(kind, depth + 1)
    return _scalar(kind)


_SECONDS = st.integers(1, 4_000_000_000).map(
    lambda s: datetime.datetime.fromtimestamp(s, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def _object(message: Message, depth: int = 0) -> st.SearchStrategy[Any]:
    if message.shape == protomessages.INT_OR_STRING:
        return st.one_of(_scalar(INT32), _TEXT)
    if message.shape == protomessages.TIME:
        return st.one_of(st.none(), _SECONDS)
    if message.unwrap:
        only = message.fields[0]
        assert isinstance(only.type, str)
        return st.lists(_scalar(only.type), max_size=3) if only.repeated else _scalar(only.type)
    parts = {}
    inlined = []
    for spec in message.fields:
        if spec.inline:
            assert isinstance(spec.type, Message)
            inlined.append(_object(spec.type, depth + 1))
            continue
        value = _of(spec.type, depth)
        parts[spec.name] = st.lists(value, max_size=2) if spec.repeated else value
    own = st.fixed_dictionaries({}, optional=parts)
    if not inlined:
        return own
    return st.tuples(own, *inlined).map(lambda found: {k: v for part in found for k, v in part.items()})


def _normal(message: Message, obj: Any) -> Any:
    """The JSON shape after a trip: zero non-pointer scalars and empty lists and maps are absent."""
    if message.unwrap or message.shape:
        return obj
    out = {}
    for spec in message.fields:
        if spec.inline:
            assert isinstance(spec.type, Message)
            out.update(_normal(spec.type, obj))
            continue
        if spec.name not in obj:
            continue
        value, kind = obj[spec.name], spec.type
        if isinstance(kind, Map):
            inner = kind.value
            value = {k: _normal(inner, v) if isinstance(inner, Message) else v for k, v in value.items()}
        elif isinstance(kind, Message):
            value = [_normal(kind, v) for v in value] if spec.repeated else _normal(kind, value)
        if (spec.repeated or isinstance(kind, Map)) and not value:
            continue
        if isinstance(kind, str) and not spec.repeated and not spec.pointer and value in ("", 0, False) \
                and not isinstance(value, dict):
            continue
        out[spec.name] = value
    return out


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k[1])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_table_round_trips(kind: tuple[str, str], data: st.DataObject) -> None:
    message = protobodies.MESSAGES[kind]
    obj = data.draw(_object(message))
    decoded = protobodies.decoder_for(*kind)(pe.body(*kind, obj))
    assert decoded == {"apiVersion": kind[0], "kind": kind[1], **_normal(message, obj)}


# --- hostile bytes --------------------------------------------------------------------------------


def _decodes_or_400(kind: tuple[str, str], body: bytes) -> None:
    try:
        found = protobodies.decoder_for(*kind)(body)
    except errors.BadRequest:
        return
    assert isinstance(found, dict) and found["kind"] and found["apiVersion"]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k[1])
@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=300))
def test_any_raw_message_decodes_or_is_a_400(kind: tuple[str, str], raw: bytes) -> None:
    _decodes_or_400(kind, pe.envelope(*kind, raw))
    _decodes_or_400(kind, protobodies.MAGIC + raw)
    _decodes_or_400(kind, raw)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_mangled_valid_bodies_decode_or_are_a_400(data: st.DataObject) -> None:
    """A real body cut short, with a byte changed, or with a field spliced in anywhere."""
    kind = data.draw(st.sampled_from(KINDS))
    body = pe.body(*kind, data.draw(_object(protobodies.MESSAGES[kind])))
    cut = data.draw(st.integers(0, len(body)))
    _decodes_or_400(kind, body[:cut])
    at = data.draw(st.integers(0, len(body) - 1))
    _decodes_or_400(kind, body[:at] + bytes([data.draw(st.integers(0, 255))]) + body[at + 1:])
    splice = data.draw(st.sampled_from([b"\x08" + b"\xff" * 10 + b"\x01",  # an 11-byte varint
                                        b"\x0a\xff\xff\xff\xff\x0f",  # a 4 GiB length
                                        b"\x0b", b"\x0c", b"\x0e", b"\x0f",  # groups, wire types 6 and 7
                                        b"\x00\x00",  # field number 0
                                        b"\x0d\x01", b"\x09\x01\x02"]))  # fixed widths cut short
    _decodes_or_400(kind, body[:at] + splice + body[at:])


def _message_of(kind: tuple[str, str]) -> Message:
    return protobodies.MESSAGES[kind]


@pytest.mark.parametrize("raw, where", [
    (pe.length_delimited(2, pe.length_delimited(1, pe.tag(1, 0) + b"\x05")), "spec.resourceAttributes.namespace"),
    (pe.length_delimited(2, pe.length_delimited(1, pe.length_delimited(2, b"\xff\xfe"))),
     "spec.resourceAttributes.verb"),
    (pe.length_delimited(2, pe.tag(1, 0) + b"\x01"), "spec.resourceAttributes"),
    (pe.tag(1, 5) + b"\x00\x00\x00\x00", "metadata"),
])
def test_wrong_wire_types_name_the_field(raw: bytes, where: str) -> None:
    with pytest.raises(errors.BadRequest) as caught:
        protobodies.decoder_for(AUTHZ, "SelfSubjectAccessReview")(pe.envelope(AUTHZ, "SelfSubjectAccessReview", raw))
    message = str(caught.value)
    assert "protobuf SelfSubjectAccessReview" in message and where in message, message


def test_int32_out_of_range_is_refused() -> None:
    message = Message("M", (protomessages.Field(1, "n", INT32),))
    assert protomessages.decode(message, pe.tag(1, 0) + pe.varint(-5)) == {"n": -5}
    with pytest.raises(protowire.WireError, match="n: 4294967296 is out of range"):
        protomessages.decode(message, pe.tag(1, 0) + pe.varint(1 << 32))


def test_deep_nesting_costs_nothing() -> None:
    """Ten thousand levels of nested messages inside a known string field and an unknown field: the
    tables bound the reading, so nothing recurses past them."""
    deep = b""
    for _ in range(10_000):
        deep = pe.length_delimited(1, deep)
    kind = (AUTHZ, "SubjectAccessReview")
    read = protobodies.decoder_for(*kind)
    decoded = read(pe.envelope(*kind, pe.length_delimited(99, deep) + pe.length_delimited(2, pe.length_delimited(3, b"u"))))
    assert decoded["spec"] == {"user": "u"}  # the unknown field's bytes are skipped, never parsed
    with pytest.raises(errors.BadRequest, match="metadata.name: a string that is not UTF-8"):
        read(pe.envelope(*kind, pe.length_delimited(1, deep)))  # a string field's bytes are not a message


def test_a_self_recursive_table_stops_at_its_depth() -> None:
    fields: list[protomessages.Field] = []
    node = Message("Node", tuple(fields))
    object.__setattr__(node, "fields", (protomessages.Field(1, "child", node),))
    deep = b""
    for _ in range(protomessages.MAX_DEPTH + 5):
        deep = pe.length_delimited(1, deep)
    with pytest.raises(protowire.WireError, match="nested more than"):
        protomessages.decode(node, deep)


def test_a_flood_of_fields_is_refused_early() -> None:
    """A million two-byte fields (2 MiB, under the body cap) stop at the field budget."""
    kind = (AUTHZ, "SubjectAccessReview")
    flood = pe.length_delimited(2, (pe.tag(4, 2) + b"\x00") * 1_000_000)
    with pytest.raises(errors.BadRequest, match="more than 100000 fields"):
        protobodies.decoder_for(*kind)(pe.envelope(*kind, flood))
    unknown = (pe.tag(50, 0) + b"\x00") * 1_000_000
    with pytest.raises(errors.BadRequest, match="more than 100000 fields"):
        protobodies.decoder_for(*kind)(pe.envelope(*kind, unknown))
    packed = Message("M", (protomessages.Field(1, "n", INT64, repeated=True),))
    with pytest.raises(protowire.WireError):
        protomessages.decode(packed, pe.length_delimited(1, b"\x01" * 200_000))
    assert protomessages.decode(packed, pe.length_delimited(1, b"\x01\x02")) == {"n": [1, 2]}
