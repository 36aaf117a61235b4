"""uvicorn's httptools protocol, with each fixed-length response sent in one write and the TLS
client certificate in every request's scope; and the server's TLS context.

uvicorn writes a response's status line and headers on `http.response.start` and its body on
`http.response.body`: two `send()` calls and two packets for every answer. For a response with a
Content-Length we hold the header block until the body arrives and write both at once, which
saves a system call here and a wake-up in the client. Streamed (chunked) responses such as watches,
`100 Continue` and HEAD answers are written at once, as before.

uvicorn offers no public hook for this: `HttpToolsProtocol` lives in an internal module, and we rely
on `on_headers_complete` creating `self.cycle` whose `transport` the cycle writes through. So
pyproject.toml pins uvicorn to the minor release this was checked against, and
tests/architecture/test_library_internals.py runs a real uvicorn server with this protocol to fail
loudly if an upgrade changes that shape.

uvicorn's httptools protocol fills no ASGI TLS extension. Ours reads the peer certificate once per
connection in `connection_made` (asyncio and uvloop call it after the handshake, so the certificate
is known) and puts it into each request's scope in `on_message_begin`, where uvicorn builds the
scope: `scope["extensions"]["tls"]["client_cert_chain"]` is `[PEM]` (the leaf, verified by the TLS
layer against the client CA; the standard library does not expose the rest of the chain), or `[]`.
tests/api/test_tls_protocol.py checks this on a real server over TLS.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

_RESPONSE_HEAD = b"HTTP/1.1 "
_INTERIM = b"HTTP/1.1 1"  # 1xx: the client waits for it before sending the body
_FIXED_LENGTH = b"\r\ncontent-length: "  # uvicorn writes header names in lower case


class _HeadWithBody:
    """A transport for one request/response cycle that holds a fixed-length response's header
    block until the first body write (or close) and then writes them together."""

    __slots__ = ("_transport", "_held")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif (isinstance(data, bytes) and data.startswith(_RESPONSE_HEAD) and not data.startswith(_INTERIM)
              and _FIXED_LENGTH in data):
            self._held = data
            return
        self._transport.write(data)

    def close(self) -> None:
        if self._held is not None:
            self._transport.write(self._held)
            self._held = None
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}  # the ASGI extension's numbering


def tls_extension(transport: asyncio.BaseTransport) -> dict[str, Any] | None:
    """The ASGI TLS extension for a connection (None when it is not TLS)."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening, non-blocking TCP socket for uvicorn's `serve(sockets=[...])` (port 0
    picks a free port, which the caller can read and publish before serving).

    Made with protocol `IPPROTO_TCP`, not the default 0: asyncio turns on TCP_NODELAY only for
    sockets that say they are TCP, and accepted sockets inherit the listener's protocol. Without
    it Nagle's algorithm held every small answer until the peer's delayed ACK: 45 ms per request
    on the node agent (each `kubectl exec` paid it on the API server's connection to the agent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def server_context(*, cert_file: str, key_file: str, client_ca_file: str | None = None) -> ssl.SSLContext:
    """The serving context: the standard library's server defaults (TLS 1.2 or later, its cipher
    list, rather than uvicorn's `ssl_ciphers="TLSv1"`), HTTP/1.1 by ALPN, and with a client CA a
    request for a client certificate that is verified when sent but not required, so a request
    without one goes on to the other authenticators (tokens) or to anonymous handling."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["http/1.1"])
    if client_ca_file:
        context.load_verify_locations(cafile=client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


RAW_UPGRADE = "reconcile.raw_upgrade"  # the scope extension of an `Upgrade: SPDY/3.1` request
_HIGH_WATER = 1 << 20  # raw bytes held for the application before reading is paused


class RawUpgrade:
    """The connection of an HTTP/1.1 `Upgrade: SPDY/...` request, after its 101: ASGI knows only
    WebSocket upgrades, so the application gets the bytes that follow from this object (the scope's
    `RAW_UPGRADE` extension). Until `take` is called the connection is uvicorn's: a refusal is an
    ordinary response. The application sends the 101 head through ASGI (`http.response.start`
    with `content-length: 0`, so uvicorn adds no chunked framing; a 1xx has no body for the
    client anyway), calls `take`, then reads and writes here; closing ends the connection."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._held = 0
        self._paused = False
        self._writable = asyncio.Event()
        self._writable.set()
        self.taken = False

    def take(self) -> None:
        self.taken = True

    # the protocol's side
    def feed(self, data: bytes) -> None:
        self._chunks.put_nowait(data)
        self._held += len(data)
        if self._held > _HIGH_WATER and not self._paused:
            self._paused = True
            self._transport.pause_reading()

    def feed_eof(self) -> None:
        self._chunks.put_nowait(b"")
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # the application's side
    async def read(self) -> bytes:
        """The next bytes from the client; b"" once it has gone."""
        data = await self._chunks.get()
        if not data:
            self._chunks.put_nowait(b"")  # EOF stays EOF
        self._held -= len(data)
        if self._paused and self._held <= _HIGH_WATER // 2:
            self._paused = False
            self._transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        if self._transport.is_closing():
            raise ConnectionResetError("the client has gone")
        self._transport.write(data)
        await self._writable.wait()

    def close(self) -> None:
        self._transport.close()


def _upgrade_token(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The `Upgrade` value of a request whose `Connection` says upgrade (else b"")."""
    connection = b",".join(v for k, v in headers if k == b"connection").lower()
    if b"upgrade" not in [token.strip() for token in connection.split(b",")]:
        return b""
    return next((v.lower() for k, v in headers if k == b"upgrade"), b"")


class ApiHttpProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` whose request cycles write fixed-length responses in one piece, whose
    request scopes carry the connection's TLS facts, and which hands a `SPDY/3.1` upgrade's
    connection to the application (`RawUpgrade`): kubectl's fallback when WebSockets fail or are
    turned off. uvicorn itself upgrades only to WebSockets: it logs "Unsupported upgrade request."
    for the SPDY request (its parser stops there) and would drop every byte after it; once the
    application has taken the connection, `data_received` hands those bytes over instead of
    feeding them to uvicorn's parser."""

    _tls: dict[str, Any] | None = None
    _raw: RawUpgrade | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._tls = tls_extension(transport)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[typeddict-unknown-key]

    def on_headers_complete(self) -> None:
        previous = self.cycle
        if _upgrade_token(self.headers).startswith(b"spdy/"):
            self._raw = RawUpgrade(self.transport)
            self.scope.setdefault("extensions", {})[RAW_UPGRADE] = self._raw  # type: ignore[typeddict-item]
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not previous and cycle.scope["method"] != "HEAD":
            cycle.transport = _HeadWithBody(cycle.transport)  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._raw is not None and self._raw.taken:
            self._raw.feed(data)
            return
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._raw is not None:
            self._raw.feed_eof()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._raw is not None:
            self._raw.pause_writing()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._raw is not None:
            self._raw.resume_writing()


class ApiWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol (the `websockets` sans-I/O one) whose scopes carry the TLS facts,
    as `ApiHttpProtocol`'s do: exec, attach and port-forward are authenticated by client
    certificate like any request. `handle_connect` builds `self.scope` and only schedules the ASGI
    task, so the extension added right after it is there when the application runs (checked by
    tests/architecture/test_library_internals.py)."""

    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._tls = tls_extension(transport)

    def handle_connect(self, event: Any) -> None:
        # kubectl's port-forward subprotocol `SPDY/3.1+portforward.k8s.io` is not an RFC 7230 token
        # (the "/"), and `websockets` refuses the whole handshake over it (400). The header is
        # taken out before the library parses it and given to the application as sent.
        offered = [token.strip() for value in event.headers.get_all("Sec-WebSocket-Protocol")
                   for token in value.split(",") if token.strip()]
        raw = [(k, v) for k, v in event.headers.raw_items() if k.lower() == "sec-websocket-protocol"]
        if any(not _is_token(token) for token in offered):
            del event.headers["Sec-WebSocket-Protocol"]
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is None:
            return
        if self._tls is not None:
            scope.setdefault("extensions", {})["tls"] = self._tls
        scope["subprotocols"] = offered
        if raw and not any(k == b"sec-websocket-protocol" for k, _ in scope["headers"]):
            scope["headers"] = [*scope["headers"], *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in raw)]


_TOKEN_CHARACTERS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _is_token(text: str) -> bool:
    return bool(text) and all(c in _TOKEN_CHARACTERS for c in text)
