"""The protobuf wire format, read: just enough for the few Kubernetes protobuf bodies the API server
must accept (kubectl 1.32 sends some requests in protobuf and does not fall back to JSON on 415).

`fields` splits a message into (number, value) pairs: varints as int, length-delimited fields as
bytes (strings and nested messages alike: the caller knows which is which from the .proto), fixed
32/64-bit fields as int. It is pure, bounded by its input, and raises `WireError` on anything
truncated or malformed, so hostile bytes end as a 400, never as an exception elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, I64, LEN, I32 = 0, 1, 2, 5
MAX_VARINT_BYTES = 10


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(MAX_VARINT_BYTES):
        if at + i >= len(data):
            raise WireError("truncated varint")
        byte = data[at + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at + i + 1
        shift += 7
    raise WireError("varint longer than 10 bytes")


def varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at `at` and the offset after it (a packed repeated field is a run of them)."""
    return _varint(data, at)


def iter_fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(number, wire type, value) of each field of one message, in wire order, lazily: a caller that
    counts fields stops a message of a million tiny fields after its budget, not after the list."""
    at = 0
    while at < len(data):
        tag, at = _varint(data, at)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == VARINT:
            value, at = _varint(data, at)
            yield number, wire, value
        elif wire == LEN:
            size, at = _varint(data, at)
            if at + size > len(data):
                raise WireError("truncated length-delimited field")
            yield number, wire, data[at:at + size]
            at += size
        elif wire in (I64, I32):
            width = 8 if wire == I64 else 4
            if at + width > len(data):
                raise WireError("truncated fixed-width field")
            yield number, wire, int.from_bytes(data[at:at + width], "little")
            at += width
        else:
            raise WireError(f"unsupported wire type {wire}")


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """The fields of one message, in wire order (repeated fields appear once per element)."""
    return [(number, value) for number, _, value in iter_fields(data)]


def text(value: int | bytes) -> str:
    """A string field's value (UTF-8)."""
    if not isinstance(value, bytes):
        raise WireError("expected a length-delimited string")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("a string field is not UTF-8") from None


def message(value: int | bytes) -> bytes:
    """A nested message field's bytes."""
    if not isinstance(value, bytes):
        raise WireError("expected a length-delimited message")
    return value


def signed64(value: int | bytes) -> int:
    """An int64 field (two's complement in a varint)."""
    if not isinstance(value, int):
        raise WireError("expected a varint")
    return value - (1 << 64) if value >= 1 << 63 else value
