"""kubectl's plain SPDY/3.1 exec and attach (its fallback, or KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false),
translated to the node agent's WebSocket channel protocol (`reconcile.core.remotecommand`, v5).

Wire (/work/shared/reference/streaming-protobuf-ssa.md §1.7): `POST .../exec?...` with
`Upgrade: SPDY/3.1` and `X-Stream-Protocol-Version` v5 ... channel.k8s.io; the kubelet supports up
to v4 and picks the first the client lists that it supports, so the answer is `101` with
`X-Stream-Protocol-Version: v4.channel.k8s.io`. kubectl then opens one SPDY stream per
`streamtype` header (error, stdin with -i, stdout, stderr without a TTY, resize with one), each
answered by SYN_REPLY. Here:
- stdin DATA goes to the agent as channel 0, its FIN as v5's CLOSE `FF 00`; resize DATA (the same
  `{"Width","Height"}` JSON stream) as channel 4;
- the agent's channels 1 and 2 go out as DATA on stdout and stderr once kubectl has opened the
  streams it asked for (until then they wait); its channel-3 Status ends the session: FIN on
  stdout and stderr, then the Status JSON + FIN on the error stream (v4's error stream is that
  JSON; kubectl reads the exit code from it as over WebSockets);
- an agent lost before its Status gives a Failure Status; SPDY PINGs are echoed.
kubectl then resets its streams and sends GOAWAY; the connection is closed after that (or after
`LINGER` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from reconcile.api import httpserver, spdyforward
from reconcile.client import websocket
from reconcile.core import errors, remotecommand, spdy

log = logging.getLogger(__name__)

V4 = "v4.channel.k8s.io"
ACCEPTED = (V4,)
STREAM_TIMEOUT = 30.0  # the kubelet's stream creation timeout
LINGER = 5.0  # after the Status, how long kubectl gets to say goodbye


def negotiate(offered: list[str]) -> str:
    return spdyforward.negotiate(offered, ACCEPTED, legacy=None)


class SpdyExec:
    """The 101, then the translation until the command's Status has been delivered or either
    side has gone."""

    def __init__(self, raw: httpserver.RawUpgrade, agent: websocket.Connection, options: remotecommand.Options,
                 *, node: str) -> None:
        self.raw = raw
        self.agent = agent
        self.options = options
        self.node = node
        self._encoder = spdy.Encoder()
        self._lock = asyncio.Lock()
        self._streams: dict[str, int] = {}  # streamtype -> stream id
        self._kinds: dict[int, str] = {}
        self._ready = asyncio.Event()
        self._expected = {"error"} | {name for name in ("stdin", "stdout", "stderr") if getattr(options, name)}

    async def _write(self, data: bytes) -> None:
        async with self._lock:
            await self.raw.write(data)

    async def __call__(self, extra_headers: list[tuple[bytes, bytes]], send: Any) -> None:
        """Serve the connection: `extra_headers` go on the 101, `send` is the ASGI send."""
        await send(spdyforward.switching(V4, extra_headers))
        self.raw.take()
        inbound = asyncio.ensure_future(self._inbound())
        outbound = asyncio.ensure_future(self._outbound())
        try:
            done, _ = await asyncio.wait({inbound, outbound}, return_when=asyncio.FIRST_COMPLETED)
            if outbound in done and not inbound.done():
                await asyncio.wait({inbound}, timeout=LINGER)
        finally:
            for task in (inbound, outbound):
                task.cancel()
            for task in (inbound, outbound):
                with contextlib.suppress(BaseException):
                    await task
            self.raw.close()
            with contextlib.suppress(Exception):
                await self.agent.close()
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _inbound(self) -> None:
        """kubectl's frames until its GOAWAY or the connection's end."""
        parser = spdy.Parser()
        try:
            while data := await self.raw.read():
                for frame in parser.feed(data):
                    if not await self._frame(frame):
                        return
        except (spdy.ProtocolError, OSError, websocket.Closed) as exc:
            log.info("SPDY exec ended: %s", exc)

    async def _frame(self, frame: spdy.Frame) -> bool:
        if frame.type == spdy.SYN_STREAM:
            kind = frame.headers.get("streamtype", "")
            if kind not in ("error", "stdin", "stdout", "stderr", "resize") or kind in self._streams:
                await self._write(self._encoder.rst_stream(frame.stream_id, spdy.PROTOCOL_ERROR))
                return True
            self._streams[kind] = frame.stream_id
            self._kinds[frame.stream_id] = kind
            async with self._lock:
                await self.raw.write(self._encoder.syn_reply(frame.stream_id))
            if self._expected <= self._streams.keys():
                self._ready.set()
        elif frame.type == 0:
            kind = self._kinds.get(frame.stream_id)
            if kind == "stdin":
                if frame.data:
                    await self.agent.send(remotecommand.message(remotecommand.STDIN, frame.data))
                if frame.fin:
                    await self.agent.send(remotecommand.message(remotecommand.CLOSE, bytes([remotecommand.STDIN])))
            elif kind == "resize" and frame.data:
                await self.agent.send(remotecommand.message(remotecommand.RESIZE, frame.data))
        elif frame.type == spdy.PING:
            await self._write(self._encoder.ping(frame.ping_id))
        elif frame.type == spdy.GOAWAY:
            return False
        return True

    async def _outbound(self) -> None:
        """The agent's messages, once kubectl's streams are there, until the Status."""
        try:
            await asyncio.wait_for(self._ready.wait(), STREAM_TIMEOUT)
        except TimeoutError:
            log.info("SPDY exec: kubectl opened %s, not %s", sorted(self._streams), sorted(self._expected))
            return
        status: dict[str, Any] | None = None
        try:
            while status is None:
                parts = remotecommand.split(await self.agent.recv())
                if parts is None:
                    continue
                channel, payload = parts
                if channel == remotecommand.ERROR:
                    status = json.loads(payload or b"{}")
                elif payload and channel in (remotecommand.STDOUT, remotecommand.STDERR):
                    stream = self._streams.get("stdout" if channel == remotecommand.STDOUT else "stderr")
                    if stream is not None:
                        await self._write(self._encoder.data(stream, payload))
        except websocket.Closed as closed:
            status = errors.ServiceUnavailable(
                f"lost the node agent of node {self.node} (close code {closed.code})").to_status()
        except ValueError:
            status = errors.InternalError("the node agent sent a Status that is not JSON").to_status()
        for kind in ("stdout", "stderr"):
            if kind in self._streams:
                await self._write(self._encoder.data(self._streams[kind], b"", fin=True))
        body = b"" if status.get("status") == "Success" else json.dumps(status, separators=(",", ":")).encode()
        await self._write(self._encoder.data(self._streams["error"], body, fin=True))
