"""Protobuf messages described as tables and decoded into their JSON shape.

Kubernetes' protobuf bodies are gogo-generated proto2 messages whose JSON twins are what the server
validates. Rather than hand-writing a reader per type, a type is a `Message` table (field number ->
JSON name and type, read from the upstream .proto), and `decode` turns the bytes into the dict the
JSON decoder would have produced for the same object, so both formats meet exactly the same checks.

The JSON shape follows gogo's conventions (wire notes §3.3): scalars that are not pointers are
always sent, zero included, and JSON's `omitempty` drops them, so they are kept only when non-zero;
`pointer` fields (`*bool`, `*int64`, `*FieldSelectorAttributes`) are kept whenever sent; maps are
repeated {key 1, value 2} entries; `[]byte` is base64 in JSON. Unknown fields are skipped, as gogo
skips them.

Hostile bytes cannot make it do much: every field read (known or not) counts against `max_fields`,
nesting is bounded by the tables (and by `max_depth` should a table ever be recursive), and any
malformation (truncated, over-long varint, a wire type the field does not have, a string that is
not UTF-8, an int32 out of range) raises `protowire.WireError` naming the field's JSON path.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from reconcile.core import protowire

STRING, BYTES, BOOL, INT32, INT64 = "string", "bytes", "bool", "int32", "int64"
SCALARS = frozenset({STRING, BYTES, BOOL, INT32, INT64})
MAX_FIELDS = 100_000  # as many as the JSON decoder's node limit
MAX_DEPTH = 100
_ZERO: dict[str, Any] = {STRING: "", BYTES: "", BOOL: False, INT32: 0, INT64: 0}


@dataclass(frozen=True)
class Map:
    """`map<string, value>`: entries {key 1, value 2}, a JSON object (the last entry of a key wins)."""

    value: FieldType


@dataclass(frozen=True)
class Field:
    number: int
    name: str
    type: FieldType
    repeated: bool = False
    pointer: bool = False  # a Go pointer: kept in the JSON shape even when zero
    inline: bool = False  # a Go embedded struct: its fields are the parent's in JSON


@dataclass(frozen=True)
class Message:
    """A message's fields; `unwrap`: its JSON shape is its one field (upstream's ExtraValue, a
    `[]string` protobuf must wrap to put in a map; resource.Quantity, a string in JSON)."""

    name: str
    fields: tuple[Field, ...]
    unwrap: bool = False
    # the numbers upstream's message defines, for a table that reads only some of them: each other
    # one is refused (empty: the table is complete, or skips what it lacks as gogo does)
    upstream: frozenset[int] = frozenset()
    shape: str = ""  # "" (an object), INT_OR_STRING or TIME: see `_shaped`

    def field(self, number: int) -> Field | None:
        for candidate in self.fields:
            if candidate.number == number:
                return candidate
        return None


FieldType = str | Message | Map
INT_OR_STRING, TIME = "IntOrString", "Time"


class NotRead(protowire.WireError):
    """A field upstream defines that this server's partial table does not read (a 400, not a skip)."""


class _Budget:
    def __init__(self, max_fields: int) -> None:
        self.left = max_fields

    def spend(self, path: str) -> None:
        self.left -= 1
        if self.left < 0:
            raise protowire.WireError(f"{path or 'the object'}: more than {MAX_FIELDS} fields")


def decode(message: Message, data: bytes, *, max_fields: int = MAX_FIELDS, path: str = "") -> Any:
    """The JSON shape of one `message` (a dict, or its one field's value for an `unwrap` message)."""
    return _message(message, data, _Budget(max_fields), path, 0, None)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _fields(data: bytes, path: str) -> Iterator[tuple[int, int, int | bytes]]:
    """The wire reader's fields, its errors naming the message they are in."""
    fields = protowire.iter_fields(data)
    while True:
        try:
            item = next(fields)
        except StopIteration:
            return
        except protowire.WireError as exc:
            raise protowire.WireError(f"{path}: {exc}" if path else str(exc)) from None
        yield item


def _message(message: Message, data: bytes, budget: _Budget, path: str, depth: int,
             into: dict[str, Any] | None) -> Any:
    if depth > MAX_DEPTH:
        raise protowire.WireError(f"{path}: nested more than {MAX_DEPTH} levels deep")
    obj: dict[str, Any] = into if into is not None else {}
    for number, wire, value in _fields(data, path):
        budget.spend(path)
        spec = message.field(number)
        if spec is None:
            if number in message.upstream:
                raise NotRead(f"{path or 'the object'}: field {number} of {message.name} is not read from "
                              "protobuf by this server; send JSON")
            continue  # unknown to this table: skipped, as gogo skips unknown fields
        where = _join(path, spec.name)
        kind = spec.type
        if isinstance(kind, Map):
            key, item = _entry(kind, _bytes(wire, value, where), budget, where, depth)
            obj.setdefault(spec.name, {})[key] = item
        elif isinstance(kind, Message):
            inner = _bytes(wire, value, where)
            if spec.inline:  # an embedded struct: its fields merge into this object
                _message(kind, inner, budget, path, depth + 1, obj)
            elif spec.repeated:
                items = obj.setdefault(spec.name, [])
                items.append(_message(kind, inner, budget, f"{where}[{len(items)}]", depth + 1, None))
            elif kind.unwrap or kind.shape:
                obj[spec.name] = _message(kind, inner, budget, where, depth + 1, None)
            else:  # a message field sent twice merges, as protobuf's do
                previous = obj.get(spec.name)
                obj[spec.name] = _message(kind, inner, budget, where, depth + 1,
                                          previous if isinstance(previous, dict) else None)
        elif spec.repeated:
            obj.setdefault(spec.name, []).extend(_repeated_scalar(kind, wire, value, budget, where))
        else:
            obj[spec.name] = _scalar(kind, wire, value, where)
    for spec in message.fields:  # JSON's omitempty: an unset-looking scalar is absent
        if isinstance(spec.type, str) and not spec.repeated and not spec.pointer \
                and spec.name in obj and obj[spec.name] == _ZERO[spec.type]:
            del obj[spec.name]
    if message.unwrap:
        only = message.fields[0]
        return obj.get(only.name, _zero_of(only))
    if message.shape:
        return _shaped(message.shape, obj, path)
    return obj


