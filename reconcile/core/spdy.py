"""SPDY/3.1 framing, the part port-forward needs (kubectl 1.32 tunnels it in a WebSocket).

No maintained Python SPDY library exists (the protocol was retired for HTTP/2; kubectl and the
kubelet still use it through moby/spdystream), so the few frames are done here, from the SPDY/3
draft and spdystream's behaviour (/work/shared/reference/streaming-protobuf-ssa.md §2.3):

- Control frame: `1 | version 3 (15 bits) | type (16) | flags (8) | length (24) | payload`; data
  frame: `0 | stream id (31) | flags (8) | length (24) | data`. Big-endian. FIN = 0x01.
- Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are `u32 count` then `u32 len, name, u32 len,
  value` pairs, zlib-compressed with the SPDY/3 dictionary, one compression context per direction
  for the whole connection, each block ended by a sync flush.
- spdystream ignores WINDOW_UPDATE and SETTINGS, so flow control is not implemented (nor needed).

Pure: `Parser` turns bytes cut anywhere into frames, `Encoder` frames into bytes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
FLAG_FIN = 0x01

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

# RST_STREAM status codes
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
INTERNAL_ERROR = 6
CANCEL = 5

MAX_LENGTH = (1 << 24) - 1
MAX_HEADER_BLOCK = 1 << 20  # decompressed; kubectl's blocks are a few dozen bytes

_WORDS = (
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location", "content-md5",
    "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host", "if-match",
    "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after",
    "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie",
    "keep-alive", "origin")
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
# The SPDY/3 header dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1): 1423 bytes, Adler-32
# 0xE3C6A7C2 (tests/core/test_spdy.py checks both; zlib refuses a stream made with another one).
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()

_HEADER = struct.Struct(">II")


class ProtocolError(ValueError):
    """Bytes that are not SPDY/3 (the connection must end: the stream cannot be resynchronised)."""


@dataclass(slots=True)
class Frame:
    """A control frame (`type` > 0) or a data frame (`type` 0, `stream_id`, `data`)."""

    type: int
    flags: int = 0
    stream_id: int = 0
    data: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0  # RST_STREAM, GOAWAY
    ping_id: int = 0
    last_good: int = 0  # GOAWAY

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class Parser:
    """Frames out of the byte stream, with the connection's header decompression context."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        offset = 0
        while len(self._buffer) - offset >= _HEADER.size:
            first, second = _HEADER.unpack_from(self._buffer, offset)
            length = second & MAX_LENGTH
            end = offset + _HEADER.size + length
            if end > len(self._buffer):
                break
            payload = bytes(self._buffer[offset + _HEADER.size:end])
            flags = second >> 24
            if first & 0x80000000:
                version = (first >> 16) & 0x7FFF
                if version != VERSION:
                    raise ProtocolError(f"SPDY version {version}, not 3")
                frame = self._control(first & 0xFFFF, flags, payload)
                if frame is not None:
                    frames.append(frame)
            else:
                frames.append(Frame(0, flags, first & 0x7FFFFFFF, payload))
            offset = end
        del self._buffer[:offset]
        return frames

    def _control(self, kind: int, flags: int, payload: bytes) -> Frame | None:
        try:
            if kind == SYN_STREAM:
                stream_id = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF
                return Frame(kind, flags, stream_id, headers=self._headers(payload[10:]))
            if kind in (SYN_REPLY, HEADERS):
                stream_id = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF
                return Frame(kind, flags, stream_id, headers=self._headers(payload[4:]))
            if kind == RST_STREAM:
                stream_id, status = struct.unpack_from(">II", payload)
                return Frame(kind, flags, stream_id & 0x7FFFFFFF, status=status)
            if kind == PING:
                return Frame(kind, flags, ping_id=struct.unpack_from(">I", payload)[0])
            if kind == GOAWAY:
                last, status = struct.unpack_from(">II", payload) if len(payload) >= 8 else \
                    (struct.unpack_from(">I", payload)[0], 0)
                return Frame(kind, flags, last_good=last & 0x7FFFFFFF, status=status)
        except struct.error:
            raise ProtocolError(f"control frame {kind} too short ({len(payload)} bytes)") from None
        return None  # SETTINGS, WINDOW_UPDATE, NOOP, CREDENTIAL: nothing we act on

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise ProtocolError(f"header block: {exc}") from None
        if self._inflate.unconsumed_tail:
            raise ProtocolError("header block too large")
        return decode_header_block(raw)


def decode_header_block(raw: bytes) -> dict[str, str]:
    try:
        (count,), offset = struct.unpack_from(">I", raw), 4
        headers: dict[str, str] = {}
        for _ in range(count):
            parts = []
            for _ in range(2):
                (length,) = struct.unpack_from(">I", raw, offset)
                offset += 4
                if offset + length > len(raw):
                    raise ProtocolError("header block truncated")
                parts.append(raw[offset:offset + length].decode("utf-8", "replace"))
                offset += length
            headers[parts[0].lower()] = parts[1]
        return headers
    except struct.error:
        raise ProtocolError("header block truncated") from None


def encode_header_block(headers: dict[str, str]) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        for text in (name.lower().encode(), value.encode()):
            out.append(struct.pack(">I", len(text)) + text)
    return b"".join(out)


class Encoder:
    """Frames as bytes, with the connection's header compression context (one per direction)."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def _block(self, headers: dict[str, str]) -> bytes:
        return self._deflate.compress(encode_header_block(headers)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def _control(kind: int, flags: int, payload: bytes) -> bytes:
        return _HEADER.pack(0x80000000 | (VERSION << 16) | kind, (flags << 24) | len(payload)) + payload

    def syn_stream(self, stream_id: int, headers: dict[str, str], *, flags: int = 0) -> bytes:
        return self._control(SYN_STREAM, flags, struct.pack(">IIBB", stream_id, 0, 0, 0) + self._block(headers))

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None, *, flags: int = 0) -> bytes:
        return self._control(SYN_REPLY, flags, struct.pack(">I", stream_id) + self._block(headers or {}))

    def rst_stream(self, stream_id: int, status: int) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return self._control(PING, 0, struct.pack(">I", ping_id))

    def goaway(self, last_good: int, status: int = 0) -> bytes:
        return self._control(GOAWAY, 0, struct.pack(">II", last_good, status))

    @staticmethod
    def data(stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
        if len(data) > MAX_LENGTH:
            raise ValueError("a data frame carries at most 2^24-1 bytes")
        return _HEADER.pack(stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data
