"""The DNS server's transports: UDP and TCP on one address, both answering from one record index.

asyncio's own datagram and stream servers carry the bytes; `wire` turns them into answers. A UDP
query for a name in the cluster domain is answered in the datagram callback itself (no task per
query); only forwarding waits. TCP connections carry length-prefixed messages (RFC 1035 4.2.2,
RFC 7766): pipelined queries are answered in order, an idle or slow connection is closed after
`idle_timeout`, and at most `max_connections` are open at once (the rest are closed at accept), so
a client holding connections open cannot exhaust the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from reconcile.dns import records, wire

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 10.0  # CoreDNS's TCP read timeout
MAX_CONNECTIONS = 256
PORT_ATTEMPTS = 5  # port 0: UDP ports tried until the same number is free for TCP too


@dataclass
class Stats:
    udp_queries: int = 0
    tcp_queries: int = 0
    forwarded: int = 0
    dropped_connections: int = 0


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.server.stats.udp_queries += 1
        try:
            found = self.server.responder.respond(data, udp=True)
        except Exception:  # a bug answering one query must not stop the server
            log.exception("answering a UDP query from %s failed", addr)
            return
        if found is None or self.transport is None:
            return
        if isinstance(found, wire.Pending):
            self.server.forward_later(found, lambda reply: self._send(reply, addr))
            return
        self.transport.sendto(found, addr)

    def _send(self, reply: bytes, addr: tuple) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable for a reply
        log.debug("UDP error: %s", exc)


@dataclass
class DnsServer:
    """Serves `index` on `host:port` (UDP and TCP); `start` binds, `stop` closes everything."""

    index: records.Index
    host: str = "127.0.0.1"
    port: int = 53
    upstream: wire.Upstream | None = None
    idle_timeout: float = IDLE_TIMEOUT
    max_connections: int = MAX_CONNECTIONS
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.responder = wire.Responder(self.index)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._forwards: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind UDP, then TCP on the same port. With port 0 the OS picks UDP's port, and that number
        may already be taken for TCP by someone else: then another UDP port is tried (a few times)."""
        loop = asyncio.get_running_loop()
        wanted = self.port
        for attempt in range(1 if wanted else PORT_ATTEMPTS):
            transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(self.host, wanted))
            port = transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port, reuse_address=True)
            except OSError:
                transport.close()
                if wanted or attempt == PORT_ATTEMPTS - 1:
                    raise
                continue
            self._udp, self.port = transport, port
            break
        log.info("serving %s on %s:%d (udp, tcp)", self.index.zone, self.host, self.port)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for task in [*self._connections, *self._forwards]:
            task.cancel()
        for task in [*self._connections, *self._forwards]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._tcp is not None:
            with contextlib.suppress(Exception):
                await self._tcp.wait_closed()

    def forward_later(self, pending: wire.Pending, send) -> None:
        self.stats.forwarded += 1

        async def run() -> None:
            send(await wire.forward(pending, self.upstream))

        task = asyncio.get_running_loop().create_task(run())
        self._forwards.add(task)
        task.add_done_callback(self._forwards.discard)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self.max_connections:
            self.stats.dropped_connections += 1
            writer.close()
            return
        self._connections.add(task)
        try:
            while True:
                try:
                    size = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), self.idle_timeout), "big")
                    data = await asyncio.wait_for(reader.readexactly(size), self.idle_timeout)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                self.stats.tcp_queries += 1
                try:
                    found = self.responder.respond(data, udp=False)
                except Exception:  # a bug answering one query ends that connection, not the server
                    log.exception("answering a TCP query failed")
                    return
                if isinstance(found, wire.Pending):
                    found = await wire.forward(found, self.upstream)
                if found is None:
                    return
                writer.write(len(found).to_bytes(2, "big") + found)
                await writer.drain()
        except ConnectionError:
            return
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
