"""The protobuf wire format, read by the `protobuf` package: the seam to Google's parser for the few
Kubernetes protobuf bodies the API server must accept (kubectl 1.32 sends some requests in
protobuf and does not fall back to JSON on 415).

`iter_fields` splits a message into (number, wire type, value) triples: varints as int,
length-delimited fields as bytes (strings and nested messages alike: the caller knows which is
which from the .proto), fixed 32/64-bit fields as int. The bytes are parsed by protobuf's own
parser (upb, in C) into a message with no declared fields, whose unknown fields are then exactly
the wire's fields; our tables (`protomessages`) give them their meaning. Anything truncated or
malformed raises `WireError`, so hostile bytes end as a 400, never as an exception elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    empty_pb2,
    message,
    message_factory,
    unknown_fields,
    wrappers_pb2,
)

VARINT, I64, LEN, I32 = 0, 1, 2, 5
_START_GROUP, _END_GROUP = 3, 4


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _packed_message() -> type[message.Message]:
    """`message Packed { repeated uint64 values = 1 [packed = true]; }`: protobuf reads a packed run
    of varints as this message's field 1 (wrapped by `BytesValue`, whose field 1 is bytes)."""
    pool = descriptor_pool.DescriptorPool()
    proto = descriptor_pb2.FileDescriptorProto(name="reconcile_protowire.proto", package="reconcile.protowire")
    packed = proto.message_type.add(name="Packed")
    packed.field.add(name="values", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
                     label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
                     options=descriptor_pb2.FieldOptions(packed=True))
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("reconcile.protowire.Packed"))


_PACKED = _packed_message()


def iter_fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(number, wire type, value) of each field of one message, in wire order. Groups (wire types
    3 and 4, deprecated and never sent by Kubernetes) and field number 0 are refused."""
    parsed = empty_pb2.Empty()
    try:
        parsed.ParseFromString(data)
    except message.DecodeError:
        raise WireError("malformed protobuf (a truncated field, an over-long varint or an unknown wire type)") from None
    for field in unknown_fields.UnknownFieldSet(parsed):
        number, wire = field.field_number, field.wire_type
        if number == 0:
            raise WireError("field number 0")
        if wire in (_START_GROUP, _END_GROUP):
            raise WireError(f"unsupported wire type {wire}")
        yield number, wire, field.data


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """The fields of one message, in wire order (repeated fields appear once per element)."""
    return [(number, value) for number, _, value in iter_fields(data)]


def packed_varints(data: bytes) -> list[int]:
    """A packed repeated field's varints (as unsigned 64-bit values, as on the wire)."""
    try:
        return list(_PACKED.FromString(wrappers_pb2.BytesValue(value=data).SerializeToString()).values)
    except message.DecodeError:
        raise WireError("malformed packed repeated field") from None


def text(value: int | bytes) -> str:
    """A string field's value (UTF-8)."""
    if not isinstance(value, bytes):
        raise WireError("expected a length-delimited string")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("a string field is not UTF-8") from None


def message_bytes(value: int | bytes) -> bytes:
    """A nested message field's bytes."""
    if not isinstance(value, bytes):
        raise WireError("expected a length-delimited message")
    return value


def signed64(value: int | bytes) -> int:
    """An int64 field (two's complement in a varint)."""
    if not isinstance(value, int):
        raise WireError("expected a varint")
    return value - (1 << 64) if value >= 1 << 63 else value
