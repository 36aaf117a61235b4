"""Forwarding with --upstream, to a second server of ours on 127.0.0.1 standing in for the upstream.

The "outside" name is in the stand-in's own zone (`upstream.test`), so no query here can reach a
real resolver: both servers listen on 127.0.0.1 only, and the failure case uses a closed local port.
"""

from __future__ import annotations

import dns.asyncquery
import dns.message
import dns.rcode

from reconcile.dns import records, server, wire
from reconcile.testing import free_port
from tests.dns import fixtures as f


async def started(index: records.Index, upstream: wire.Upstream | None = None) -> server.DnsServer:
    found = server.DnsServer(index, host="127.0.0.1", port=0, upstream=upstream)
    await found.start()
    return found


async def test_names_outside_the_zone_go_to_the_upstream_over_udp_and_tcp() -> None:
    upstream_index = records.Index(zone="upstream.test")
    upstream_index.synced = True
    upstream_index.put_namespace(f.namespace("default"))
    upstream_index.put_service(f.service("web", cluster_ip="192.0.2.80"))
    upstream = await started(upstream_index)
    ours = await started(records.Index(), wire.Upstream("127.0.0.1", upstream.port, timeout=2))
    try:
        query = dns.message.make_query("web.default.svc.upstream.test", "A")
        for send in (dns.asyncquery.udp, dns.asyncquery.tcp):
            reply = await send(query, "127.0.0.1", port=ours.port, timeout=5)
            assert reply.rcode() == dns.rcode.NOERROR and reply.id == query.id
            assert [rd.address for rd in reply.answer[0]] == ["192.0.2.80"]
        assert ours.stats.forwarded == 1 and upstream.stats.udp_queries == 2  # TCP clients forwarded over UDP
    finally:
        await ours.stop()
        await upstream.stop()


async def test_an_upstream_that_does_not_answer_is_servfail() -> None:
    ours = await started(records.Index(), wire.Upstream("127.0.0.1", free_port(), timeout=0.5))
    try:
        reply = await dns.asyncquery.udp(dns.message.make_query("web.default.svc.upstream.test", "A"), "127.0.0.1",
                                         port=ours.port, timeout=5)
        assert reply.rcode() == dns.rcode.SERVFAIL
    finally:
        await ours.stop()
