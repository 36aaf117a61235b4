"""The server's TCP side as an SRE would poke it: pipelining, a connection cap, an idle timeout."""

from __future__ import annotations

import asyncio

import dns.message
import dns.rcode

from reconcile.dns import records, server
from reconcile.testing import eventually
from tests.dns import fixtures as f


def frame(name: str) -> tuple[dns.message.Message, bytes]:
    query = dns.message.make_query(name, "A")
    wire_query = query.to_wire()
    return query, len(wire_query).to_bytes(2, "big") + wire_query


async def read_reply(reader: asyncio.StreamReader) -> dns.message.Message:
    size = int.from_bytes(await reader.readexactly(2), "big")
    return dns.message.from_wire(await reader.readexactly(size))


async def test_pipelined_queries_are_answered_in_order() -> None:
    index = records.Index()
    index.synced = True
    index.put_namespace(f.namespace("default"))
    index.put_service(f.service("web"))
    dns_server = server.DnsServer(index, port=0)
    await dns_server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", dns_server.port)
        sent = [frame(name) for name in ("web.default.svc.cluster.local", "nope.default.svc.cluster.local")]
        writer.write(b"".join(data for _, data in sent))
        await writer.drain()
        first, second = await read_reply(reader), await read_reply(reader)
        assert (first.id, first.rcode()) == (sent[0][0].id, dns.rcode.NOERROR)
        assert (second.id, second.rcode()) == (sent[1][0].id, dns.rcode.NXDOMAIN)
        writer.close()
    finally:
        await dns_server.stop()


async def test_connections_beyond_the_cap_are_closed_and_idle_ones_time_out() -> None:
    dns_server = server.DnsServer(records.Index(), port=0, max_connections=2, idle_timeout=0.5)
    await dns_server.start()
    try:
        held = [await asyncio.open_connection("127.0.0.1", dns_server.port) for _ in range(2)]
        await eventually(lambda: len(dns_server._connections) == 2, timeout=5, what="two connections held")
        reader, _ = await asyncio.open_connection("127.0.0.1", dns_server.port)
        assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # closed at once
        assert dns_server.stats.dropped_connections == 1
        for held_reader, _ in held:  # silent clients are dropped after the idle timeout
            assert await asyncio.wait_for(held_reader.read(), timeout=5) == b""
        await eventually(lambda: not dns_server._connections, timeout=5, what="connections released")
        reader, writer = await asyncio.open_connection("127.0.0.1", dns_server.port)
        _, data = frame("svc.cluster.local")
        writer.write(data)
        assert (await read_reply(reader)).rcode() == dns.rcode.NOERROR  # room again
        writer.close()
    finally:
        await dns_server.stop()
