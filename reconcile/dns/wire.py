"""DNS messages in and out: dnspython's seam (the only module that imports it).

`respond` takes a query as bytes, asks the record index, and returns the response as bytes: the
wire format is dnspython's, never ours. Names outside the cluster domain go to the upstream
resolver when one is configured (CoreDNS's `forward . /etc/resolv.conf`), else are REFUSED, as
CoreDNS answers a name no server block serves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from reconcile.dns import records

log = logging.getLogger(__name__)

UDP_DEFAULT_SIZE = 512  # without EDNS (RFC 1035)
UDP_MAX_SIZE = 4096  # what we honour of a client's EDNS buffer size
TCP_MAX_SIZE = 65535
FORWARD_TIMEOUT = 2.0

_RCODES = {records.NOERROR: dns.rcode.NOERROR, records.NXDOMAIN: dns.rcode.NXDOMAIN,
           records.SERVFAIL: dns.rcode.SERVFAIL, records.REFUSED: dns.rcode.REFUSED}


@dataclass(frozen=True)
class Upstream:
    """Where names outside the cluster domain are forwarded."""

    host: str
    port: int = 53
    timeout: float = FORWARD_TIMEOUT


def _rdata_text(record: records.Record) -> str:
    data = record.data
    if record.type == "SRV":
        return "{} {} {} {}".format(*data)
    if record.type == "SOA":
        return "{} {} {} {} {} {} {}".format(*data)
    if record.type == "TXT":
        return '"' + str(data).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(data)


def _section(found: tuple[records.Record, ...]) -> list[dns.rrset.RRset]:
    """Records -> RRsets, one per (name, type), in the order first seen."""
    sets: dict[tuple[str, str], dns.rrset.RRset] = {}
    for record in found:
        key = (record.name.lower(), record.type)
        rrset = sets.get(key)
        if rrset is None:
            rrset = sets[key] = dns.rrset.RRset(dns.name.from_text(record.name), dns.rdataclass.IN,
                                                dns.rdatatype.from_text(record.type))
        rrset.add(dns.rdata.from_text(dns.rdataclass.IN, rrset.rdtype, _rdata_text(record)), record.ttl)
    return list(sets.values())


def _error(data: bytes, rcode: dns.rcode.Rcode) -> bytes | None:
    """A bare response with `rcode` to a message dnspython cannot read; None when even the header is short."""
    if len(data) < 12:
        return None
    reply = dns.message.Message(id=int.from_bytes(data[:2], "big"))
    reply.flags = dns.flags.QR
    reply.set_rcode(rcode)
    return reply.to_wire()


def _max_size(query: dns.message.Message, udp: bool) -> int:
    if not udp:
        return TCP_MAX_SIZE
    if query.edns >= 0:
        return max(UDP_DEFAULT_SIZE, min(query.payload, UDP_MAX_SIZE))
    return UDP_DEFAULT_SIZE


def _to_wire(query: dns.message.Message, reply: dns.message.Message, udp: bool) -> bytes:
    limit = _max_size(query, udp)
    try:
        return reply.to_wire(max_size=limit)
    except dns.exception.TooBig:  # UDP: the question alone with TC set, so the client asks over TCP
        short = dns.message.make_response(query)
        short.flags |= dns.flags.TC | (reply.flags & dns.flags.AA)
        short.set_rcode(reply.rcode())
        return short.to_wire(max_size=limit)


def answer_query(index: records.Index, query: dns.message.Message) -> tuple[dns.message.Message, bool]:
    """The response to a parsed query, and whether it is outside the zone (to forward)."""
    reply = dns.message.make_response(query)
    if query.opcode() != dns.opcode.QUERY:
        reply.set_rcode(dns.rcode.NOTIMP)
        return reply, False
    if len(query.question) != 1:
        reply.set_rcode(dns.rcode.FORMERR)
        return reply, False
    question = query.question[0]
    if question.rdclass not in (dns.rdataclass.IN, dns.rdataclass.ANY):
        reply.set_rcode(dns.rcode.REFUSED)
        return reply, False
    found = index.answer(question.name.to_text(), dns.rdatatype.to_text(question.rdtype))
    if found.outside:
        reply.set_rcode(dns.rcode.REFUSED)
        return reply, True
    try:
        reply.answer.extend(_section(found.answer))
        reply.authority.extend(_section(found.authority))
        reply.additional.extend(_section(found.additional))
    except (dns.exception.DNSException, ValueError) as exc:  # a name from an object that is no DNS name
        log.warning("cannot answer %s %s: %s", question.name, dns.rdatatype.to_text(question.rdtype), exc)
        reply = dns.message.make_response(query)
        reply.set_rcode(dns.rcode.SERVFAIL)
        return reply, False
    if found.authoritative:
        reply.flags |= dns.flags.AA
    reply.set_rcode(_RCODES[found.rcode])
    return reply, False


@dataclass(frozen=True)
class Pending:
    """A query for a name outside the cluster domain: forward it, or send `fallback` (REFUSED)."""

    query: dns.message.Message
    fallback: bytes
    udp: bool


def respond_local(index: records.Index, data: bytes, *, udp: bool) -> bytes | Pending | None:
    """The response bytes to one query's bytes, without waiting for anything; `Pending` for a name to
    forward; None to stay silent (a response, or not even a header)."""
    try:
        query = dns.message.from_wire(data)
    except dns.message.ShortHeader:
        return None
    except dns.exception.DNSException:
        return _error(data, dns.rcode.FORMERR)
    if query.flags & dns.flags.QR:
        return None  # a response sent to us: answering it could loop two servers
    reply, outside = answer_query(index, query)
    wire_reply = _to_wire(query, reply, udp)
    return Pending(query, wire_reply, udp) if outside else wire_reply


class Responder:
    """`respond_local` with the responses of the index's current generation remembered.

    Keyed by the query's bytes after its ID (flags, question as spelled, EDNS) and the transport, a
    response is the same for the same key until the index changes; the index's `generation` (and
    `synced`) is part of the key's validity, so an answer is never older than the informers. A hit
    costs a dictionary lookup and copying the query's ID into the remembered response; dnspython
    built every byte of it. At most `max_entries` and `max_bytes` are kept (all dropped when full: the
    names asked in one generation of a cluster are few, and a client spelling names in random case
    or asking for huge answers over TCP only empties the cache, it cannot grow it)."""

    def __init__(self, index: records.Index, *, max_entries: int = 10000, max_bytes: int = 16 << 20) -> None:
        self.index = index
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._bytes = 0
        self._cache: dict[tuple[bytes, bool], bytes] = {}
        self._state: tuple[int, bool] = (index.generation, index.synced)
        self.hits = self.misses = 0

    def respond(self, data: bytes, *, udp: bool) -> bytes | Pending | None:
        state = (self.index.generation, self.index.synced)
        if state != self._state:
            self._clear()
            self._state = state
        key = (data[2:], udp)
        cached = self._cache.get(key)
        if cached is not None and len(data) >= 12:
            self.hits += 1
            return data[:2] + cached[2:]
        self.misses += 1
        found = respond_local(self.index, data, udp=udp)
        if isinstance(found, bytes) and len(data) >= 12:
            size = len(data) + len(found)
            if len(self._cache) >= self.max_entries or self._bytes + size > self.max_bytes:
                self._clear()
            self._cache[key] = found
            self._bytes += size
        return found

    def _clear(self) -> None:
        self._cache.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._cache)


async def forward(pending: Pending, upstream: Upstream | None) -> bytes:
    """The upstream's response to a pending query; its fallback without an upstream, SERVFAIL on failure."""
    if upstream is None:
        return pending.fallback
    try:
        response = await dns.asyncquery.udp(pending.query, upstream.host, timeout=upstream.timeout, port=upstream.port)
        if response.flags & dns.flags.TC and not pending.udp:
            response = await dns.asyncquery.tcp(pending.query, upstream.host, timeout=upstream.timeout,
                                                port=upstream.port)
    except (dns.exception.DNSException, OSError) as exc:
        log.warning("forwarding %s to %s:%d failed: %s", pending.query.question[0].name if pending.query.question
                    else "?", upstream.host, upstream.port, exc)
        failed = dns.message.make_response(pending.query)
        failed.set_rcode(dns.rcode.SERVFAIL)
        return _to_wire(pending.query, failed, pending.udp)
    return response.to_wire()


async def respond(index: records.Index, data: bytes, *, udp: bool, upstream: Upstream | None = None) -> bytes | None:
    """`respond_local`, forwarding what it leaves pending."""
    found = respond_local(index, data, udp=udp)
    if isinstance(found, Pending):
        return await forward(found, upstream)
    return found


def ready(host: str, port: int, zone: str = records.DEFAULT_ZONE, *, timeout: float = 1.0) -> bool:
    """Whether a server there answers from synced informers (CoreDNS's `ready`): `kube-system.svc.<zone>`
    is NOERROR once the namespaces are listed, SERVFAIL before. For `reconcile up` and `status`."""
    query = dns.message.make_query(f"kube-system.svc.{zone.strip('.')}.", "A")
    try:
        reply = dns.query.udp(query, host, port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return False
    return reply.rcode() == dns.rcode.NOERROR
