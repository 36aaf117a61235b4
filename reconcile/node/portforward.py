"""Port-forward's stream protocol (`portforward.k8s.io` over SPDY/3.1), the kubelet's side.

kubectl opens, per local TCP connection, two SPDY streams carrying the same `requestid` and `port`
headers: `streamtype: error` (it only reads it) and `streamtype: data`. Each stream gets a
SYN_REPLY; once the data stream is there, the agent connects to the pod's port and copies bytes
both ways. Connections are independent: many run at once on one SPDY connection, and one that
fails does not stop the others here (kubectl 1.32 itself drops the whole forward when it reads an
error, as it does with a kubelet).

How the pod is reached: its IP on the node's Docker bridge network (the infra container's address,
`status.podIP`), which the agent's host can route to, as the agent's probes do. That is the
kubelet's `nsenter`-free equivalent for a bridge network; a pod port bound only to 127.0.0.1
inside the pod is not reachable this way (the kubelet's in-namespace dial would reach it).

Failures are reported on the error stream as the kubelet words them: `error forwarding port
<p> to pod <name>, uid <uid>: <reason>`, then both streams are finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from reconcile.core import spdy

log = logging.getLogger(__name__)

SUBPROTOCOL = "SPDY/3.1+portforward.k8s.io"  # kubectl's, from the API server
# What the API server asks the agent for: the same bytes under a name that is an RFC 7230 token
# (the `websockets` client refuses a server's answer naming kubectl's, over its "/").
AGENT_SUBPROTOCOL = "portforward.k8s.io"
CHUNK = 256 * 1024
CONNECT_TIMEOUT = 10.0

Connect = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


async def open_connection(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port, limit=CHUNK)


def dial_error(host: str, port: int, exc: OSError | TimeoutError) -> str:
    """A failed connect as Go's net.Dial words it (asyncio's text is "Connect call failed (...)")."""
    reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else str(exc) or "i/o timeout"
    return f"dial tcp {host}:{port}: connect: {reason.lower()}"


def forward_error(pod_name: str, uid: str, host: str, port: int, exc: OSError | TimeoutError) -> str:
    """The kubelet's words for a port it could not forward (both port-forward protocols say it so)."""
    return f"error forwarding port {port} to pod {pod_name}, uid {uid}: {dial_error(host, port, exc)}"


@dataclass
class _Pair:
    """One forwarded connection: its two streams and the pod socket."""

    port: int
    error_id: int = 0
    data_id: int = 0
    writer: asyncio.StreamWriter | None = None
    pending: list[bytes] = field(default_factory=list)  # client bytes before the pod socket is open
    client_done: bool = False  # the client's FIN on the data stream
    task: asyncio.Task[None] | None = None


class Session:
    """One SPDY connection from the API server (relaying kubectl's)."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], *, pod_ip: str, pod_name: str, uid: str,
                 connect: Connect = open_connection) -> None:
        self._send_bytes = send
        self._pod_ip = pod_ip
        self._pod_name = pod_name
        self._uid = uid
        self._connect = connect
        self._parser = spdy.Parser()
        self._encoder = spdy.Encoder()
        self._lock = asyncio.Lock()  # frames go out whole and in order (one compression context)
        self._pairs: dict[str, _Pair] = {}
        self._streams: dict[int, str] = {}  # stream id -> request id
        self.ended = False

    async def send(self, build: Callable[[spdy.Encoder], bytes]) -> None:
        async with self._lock:
            await self._send_bytes(build(self._encoder))

    async def feed(self, data: bytes) -> None:
        """Bytes from the client; raises spdy.ProtocolError on garbage (end the connection)."""
        for frame in self._parser.feed(data):
            await self._frame(frame)

    async def _frame(self, frame: spdy.Frame) -> None:
        if frame.type == spdy.SYN_STREAM:
            await self._syn_stream(frame)
        elif frame.type == 0:
            await self._data(frame)
        elif frame.type == spdy.RST_STREAM:
            request = self._streams.get(frame.stream_id)
            if request is not None:
                self._close_pair(request)
        elif frame.type == spdy.PING:
            await self.send(lambda e: e.ping(frame.ping_id))
        elif frame.type == spdy.GOAWAY:
            self.ended = True

    async def _syn_stream(self, frame: spdy.Frame) -> None:
        headers = frame.headers
        kind = headers.get("streamtype", "")
        try:
            port = int(headers.get("port", ""))
        except ValueError:
            port = 0
        if kind not in ("error", "data") or not 0 < port < 65536 or frame.stream_id in self._streams:
            log.info("port-forward: refusing stream %d (streamtype %r, port %r)", frame.stream_id, kind,
                     headers.get("port"))
            await self.send(lambda e: e.rst_stream(frame.stream_id, spdy.PROTOCOL_ERROR))
            return
        request = headers.get("requestid") or str(frame.stream_id // 4)  # the kubelet infers it likewise
        pair = self._pairs.setdefault(request, _Pair(port))
        self._streams[frame.stream_id] = request
        await self.send(lambda e: e.syn_reply(frame.stream_id))
        if kind == "error":
            pair.error_id = frame.stream_id
        else:
            pair.data_id = frame.stream_id
            pair.client_done = frame.fin
            pair.task = asyncio.ensure_future(self._forward(request, pair))

    async def _data(self, frame: spdy.Frame) -> None:
        request = self._streams.get(frame.stream_id)
        pair = self._pairs.get(request) if request is not None else None
        if pair is None or frame.stream_id != pair.data_id:
            return  # the error stream's empty DATA+FIN, or a stream already gone
        if frame.data:
            if pair.writer is None:
                pair.pending.append(frame.data)
            else:
                pair.writer.write(frame.data)
                with contextlib.suppress(OSError):
                    await pair.writer.drain()
        if frame.fin:
            pair.client_done = True
            if pair.writer is not None:
                half_close(pair.writer)

    async def _forward(self, request: str, pair: _Pair) -> None:
        try:
            reader, writer = await asyncio.wait_for(self._connect(self._pod_ip, pair.port), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            await self._fail(pair, forward_error(self._pod_name, self._uid, self._pod_ip, pair.port, exc))
            return
        pair.writer = writer
        try:
            for chunk in pair.pending:
                writer.write(chunk)
            pair.pending.clear()
            await writer.drain()
            if pair.client_done:
                half_close(writer)
            while chunk := await reader.read(CHUNK):
                await self.send(lambda e: e.data(pair.data_id, chunk))
        except OSError as exc:
            log.info("port-forward %s to %s:%d: %s", request, self._pod_ip, pair.port, exc)
        finally:
            writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self.send(lambda e: e.data(pair.data_id, b"", fin=True))
            if pair.error_id:
                await self.send(lambda e: e.data(pair.error_id, b"", fin=True))

    async def _fail(self, pair: _Pair, message: str) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            if pair.error_id:
                await self.send(lambda e: e.data(pair.error_id, message.encode(), fin=True))
            await self.send(lambda e: e.data(pair.data_id, b"", fin=True))

    def _close_pair(self, request: str) -> None:
        pair = self._pairs.pop(request, None)
        if pair is None:
            return
        for stream_id in (pair.error_id, pair.data_id):
            self._streams.pop(stream_id, None)
        if pair.task is not None and not pair.task.done():
            pair.task.cancel()
        if pair.writer is not None:
            pair.writer.close()

    async def close(self) -> None:
        """End every forwarded connection (the SPDY connection is gone)."""
        tasks = [p.task for p in self._pairs.values() if p.task is not None and not p.task.done()]
        for request in list(self._pairs):
            self._close_pair(request)
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


def half_close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()
