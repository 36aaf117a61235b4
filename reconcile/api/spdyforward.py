"""kubectl's plain SPDY/3.1 port-forward (its fallback): an HTTP/1.1 `POST .../portforward` with
`Upgrade: SPDY/3.1` and `X-Stream-Protocol-Version: portforward.k8s.io`, answered `101` with the
same upgrade and version headers, after which the connection carries SPDY frames
(/work/shared/reference/streaming-protobuf-ssa.md §2.5).

The node agent already speaks the very same SPDY byte stream inside a WebSocket (the tunnel kubectl
uses by default), so the API server does not parse SPDY here: it relays bytes between the raw
connection (`reconcile.api.httpserver.RawUpgrade`) and the agent's WebSocket, unchanged both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.responses import Response

from reconcile.api import httpserver
from reconcile.client import websocket
from reconcile.core import errors

PROTOCOL = "portforward.k8s.io"
VERSION_HEADER = "x-stream-protocol-version"


def raw_upgrade(scope: Any) -> httpserver.RawUpgrade | None:
    """The raw connection of a SPDY upgrade request, when the HTTP layer offers one."""
    raw = (scope.get("extensions") or {}).get(httpserver.RAW_UPGRADE)
    return raw if isinstance(raw, httpserver.RawUpgrade) else None


def negotiate(offered: list[str]) -> None:
    """Upstream's httpstream.Handshake for port-forward: the client's versions must include ours
    (none offered is the legacy client, accepted); else 403 in its words."""
    versions = [v.strip() for value in offered for v in value.split(",") if v.strip()]
    if versions and PROTOCOL not in versions:
        raise errors.Forbidden(f"unable to upgrade: unable to negotiate protocol: client supports "
                               f"[{' '.join(versions)}], server accepts [{PROTOCOL}]")


class SpdyRelay(Response):
    """The 101, then bytes both ways until either side ends; the agent's WebSocket is closed and
    the client's connection closed at the end."""

    def __init__(self, raw: httpserver.RawUpgrade, agent: websocket.Connection) -> None:
        super().__init__(status_code=101)
        self.raw = raw
        self.agent = agent

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(k, v) for k, v in self.raw_headers if k not in (b"content-length", b"content-type")]
        await send({"type": "http.response.start", "status": 101, "headers": [
            (b"connection", b"Upgrade"), (b"upgrade", b"SPDY/3.1"), (VERSION_HEADER.encode(), PROTOCOL.encode()),
            (b"content-length", b"0"), *headers]})
        self.raw.take()

        async def inbound() -> None:
            while data := await self.raw.read():
                await self.agent.send(data)

        async def outbound() -> None:
            with contextlib.suppress(websocket.Closed):
                while True:
                    data = await self.agent.recv()
                    await self.raw.write(data.encode() if isinstance(data, str) else data)

        tasks = {asyncio.ensure_future(inbound()), asyncio.ensure_future(outbound())}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            self.raw.close()
            with contextlib.suppress(Exception):
                await self.agent.close()
            # the cycle's (empty) body, so uvicorn counts the response complete; the connection is closed
            await send({"type": "http.response.body", "body": b"", "more_body": False})
