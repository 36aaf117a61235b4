"""Async test helpers for the store: waiting on conditions, collecting watch events, a TCP proxy to cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from tests import support


async def eventually(condition: Callable[[], Any], *, timeout: float = 10.0, what: str = "") -> Any:
    """tests.support.eventually with this suite's default deadline."""
    return await support.eventually(condition, timeout=timeout, interval=0.02, what=what)


async def collect_events(batches: AsyncIterator[Any], count: int, *, timeout: float = 10.0) -> list[Any]:
    """The first `count` events from a watch, failing after `timeout`."""
    events: list[Any] = []
    async with asyncio.timeout(timeout):
        async for batch in batches:
            events.extend(batch.events)
            if len(events) >= count:
                return events
    raise AssertionError(f"watch ended after {len(events)} of {count} events")


class Watcher:
    """Runs a watch in a task and keeps everything it yields, so a test can wait on conditions."""

    def __init__(self, batches: AsyncIterator[Any]) -> None:
        self.batches: list[Any] = []
        self.error: BaseException | None = None
        self._iterator = batches
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for batch in self._iterator:
                self.batches.append(batch)
        except Exception as exc:
            self.error = exc

    @property
    def events(self) -> list[Any]:
        return [event for batch in self.batches for event in batch.events]

    async def stop(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        aclose = getattr(self._iterator, "aclose", None)
        if aclose:
            await aclose()


class Proxy:
    """A TCP proxy on a free loopback port whose live connections a test can cut at will."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.connections = 0
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def live(self) -> int:
        """Connections currently open through the proxy."""
        return len(self._pairs)

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        self.connections += 1
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._pairs.discard(pair)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()

    def cut(self) -> None:
        """Reset every connection through the proxy (both sides)."""
        for client, upstream in list(self._pairs):
            client.transport.abort()
            upstream.transport.abort()
        self._pairs.clear()

    async def stop(self) -> None:
        if self._server:
            self._server.close()
        self.cut()
