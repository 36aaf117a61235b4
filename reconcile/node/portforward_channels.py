"""Port-forward over the WebSocket channel protocol (`v4.channel.k8s.io`), the kubelet's side.

The official Python client's protocol (`reconcile.core.portforward_channels`): the ports come in
the request (`?port=80,8080`), and each gets one connection to the pod, opened at once and kept
for the life of the WebSocket, as the kubelet's `handleWebSocketStreams` does. Bytes on data
channel `2i` go to the i-th connection and its bytes come back on the same channel; a failure is
written as text on error channel `2i+1`, worded as the kubelet words it (`error forwarding port
<p> to pod <name>, uid <uid>: <reason>`, the same text as the SPDY side, `reconcile.node.portforward`).

When the pod ends a connection, the other direction gets a second to finish before that port is
done (containerd's forwarder waits so, for the client to read what was sent); when every port is
done the caller closes the WebSocket, which is how the client learns the forward is over.
The pod is reached as for SPDY: at its IP on the node's bridge network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from reconcile.core import portforward_channels as channels
from reconcile.node import portforward

log = logging.getLogger(__name__)

CLOSE_GRACE = 1.0  # containerd: after one direction ends, the other gets this long


@dataclass
class _Port:
    index: int
    number: int
    writer: asyncio.StreamWriter | None = None
    pending: list[bytes] = field(default_factory=list)  # client bytes before the connection is open
    client_done: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False  # the pod connection is gone: client bytes are dropped


class ChannelSession:
    """One WebSocket's forwards: `start` opens every port's connection, `feed` takes each client
    message, `wait` returns once every port is done, `close` ends what is left."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], ports: list[int], *, pod_ip: str, pod_name: str,
                 uid: str, connect: portforward.Connect = portforward.open_connection) -> None:
        self._send_bytes = send
        self._ports = [_Port(i, p) for i, p in enumerate(ports)]
        self._pod_ip = pod_ip
        self._pod_name = pod_name
        self._uid = uid
        self._connect = connect
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    async def _send(self, data: bytes) -> None:
        async with self._lock:
            await self._send_bytes(data)

    async def start(self) -> None:
        for opening in channels.opening_messages(p.number for p in self._ports):
            await self._send(opening)
        self._tasks = [asyncio.ensure_future(self._forward(p)) for p in self._ports]

    async def wait(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def feed(self, data: bytes) -> None:
        """One client message. Bytes for an error channel, an unknown channel or a connection
        that is gone are dropped (the kubelet drops them too)."""
        parts = channels.split(data)
        if parts is None:
            return
        channel, payload = parts
        if channel % 2 or channel // 2 >= len(self._ports) or not payload:
            return
        port = self._ports[channel // 2]
        if port.closed:
            return
        if port.writer is None:
            port.pending.append(payload)
            return
        port.writer.write(payload)
        with contextlib.suppress(OSError, ConnectionError):
            await port.writer.drain()

    async def _forward(self, port: _Port) -> None:
        try:
            reader, writer = await asyncio.wait_for(self._connect(self._pod_ip, port.number),
                                                    portforward.CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            port.closed = True
            message = portforward.forward_error(self._pod_name, self._uid, self._pod_ip, port.number, exc)
            with contextlib.suppress(OSError, ConnectionError, RuntimeError):
                await self._send(channels.message(channels.error_channel(port.index), message.encode()))
            return
        port.writer = writer
        try:
            for chunk in port.pending:
                writer.write(chunk)
            port.pending.clear()
            await writer.drain()
            while chunk := await reader.read(portforward.CHUNK):
                await self._send(channels.message(channels.data_channel(port.index), chunk))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(port.client_done.wait(), CLOSE_GRACE)
        except (OSError, ConnectionError, RuntimeError) as exc:
            log.info("port-forward to %s:%d: %s", self._pod_ip, port.number, exc)
        finally:
            port.closed = True
            writer.close()

    async def close(self) -> None:
        """The WebSocket is gone: each pod connection gets its end of input, then is closed."""
        for port in self._ports:
            port.client_done.set()
            if port.writer is not None and not port.closed:
                portforward.half_close(port.writer)
        for task in self._tasks:
            if not task.done():
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
