"""Port-forward's WebSocket channel protocol (`v4.channel.k8s.io`), as pure functions.

This is what the official Python client speaks (`kubernetes.stream.portforward`); kubectl 1.32
uses SPDY instead (`reconcile.core.spdy`, tunnelled in a WebSocket). Wire facts, from the kubelet's
`pkg/kubelet/cri/streaming/portforward/websocket.go` and the client's `ws_client.py`
(/work/shared/reference/streaming-protobuf-ssa.md §2.6):

- `GET .../pods/P/portforward?ports=8080,9090` (the API's parameter; also several `ports=`),
  offering `v5.channel.k8s.io,v4.channel.k8s.io`. The kubelet's parameter is `port`; it accepts
  no subprotocol or `v4.channel.k8s.io` (binary; the first one offered wins) and answers
  `v4.channel.k8s.io` to the Python client.
- The i-th port has two channels: data `2i` (both ways), error `2i+1` (server to client). Right
  after the handshake the server writes, per port, data then error channel, one message of the
  channel byte and the port as a little-endian uint16: 8080 is `00 90 1F`, `01 90 1F`. The client
  checks that first message on every channel and raises otherwise.
- Then every message is a channel byte and payload. Error-channel text is an error: the Python
  client keeps it (`pf.error(port)`) and closes that port's local socket.
- One connection to the pod per port, for the life of the WebSocket; when every port's connection
  has ended, the server closes the WebSocket.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

V4 = "v4.channel.k8s.io"
NO_SUBPROTOCOL = ""  # the kubelet's binary protocol when the client names none
SUPPORTED = (NO_SUBPROTOCOL, V4)
API_PARAMETER = "ports"  # kube-apiserver's PodPortForwardOptions
AGENT_PARAMETER = "port"  # the kubelet's


def negotiate(offered: Iterable[str]) -> str | None:
    """The subprotocol to answer (upstream's wsstream: the first offered that is supported; none
    offered means the binary protocol without a name), or None when nothing fits."""
    offered = [p.strip() for p in offered if p.strip()]
    if not offered:
        return NO_SUBPROTOCOL
    return next((p for p in offered if p in SUPPORTED), None)


def unsupported(offered: Iterable[str]) -> str:
    """The handshake refusal for subprotocols we cannot speak (wsstream's wording)."""
    return (f"unable to upgrade websocket connection: requested protocol(s) are not supported: "
            f"[{' '.join(offered)}]; supports [{' '.join(SUPPORTED)}]")


def api_ports(values: Iterable[str]) -> list[int]:
    """kube-apiserver's conversion of `ports=` (several parameters, each a comma list) to ports;
    a ValueError carries its message. Zero passes here and is refused by `agent_ports`."""
    ports: list[int] = []
    for value in values:
        for part in value.split(","):
            ports.append(_uint16(part, "cannot convert to []int32: "))
    return ports


def agent_ports(values: Iterable[str]) -> list[int]:
    """The kubelet's checks of its `port=` parameters (NewV4Options), with its messages."""
    values = list(values)
    if not values:
        raise ValueError(f'query parameter "{AGENT_PARAMETER}" is required')
    ports: list[int] = []
    for value in values:
        if not value:
            raise ValueError(f'query parameter "{AGENT_PARAMETER}" cannot be empty')
        for part in value.split(","):
            try:
                port = _uint16(part, "")
            except ValueError as exc:
                raise ValueError(f'unable to parse "{value}" as a port: {exc}') from None
            if port < 1:
                raise ValueError(f'port "{value}" must be > 0')
            ports.append(port)
    return ports


def _uint16(text: str, prefix: str) -> int:
    """Go's strconv.ParseUint(text, 10, 16), with its error wording."""
    if not text or not all("0" <= c <= "9" for c in text):
        raise ValueError(f'{prefix}strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text)
    if value > 0xFFFF:
        raise ValueError(f'{prefix}strconv.ParseUint: parsing "{text}": value out of range')
    return value


def data_channel(index: int) -> int:
    return 2 * index


def error_channel(index: int) -> int:
    return 2 * index + 1


def opening_messages(ports: Iterable[int]) -> list[bytes]:
    """The first message on every channel: data then error channel of each port, each carrying
    the port as a little-endian uint16."""
    out: list[bytes] = []
    for index, port in enumerate(ports):
        encoded = struct.pack("<H", port)
        out += [bytes([data_channel(index)]) + encoded, bytes([error_channel(index)]) + encoded]
    return out


def message(channel: int, payload: bytes) -> bytes:
    return bytes([channel]) + payload


def split(data: bytes) -> tuple[int, bytes] | None:
    """A client message as (channel, payload); None for an empty message (nothing to do)."""
    if not data:
        return None
    return data[0], data[1:]
