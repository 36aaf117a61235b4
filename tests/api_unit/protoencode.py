"""A protobuf writer for tests: the JSON shape of an object back into gogo's wire bytes, by the same
tables `core.protomessages` reads with, as kubectl's generated marshallers would write it. The
server never writes protobuf (its answers are JSON), so this lives with the tests."""

from __future__ import annotations

import base64
import datetime
from typing import Any

from reconcile.api import protobodies
from reconcile.core.protomessages import (
    BOOL,
    BYTES,
    INT32,
    INT64,
    INT_OR_STRING,
    STRING,
    TIME,
    Field,
    Map,
    Message,
)


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative ints: two's complement in ten bytes, as gogo writes them
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def length_delimited(number: int, data: bytes) -> bytes:
    return tag(number, 2) + varint(len(data)) + data


def _scalar(number: int, kind: str, value: Any) -> bytes:
    if kind == STRING:
        return length_delimited(number, value.encode())
    if kind == BYTES:
        return length_delimited(number, base64.b64decode(value))
    if kind == BOOL:
        return tag(number, 0) + varint(int(value))
    assert kind in (INT32, INT64)
    return tag(number, 0) + varint(value)


def _value(number: int, kind: Any, value: Any) -> bytes:
    if isinstance(kind, Message):
        return length_delimited(number, encode(kind, value))
    return _scalar(number, kind, value)


def encode(message: Message, obj: Any) -> bytes:
    """The message's bytes; fields in table order (gogo writes them in number order, which a reader
    must not rely on either way)."""
    if message.unwrap:
        obj = {message.fields[0].name: obj}
    elif message.shape:
        obj = _unshaped(message.shape, obj)
    out = bytearray()
    for spec in message.fields:
        if spec.inline:  # an embedded struct: written when any of its fields is in the object
            assert isinstance(spec.type, Message)
            if any(inner.name in obj for inner in spec.type.fields):
                out += length_delimited(spec.number, encode(spec.type, obj))
            continue
        if spec.name not in obj:
            continue
        value = obj[spec.name]
        if isinstance(spec.type, Map):
            for key in sorted(value):
                out += length_delimited(spec.number, _scalar(1, STRING, key) + _value(2, spec.type.value, value[key]))
        elif spec.repeated:
            for item in value:
                out += _value(spec.number, spec.type, item)
        else:
            out += _value(spec.number, spec.type, value)
    return bytes(out)


def _unshaped(shape: str, value: Any) -> dict[str, Any]:
    """The message behind a JSON value: IntOrString's {type, intVal, strVal} (gogo sends all three),
    Time's {seconds} (the zero time, JSON null, is an empty message)."""
    if shape == INT_OR_STRING:
        return {"type": 1, "intVal": 0, "strVal": value} if isinstance(value, str) else \
            {"type": 0, "intVal": value, "strVal": ""}
    assert shape == TIME
    if value is None:
        return {}
    moment = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return {"seconds": int(moment.timestamp())}


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = length_delimited(1, api_version.encode()) + length_delimited(2, kind.encode())
    return protobodies.MAGIC + length_delimited(1, type_meta) + length_delimited(2, raw) \
        + length_delimited(3, b"") + length_delimited(4, b"")


def body(api_version: str, kind: str, obj: dict[str, Any]) -> bytes:
    """What kubectl posts for `obj` (apiVersion and kind go in the envelope)."""
    message = protobodies.MESSAGES[(api_version, kind)]
    return envelope(api_version, kind, encode(message, obj))


__all__ = ["Field", "body", "encode", "envelope", "length_delimited", "tag", "varint"]
