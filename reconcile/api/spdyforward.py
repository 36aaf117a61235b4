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

from reconcile.api import httpserver
from reconcile.client import websocket
from reconcile.core import errors

PROTOCOL = "portforward.k8s.io"
VERSION_HEADER = "x-stream-protocol-version"


def raw_upgrade(scope: Any) -> httpserver.RawUpgrade | None:
    """The raw connection of a SPDY upgrade request, when the HTTP layer offers one."""
    raw = (scope.get("extensions") or {}).get(httpserver.RAW_UPGRADE)
    return raw if isinstance(raw, httpserver.RawUpgrade) else None


def negotiate(offered: list[str], accepted: tuple[str, ...] = (PROTOCOL,), *, legacy: str | None = PROTOCOL) -> str:
    """Upstream's httpstream.Handshake: the first of the client's versions (in its order) that
    the server accepts; none offered is the legacy client (`legacy`, when that is allowed); else
    403 in upstream's words."""
    versions = [v.strip() for value in offered for v in value.split(",") if v.strip()]
    if not versions and legacy is not None:
        return legacy
    chosen = next((v for v in versions if v in accepted), None)
    if chosen is None:
        raise errors.Forbidden(f"unable to upgrade: unable to negotiate protocol: client supports "
                               f"[{' '.join(versions)}], server accepts [{' '.join(accepted)}]")
    return chosen


def switching(version: str, extra: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The 101 head (`content-length: 0` keeps uvicorn from adding chunked framing)."""
    extra = [(k, v) for k, v in extra if k not in (b"content-length", b"content-type")]
    return {"type": "http.response.start", "status": 101, "headers": [
        (b"connection", b"Upgrade"), (b"upgrade", b"SPDY/3.1"), (VERSION_HEADER.encode(), version.encode()),
        (b"content-length", b"0"), *extra]}


class SpdyRelay:
    """The 101, then bytes both ways until either side ends; the agent's WebSocket is closed and
    the client's connection closed at the end."""

    def __init__(self, raw: httpserver.RawUpgrade, agent: websocket.Connection) -> None:
        self.raw = raw
        self.agent = agent

    async def __call__(self, extra_headers: list[tuple[bytes, bytes]], send: Any) -> None:
        """Serve the connection: `extra_headers` go on the 101, `send` is the ASGI send."""
        await send(switching(PROTOCOL, extra_headers))
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
