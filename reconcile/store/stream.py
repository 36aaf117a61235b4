"""Split etcd's JSON-gateway watch stream into messages.

The gateway writes one JSON object per message followed by a newline (grpc-gateway's JSONPb
delimiter). aiohttp's `readline()` refuses lines over 128 KiB and a watch message can carry
megabytes of events, so we split chunks ourselves. Pure: no I/O, easy to test.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_DECODER = json.JSONDecoder()


class StreamDecodeError(Exception):
    """The stream carried bytes that are not JSON."""


class MessageSplitter:
    """Feed raw chunks, get parsed JSON objects back; partial trailing data is kept for the next chunk."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # bytes of the message still being received (no newline yet)

    def feed(self, chunk: bytes) -> list[Any]:
        messages: list[Any] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            piece = chunk[start:end]
            if self._pending:
                self._pending.append(piece)
                piece = b"".join(self._pending)
                self._pending = []
            if piece.strip():
                messages.extend(decode(piece))
            start = end + 1
        if start < len(chunk):
            self._pending.append(chunk[start:])
        return messages

    def finish(self) -> list[Any]:
        """At end of stream: whatever complete objects remain without a trailing newline."""
        rest, self._pending = b"".join(self._pending), []
        return decode(rest) if rest.strip() else []


def decode(data: bytes) -> list[Any]:
    """One JSON object, or several concatenated ones (`{..}{..}`, what older gateways send)."""
    try:
        return [orjson.loads(data)]
    except orjson.JSONDecodeError:
        pass
    text = data.decode("utf-8", errors="strict")
    out: list[Any] = []
    index = 0
    try:
        while index < len(text):
            while index < len(text) and text[index].isspace():
                index += 1
            if index == len(text):
                break
            obj, index = _DECODER.raw_decode(text, index)
            out.append(obj)
    except json.JSONDecodeError as exc:
        raise StreamDecodeError(f"bad JSON in watch stream: {exc}") from exc
    return out
