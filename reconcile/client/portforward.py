"""Port-forward's client side: local TCP connections carried to a pod's port over the API
server's `pods/{name}/portforward` (SPDY/3.1 tunnelled in a WebSocket), as client-go's
`tools/portforward` does for kubectl.

One WebSocket per run (`Tunnel`); per local connection (request id 0, 1, 2...) two SPDY
streams with the headers `streamtype`, `port`, `requestid`: the error stream (opened and at once
half-closed: the client only reads it) and the data stream. Bytes are copied both ways until the
pod side ends the data stream; a message on the error stream is the node's reason for failing
(`error forwarding port ...`). As kubectl 1.32 does, an error ends the whole forward (`lost`),
and so does the server closing the WebSocket. Wire notes:
/work/shared/reference/streaming-protobuf-ssa.md §2.

The WebSocket subprotocol offered is `portforward.k8s.io`: kubectl's `SPDY/3.1+portforward.k8s.io`
is not an RFC 7230 token, and the `websockets` library will neither offer it nor accept it in an
answer. reconcile's API server (and node agent) take either name for the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from reconcile.client import config as client_config
from reconcile.client import websocket
from reconcile.core import spdy

log = logging.getLogger(__name__)

SUBPROTOCOL = "portforward.k8s.io"
CHUNK = 32 * 1024
REPLY_TIMEOUT = 30.0  # spdystream's wait for a SYN_REPLY


class ForwardError(Exception):
    """The node could not forward a connection (its text from the error stream)."""


@dataclass
class _Stream:
    """One SPDY stream we opened: its reply, and what arrived on it (None = the peer's FIN/RST)."""

    replied: asyncio.Event = field(default_factory=asyncio.Event)
    incoming: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    reset: bool = False


class Tunnel:
    """One SPDY connection over one WebSocket to a pod's portforward subresource."""

    def __init__(self, conn: websocket.Connection) -> None:
        self._conn = conn
        self._parser = spdy.Parser()
        self._encoder = spdy.Encoder()
        self._lock = asyncio.Lock()  # frames go out whole and in order (one compression context)
        self._stream_ids = itertools.count(1, 2)  # the client's stream ids are odd
        self._request_ids = itertools.count()
        self._streams: dict[int, _Stream] = {}
        self.lost = asyncio.Event()  # the WebSocket ended, or a forward failed (kubectl then stops)
        self.reason = ""
        self._reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader = asyncio.ensure_future(self._read())

    async def _send(self, build: Callable[[spdy.Encoder], bytes]) -> None:
        async with self._lock:
            await self._conn.send(build(self._encoder))

    async def _read(self) -> None:
        try:
            while True:
                message = await self._conn.recv()
                data = message.encode() if isinstance(message, str) else message
                for frame in self._parser.feed(data):
                    await self._frame(frame)
        except websocket.Closed as closed:
            self._lose(f"the connection closed (code {closed.code})")
        except spdy.ProtocolError as exc:
            self._lose(f"bad SPDY from the server: {exc}")
        finally:
            for stream in self._streams.values():
                stream.replied.set()
                stream.incoming.put_nowait(None)

    def _lose(self, reason: str) -> None:
        if not self.lost.is_set():
            self.reason = reason
            self.lost.set()

    async def _frame(self, frame: spdy.Frame) -> None:
        stream = self._streams.get(frame.stream_id)
        if frame.type == spdy.SYN_REPLY and stream is not None:
            stream.replied.set()
        elif frame.type == 0 and stream is not None:
            if frame.data:
                stream.incoming.put_nowait(frame.data)
            if frame.fin:
                stream.incoming.put_nowait(None)
        elif frame.type == spdy.RST_STREAM and stream is not None:
            stream.reset = True
            stream.replied.set()
            stream.incoming.put_nowait(None)
        elif frame.type == spdy.PING and frame.ping_id % 2 == 0:  # the server's ping: echo it
            await self._send(lambda e: e.ping(frame.ping_id))
        elif frame.type == spdy.GOAWAY:
            self._lose("the server ended the connection (GOAWAY)")

    async def _open(self, headers: dict[str, str]) -> tuple[int, _Stream]:
        stream_id = next(self._stream_ids)
        stream = self._streams[stream_id] = _Stream()
        await self._send(lambda e: e.syn_stream(stream_id, headers))
        try:
            await asyncio.wait_for(stream.replied.wait(), REPLY_TIMEOUT)
        except TimeoutError:
            raise ForwardError(f"timed out waiting for the reply to stream {stream_id}") from None
        if stream.reset or self.lost.is_set():
            raise ForwardError(f"the server refused stream {stream_id}" + (f": {self.reason}" if self.reason else ""))
        return stream_id, stream

    async def forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        """Carry one local connection to `port` in the pod until either side ends it. A message on
        the error stream raises ForwardError (after the local connection is closed)."""
        request = str(next(self._request_ids))
        headers = {"streamtype": "error", "port": str(port), "requestid": request}
        try:
            error_id, error = await self._open(headers)
            await self._send(lambda e: e.data(error_id, b"", fin=True))  # we only read the error stream
            data_id, data = await self._open({**headers, "streamtype": "data"})
        except BaseException:
            writer.close()  # the streams never opened: the local connection ends at once
            raise

        async def upstream() -> None:
            while chunk := await reader.read(CHUNK):
                await self._send(lambda e: e.data(data_id, chunk))
            await self._send(lambda e: e.data(data_id, b"", fin=True))

        async def downstream() -> None:
            while (chunk := await data.incoming.get()) is not None:
                writer.write(chunk)
                await writer.drain()

        async def errors() -> str:
            parts = []
            while (chunk := await error.incoming.get()) is not None:
                parts.append(chunk)
            return b"".join(parts).decode("utf-8", "replace")

        up = asyncio.ensure_future(upstream())
        down = asyncio.ensure_future(downstream())
        failed = asyncio.ensure_future(errors())
        message = ""
        try:
            await down  # the pod's side ended the data stream (or the tunnel went)
            with contextlib.suppress(TimeoutError):
                message = await asyncio.wait_for(asyncio.shield(failed), 1.0)
        except (OSError, ConnectionError) as exc:
            log.info("port-forward request %s: local connection: %s", request, exc)
        finally:
            for task in (up, down, failed):
                task.cancel()
            for task in (up, down, failed):
                with contextlib.suppress(BaseException):
                    await task
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
            for stream_id in (data_id, error_id):
                self._streams.pop(stream_id, None)
            if not self.lost.is_set():
                with contextlib.suppress(websocket.Closed):
                    for stream_id in (data_id, error_id):
                        await self._send(lambda e, s=stream_id: e.rst_stream(s, spdy.CANCEL))
        if message:
            raise ForwardError(message)

    async def close(self) -> None:
        """GOAWAY and a normal WebSocket close, as kubectl ends a forward on Ctrl-C."""
        if not self.lost.is_set():
            with contextlib.suppress(websocket.Closed, OSError):
                await self._send(lambda e: e.goaway(0))
        with contextlib.suppress(websocket.Closed, OSError):
            await self._conn.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader


def tunnel_url(config: client_config.ClientConfig, namespace: str, pod: str) -> str:
    base = config.server
    scheme = "wss" if base.startswith("https://") else "ws"
    rest = base.split("://", 1)[1]
    return f"{scheme}://{rest}/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/portforward"


async def open_tunnel(config: client_config.ClientConfig, namespace: str, pod: str) -> Tunnel:
    """Upgrade to the pod's portforward subresource; a refusal raises the server's Status as an ApiError."""
    conn = await websocket.connect(tunnel_url(config, namespace, pod), config, subprotocols=[SUBPROTOCOL])
    tunnel = Tunnel(conn)
    tunnel.start()
    return tunnel
