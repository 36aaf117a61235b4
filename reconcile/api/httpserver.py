"""uvicorn's httptools protocol, with each fixed-length response sent in one write.

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
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


class ApiHttpProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` whose request cycles write fixed-length responses in one piece."""

    def on_headers_complete(self) -> None:
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not previous and cycle.scope["method"] != "HEAD":
            cycle.transport = _HeadWithBody(cycle.transport)  # type: ignore[assignment]