def _shaped(shape: str, obj: dict[str, Any], path: str) -> Any:
    """IntOrString {type 1, intVal 2, strVal 3}: its int or its string, as its JSON marshaller
    writes it; Time {seconds 1, nanos 2}: RFC 3339 seconds, the zero time (an empty message) null."""
    if shape == INT_OR_STRING:
        kind = obj.get("type", 0)
        if kind not in (0, 1):
            raise protowire.WireError(f"{path}: IntOrString type {kind} is neither 0 (int) nor 1 (string)")
        return obj.get("strVal", "") if kind == 1 else obj.get("intVal", 0)
    assert shape == TIME, shape
    seconds = obj.get("seconds", 0)
    if not seconds:
        return None
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        raise protowire.WireError(f"{path}: {seconds} is not a time this server can represent") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _zero_of(spec: Field) -> Any:
    """An absent field's JSON value, where one must be given (an unwrapped message, a map value)."""
    if spec.repeated:
        return []
    return _ZERO[spec.type] if isinstance(spec.type, str) else {}


def _entry(kind: Map, data: bytes, budget: _Budget, path: str, depth: int) -> tuple[str, Any]:
    key = ""
    item: Any = None
    for number, wire, value in _fields(data, path):
        budget.spend(path)
        if number == 1:
            key = _scalar(STRING, wire, value, path)
        elif number == 2:
            if isinstance(kind.value, Message):
                item = _message(kind.value, _bytes(wire, value, path), budget, path, depth + 1, None)
            elif isinstance(kind.value, str):
                item = _scalar(kind.value, wire, value, path)
    if item is None:  # an entry without a value: the value type's zero
        if isinstance(kind.value, Message):
            item = _zero_of(kind.value.fields[0]) if kind.value.unwrap else \
                _message(kind.value, b"", budget, path, depth + 1, None)
        elif isinstance(kind.value, str):
            item = _ZERO[kind.value]
    return key, item


def _bytes(wire: int, value: int | bytes, path: str) -> bytes:
    if wire != protowire.LEN or not isinstance(value, bytes):
        raise protowire.WireError(f"{path}: expected a length-delimited field, got wire type {wire}")
    return value


def _scalar(kind: str, wire: int, value: int | bytes, path: str) -> Any:
    if kind == STRING:
        try:
            return _bytes(wire, value, path).decode("utf-8")
        except UnicodeDecodeError:
            raise protowire.WireError(f"{path}: a string that is not UTF-8") from None
    if kind == BYTES:
        return base64.b64encode(_bytes(wire, value, path)).decode("ascii")
    if wire != protowire.VARINT or not isinstance(value, int):
        raise protowire.WireError(f"{path}: expected a varint, got wire type {wire}")
    if kind == BOOL:
        return value != 0
    number = protowire.signed64(value)
    if kind == INT32 and not -(1 << 31) <= number < 1 << 31:
        raise protowire.WireError(f"{path}: {number} is out of range for an int32")
    return number


def _repeated_scalar(kind: str, wire: int, value: int | bytes, budget: _Budget, path: str) -> list[Any]:
    """One element, or (numbers only) a packed run of them."""
    if kind in (STRING, BYTES) or wire != protowire.LEN:
        return [_scalar(kind, wire, value, path)]
    assert isinstance(value, bytes)
    found = []
    for number in protowire.packed_varints(value):
        budget.spend(path)
        found.append(_scalar(kind, protowire.VARINT, number, path))
    return found


def check_table(message: Message) -> None:
    """A table is well formed: distinct numbers and names, known scalar types (for unit tests)."""
    numbers = [f.number for f in message.fields]
    names = [f.name for f in message.fields]
    assert len(set(numbers)) == len(numbers) and len(set(names)) == len(names), message.name
    assert not message.unwrap or (len(message.fields) == 1 and isinstance(message.fields[0].type, str)), \
        message.name
    assert not message.upstream or set(numbers) <= message.upstream, message.name
    assert message.shape in ("", INT_OR_STRING, TIME), message.name
    for spec in message.fields:
        kind = spec.type.value if isinstance(spec.type, Map) else spec.type
        if isinstance(kind, str):
            assert kind in SCALARS, (message.name, spec.name)
