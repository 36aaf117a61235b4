"""A WebSocket client connection: the seam to the `websockets` library (the API server uses it to
reach a node agent's exec, attach and port-forward endpoints).

Messages are bytes or str as received; `Closed` is the only error that leaves this module, carrying
the close code, so callers never see a `websockets` type. A refused handshake (the agent answered
a `Status` instead of 101) raises the `errors.ApiError` that Status describes.
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Sequence

import websockets.asyncio.client
import websockets.exceptions

from reconcile.client import api
from reconcile.client import config as client_config
from reconcile.core import errors


class Closed(Exception):
    """The connection closed; `code` is the WebSocket close code (1006: no Close frame)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"websocket closed with code {code}")
        self.code = code


def ssl_context(config: client_config.ClientConfig) -> ssl.SSLContext:
    """The TLS context of `config`: its CA (or no verification when `verify` is False), its client cert.
    Shared with the HTTP client's (`api.tls_context`) and made once per set of files, not per
    connection: building a context that trusts the system store reads that store (~20 ms, most of
    an exec's set-up)."""
    settings = api.tls_context(config)
    if isinstance(settings, ssl.SSLContext):
        return settings
    return _context_without_files(settings)


@functools.cache
def _context_without_files(verify: bool) -> ssl.SSLContext:
    if verify:
        return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Connection:
    """One open client WebSocket."""

    def __init__(self, conn: websockets.asyncio.client.ClientConnection) -> None:
        self._conn = conn

    @property
    def subprotocol(self) -> str | None:
        return self._conn.subprotocol

    async def recv(self) -> bytes | str:
        try:
            return await self._conn.recv()
        except websockets.exceptions.ConnectionClosed as exc:
            raise Closed(exc.rcvd.code if exc.rcvd is not None else 1006) from None

    async def send(self, data: bytes | str) -> None:
        try:
            await self._conn.send(data)
        except websockets.exceptions.ConnectionClosed as exc:
            raise Closed(exc.rcvd.code if exc.rcvd is not None else 1006) from None

    async def close(self, code: int = 1000) -> None:
        await self._conn.close(code)


async def connect(url: str, config: client_config.ClientConfig, *, subprotocols: Sequence[str],
                  timeout: float = 10, user_agent: str = "reconcile-apiserver") -> Connection:
    """Open `url` (wss://...) with `config`'s TLS material and bearer token (or token file). The
    peer's pings are answered by the library; we send none (the API server's own client side
    pings kubectl)."""
    headers = {}
    token = config.token or _read_token(config.token_file)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn = await websockets.asyncio.client.connect(
            url, ssl=ssl_context(config) if url.startswith("wss://") else None,
            subprotocols=[websockets.Subprotocol(p) for p in subprotocols], compression=None, proxy=None,
            open_timeout=timeout, ping_interval=None, max_size=None, user_agent_header=user_agent,
            additional_headers=headers)
    except websockets.exceptions.InvalidStatus as exc:
        raise _refusal(exc.response.status_code, bytes(exc.response.body or b"")) from None
    except (OSError, TimeoutError, client_config.ConfigError, websockets.exceptions.InvalidHandshake) as exc:
        raise errors.ServiceUnavailable(f"cannot reach {url.split('?')[0]}: {exc}") from None
    return Connection(conn)


def _read_token(path: str | None) -> str:
    if not path:
        return ""
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _refusal(code: int, body: bytes) -> errors.ApiError:
    try:
        status = json.loads(body)
    except ValueError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        return errors.from_status(status)
    return errors.from_status({"status": "Failure", "code": code, "message": body.decode("utf-8", "replace")
                               or f"the node agent answered {code}"})
