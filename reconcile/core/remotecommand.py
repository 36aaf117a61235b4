"""Kubernetes' remote-command channel protocol (exec, attach) over WebSockets: the facts kubectl
1.32 and the Python client rely on, as pure functions.

Wire notes (captured from kubectl v1.32.5 and kubernetes 37.0.2, see
/work/shared/reference/streaming-protobuf-ssa.md §1):

- kubectl sends `GET .../pods/P/exec?command=..&container=..&stdin=true&stdout=true&tty=true` with
  `Upgrade: websocket` and `Sec-WebSocket-Protocol: v5.channel.k8s.io` only; the Python client offers
  `v5.channel.k8s.io,v4.channel.k8s.io`. The 101 must name the chosen subprotocol, or kubectl falls
  back to SPDY (`POST` + `Upgrade: SPDY/3.1`), which `reconcile.api.spdyexec` translates.
- Each data message is one channel byte + payload: 0 stdin, 1 stdout, 2 stderr, 3 the final Status
  (JSON), 4 resize (`{"Width":w,"Height":h}` JSON stream), and in v5 255 = CLOSE (payload: the
  channel half-closed; kubectl sends `FF 00` at stdin EOF). kubectl sends binary frames only and
  aborts on text; Python sends text frames for `str` data: both are accepted here.
- `v4.base64.channel.k8s.io` and `base64.channel.k8s.io` (the kubelet's wsstream codec, which
  kube-apiserver reaches by proxying; browsers' terminals ask for them): every message the server
  sends is a TEXT frame, the channel as an ASCII digit (`'0' + n`) then the payload in standard
  padded base64; what the client sends is decoded the same way (a bad digit or bad base64 is
  dropped, as wsstream drops it). Neither has v5's CLOSE. The pre-v4 name's error channel carries
  the failure's message as plain text and nothing on success; the v4 one carries the Status JSON.
  The API server translates them to and from the agent's v5 (`from_client`, `to_client`).
- The session ends with one channel-3 Status (ExitCode cause first, so Python's
  `int(details.causes[0].message)` reads it) and a WebSocket Close 1000: kubectl reports anything
  else (1001, 1006) as an error.

The node agent speaks this same protocol (v5) to the API server, which relays messages unchanged
to binary clients and re-frames them for the base64 ones.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
BASE64 = "base64.channel.k8s.io"
SUPPORTED = (V5, V4)  # the binary ones: what the node agent speaks
API_SUPPORTED = (V5, V4, V4_BASE64, BASE64)  # what the API server answers, translating to the agent's v5
BASE64_PROTOCOLS = frozenset({V4_BASE64, BASE64})

STDIN = 0
STDOUT = 1
STDERR = 2
ERROR = 3
RESIZE = 4
CLOSE = 255

NORMAL_CLOSURE = 1000


def negotiate(offered: Iterable[str], supported: Iterable[str] = SUPPORTED) -> str | None:
    """The first subprotocol the client offered that is `supported` (upstream's wsstream: client order)."""
    supported = tuple(supported)
    for protocol in offered:
        if protocol.strip() in supported:
            return protocol.strip()
    return None


def query_bool(value: str | None) -> bool:
    """kube-apiserver's bool query parsing: absent, `0` or `false` (any case) are false; anything
    else, even empty, is true."""
    if value is None:
        return False
    return value.lower() not in ("0", "false")


@dataclass(frozen=True, slots=True)
class Options:
    """What an exec or attach asks for (`corev1.PodExecOptions` / `PodAttachOptions`)."""

    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    command: tuple[str, ...] = ()

    @classmethod
    def parse(cls, query: Any, *, exec: bool) -> Options:
        """From a query (`get`/`getlist`); raises ValueError with upstream's wording when invalid.
        With a TTY there is no separate stderr (the kubelet drops it)."""
        tty = query_bool(query.get("tty"))
        options = cls(stdin=query_bool(query.get("stdin")), stdout=query_bool(query.get("stdout")),
                      stderr=query_bool(query.get("stderr")) and not tty, tty=tty,
                      command=tuple(query.getlist("command")) if exec else ())
        if exec and not options.command:
            raise ValueError("you must specify at least 1 command")
        if not (options.stdin or options.stdout or options.stderr or query_bool(query.get("stderr"))):
            raise ValueError("you must specify at least 1 of stdin, stdout, stderr")
        return options

    def query(self) -> list[tuple[str, str]]:
        """The same options as query parameters (what the agent is sent)."""
        pairs = [("command", c) for c in self.command]
        for name in ("stdin", "stdout", "stderr", "tty"):
            if getattr(self, name):
                pairs.append((name, "true"))
        return pairs


def message(channel: int, payload: bytes = b"") -> bytes:
    return bytes([channel]) + payload


def split(data: bytes | str) -> tuple[int, bytes] | None:
    """(channel, payload) of one received message; a text message (Python's `str` writes) is
    its UTF-8 bytes. None for an empty message, which carries nothing."""
    raw = data.encode() if isinstance(data, str) else data
    if not raw:
        return None
    return raw[0], raw[1:]


def encode_base64(channel: int, payload: bytes) -> str:
    """One server message of the base64 protocols: the channel digit, then the payload in base64."""
    if not 0 <= channel <= 9:
        raise ValueError(f"channel {channel} has no digit in the base64 protocols")
    return chr(ord("0") + channel) + base64.b64encode(payload).decode("ascii")


def decode_base64(data: bytes | str) -> tuple[int, bytes] | None:
    """(channel, payload) of one message of the base64 protocols (text or binary frame); None for
    an empty message; ValueError for a first character that is no digit or a payload that is not
    padded standard base64."""
    raw = data.encode() if isinstance(data, str) else data
    if not raw:
        return None
    channel = raw[0] - ord("0")
    if not 0 <= channel <= 9:
        raise ValueError(f"{raw[:1]!r} is not a channel digit")
    try:
        return channel, base64.b64decode(raw[1:], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"channel {channel}: not base64: {exc}") from None


def from_client(protocol: str, data: bytes | str) -> bytes | None:
    """A client's message as the agent's binary one; None when there is nothing to pass on. A
    ValueError says the message is malformed (the relay drops it, as wsstream does)."""
    if protocol not in BASE64_PROTOCOLS:
        return data.encode() if isinstance(data, str) else data
    parts = decode_base64(data)
    return None if parts is None else message(*parts)


def to_client(protocol: str, raw: bytes) -> bytes | str | None:
    """An agent message (binary, channel byte first) in the client's protocol; None when the
    protocol has nothing to say for it (the pre-v4 error channel on success)."""
    if protocol not in BASE64_PROTOCOLS:
        return raw
    parts = split(raw)
    if parts is None:
        return None
    channel, payload = parts
    if channel == ERROR and protocol == BASE64 and payload:
        try:
            status = json.loads(payload)
        except ValueError:
            status = None
        if isinstance(status, dict):
            if status.get("status") == "Success":
                return None
            payload = str(status.get("message") or status.get("reason") or "error").encode()
    return encode_base64(channel, payload)


def exit_status(code: int) -> dict[str, Any]:
    """The error channel's Status for a command that ended with `code` (upstream's shape)."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def status_message(status: dict[str, Any]) -> bytes:
    return message(ERROR, json.dumps(status, separators=(",", ":")).encode())


class ResizeDecoder:
    """Terminal sizes out of the resize channel: a JSON stream, split anywhere across messages."""

    def __init__(self) -> None:
        self._buffer = ""
        self._json = json.JSONDecoder()

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        """(width, height) pairs completed by `data`; garbage is dropped (a resize is advisory)."""
        self._buffer += data.decode("utf-8", "replace")
        sizes: list[tuple[int, int]] = []
        while True:
            text = self._buffer.lstrip()
            if not text:
                self._buffer = ""
                return sizes
            try:
                value, end = self._json.raw_decode(text)
            except ValueError:
                if len(text) > 4096:  # never a size: drop it rather than grow without bound
                    self._buffer = ""
                else:
                    self._buffer = text
                return sizes
            self._buffer = text[end:]
            if isinstance(value, dict):
                width, height = value.get("Width"), value.get("Height")
                if isinstance(width, int) and isinstance(height, int) and 0 < width < 65536 and 0 < height < 65536:
                    sizes.append((width, height))


_DOCKER_HEADER = struct.Struct(">BxxxI")


class DockerDemuxer:
    """Docker's multiplexed attach stream (non-TTY): 8-byte header (stream 1 stdout / 2 stderr, 3
    padding bytes, big-endian length) + payload, split anywhere by the socket. The stream numbers
    equal the channel numbers above."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        out: list[tuple[int, bytes]] = []
        offset = 0
        while len(self._buffer) - offset >= _DOCKER_HEADER.size:
            stream, length = _DOCKER_HEADER.unpack_from(self._buffer, offset)
            end = offset + _DOCKER_HEADER.size + length
            if end > len(self._buffer):
                break
            payload = bytes(self._buffer[offset + _DOCKER_HEADER.size:end])
            if payload and stream in (STDOUT, STDERR):
                out.append((stream, payload))
            offset = end
        del self._buffer[:offset]
        return out
