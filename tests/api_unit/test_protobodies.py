"""The protobuf TokenRequest body `kubectl create token` sends, and hostile bytes in its place."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.api import protobodies
from reconcile.core import errors, protowire


def _field(number: int, value: bytes | int) -> bytes:
    def varint(n: int) -> bytes:
        out = b""
        while True:
            byte, n = n & 0x7F, n >> 7
            out += bytes([byte | (0x80 if n else 0)])
            if not n:
                return out

    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def _token_request(spec: bytes) -> bytes:
    type_meta = _field(1, b"authentication.k8s.io/v1") + _field(2, b"TokenRequest")
    raw = _field(1, _field(1, b"robot") + _field(3, b"team")) + _field(2, spec) + _field(3, b"")
    return protobodies.MAGIC + _field(1, type_meta) + _field(2, raw) + _field(3, b"") + _field(4, b"")


def test_decodes_what_kubectl_sends() -> None:
    ref = _field(1, b"Pod") + _field(2, b"v1") + _field(3, b"p") + _field(4, b"uid-1")
    spec = _field(1, b"vault") + _field(1, b"https://kubernetes.default.svc.cluster.local") + _field(3, ref) \
        + _field(4, 1200)
    assert protobodies.token_request(_token_request(spec)) == {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "metadata": {"name": "robot", "namespace": "team"},
        "spec": {"audiences": ["vault", "https://kubernetes.default.svc.cluster.local"], "expirationSeconds": 1200,
                 "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "uid-1"}}}
    negative = protobodies.token_request(_token_request(_field(4, (1 << 64) - 5)))
    assert negative["spec"]["expirationSeconds"] == -5  # int64 two's complement: the validator refuses it


@pytest.mark.parametrize("body", [b"", b"k8s\x00", b"k8s", b"k8s\x00\xff", b"k8s\x00" + _field(2, b"x"),
                                  b"k8s\x00" + _field(1, _field(2, b"TokenRequest"))])
def test_malformed_envelopes_are_400(body: bytes) -> None:
    with pytest.raises(errors.BadRequest):
        protobodies.token_request(body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_are_a_400(data: bytes) -> None:
    for body in (data, protobodies.MAGIC + data, _token_request(data)):
        try:
            found = protobodies.token_request(body)
        except errors.BadRequest:
            continue
        assert isinstance(found, dict) and isinstance(found["spec"], dict)


def test_wire_reader_bounds() -> None:
    with pytest.raises(protowire.WireError):
        protowire.fields(b"\x0a\x05ab")  # length past the end
    with pytest.raises(protowire.WireError):
        protowire.fields(b"\x08" + b"\xff" * 11)  # a varint that never ends
    assert protowire.fields(b"\x08\x96\x01") == [(1, 150)]
