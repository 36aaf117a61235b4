"""Messages in and out through dnspython: what a client library reads back from `respond`."""

from __future__ import annotations

import asyncio

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.dns import records, wire
from tests.dns import fixtures as f

Z = "cluster.local"


@pytest.fixture
def idx() -> records.Index:
    found = records.Index()
    found.synced = True
    found.put_namespace(f.namespace("default"))
    found.put_service(f.service("web"))
    found.put_service(f.service("db", cluster_ip="None"))
    found.put_slice(f.endpoint_slice("db", [f.endpoint(f"10.1.{i // 250}.{i % 250 + 1}") for i in range(300)]))
    return found


def ask(index: records.Index, name: str, qtype: str = "A", *, udp: bool = True, **kwargs) -> dns.message.Message:
    query = dns.message.make_query(name, qtype, **kwargs)
    data = asyncio.run(wire.respond(index, query.to_wire(), udp=udp))
    assert data is not None
    reply = dns.message.from_wire(data)
    assert reply.id == query.id
    return reply


def test_a_record_is_authoritative(idx: records.Index) -> None:
    reply = ask(idx, f"web.default.svc.{Z}")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert [rd.address for rd in reply.answer[0]] == ["10.96.0.20"] and reply.answer[0].ttl == 5


def test_nxdomain_carries_the_soa(idx: records.Index) -> None:
    reply = ask(idx, f"nope.default.svc.{Z}")
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.authority[0].rdtype == dns.rdatatype.SOA and reply.authority[0][0].minimum == 5


def test_outside_names_are_refused_without_an_upstream(idx: records.Index) -> None:
    reply = ask(idx, "example.com")
    assert reply.rcode() == dns.rcode.REFUSED and not reply.answer


def test_a_large_answer_is_truncated_over_udp_and_whole_over_tcp(idx: records.Index) -> None:
    udp = ask(idx, f"db.default.svc.{Z}")
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = ask(idx, f"db.default.svc.{Z}", udp=False)
    assert len(tcp.answer[0]) == 300
    edns = ask(idx, f"db.default.svc.{Z}", use_edns=0, payload=4096)
    assert edns.flags & dns.flags.TC  # 300 A records do not fit 4096 bytes either


def test_srv_and_additional(idx: records.Index) -> None:
    reply = ask(idx, f"_http._tcp.web.default.svc.{Z}", "SRV")
    srv = reply.answer[0][0]
    assert (srv.priority, srv.weight, srv.port, srv.target.to_text()) == (0, 100, 80, f"web.default.svc.{Z}.")
    assert reply.additional[0][0].address == "10.96.0.20"


def test_txt_version(idx: records.Index) -> None:
    reply = ask(idx, f"dns-version.{Z}", "TXT")
    assert reply.answer[0][0].strings == (b"1.1.0",)


def test_non_query_opcodes_and_several_questions() -> None:
    idx = records.Index()
    query = dns.message.make_query(f"web.default.svc.{Z}", "A")
    query.set_opcode(dns.opcode.NOTIFY)
    reply = dns.message.from_wire(asyncio.run(wire.respond(idx, query.to_wire(), udp=True)))
    assert reply.rcode() == dns.rcode.NOTIMP
    two = dns.message.make_query(f"a.default.svc.{Z}", "A")
    two.question.append(dns.message.make_query(f"b.default.svc.{Z}", "A").question[0])
    reply = dns.message.from_wire(asyncio.run(wire.respond(idx, two.to_wire(), udp=True)))
    assert reply.rcode() == dns.rcode.FORMERR


def test_responses_and_short_packets_are_not_answered(idx: records.Index) -> None:
    response = dns.message.make_response(dns.message.make_query(f"web.default.svc.{Z}", "A"))
    assert asyncio.run(wire.respond(idx, response.to_wire(), udp=True)) is None
    assert asyncio.run(wire.respond(idx, b"\x00\x01", udp=True)) is None


def test_an_external_name_that_is_no_dns_name_is_servfail_not_a_crash(idx: records.Index) -> None:
    idx.put_service(f.service("bad", cluster_ip=None, type="ExternalName", externalName="a" * 70 + ".com"))
    assert ask(idx, f"bad.default.svc.{Z}").rcode() == dns.rcode.SERVFAIL


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_garbage_gets_formerr_or_silence(data: bytes) -> None:
    idx = records.Index()
    out = asyncio.run(wire.respond(idx, data, udp=True))
    if out is not None:
        reply = dns.message.from_wire(out)
        assert reply.flags & dns.flags.QR


def test_the_responder_answers_as_respond_local_and_forgets_on_every_change(idx: records.Index) -> None:
    responder = wire.Responder(idx)
    query = dns.message.make_query(f"web.default.svc.{Z}", "A")
    first = responder.respond(query.to_wire(), udp=True)
    again = dns.message.make_query(f"web.default.svc.{Z}", "A")  # another ID, same question
    second = responder.respond(again.to_wire(), udp=True)
    assert responder.hits == 1 and dns.message.from_wire(second).id == again.id
    assert second[2:] == first[2:] == wire.respond_local(idx, again.to_wire(), udp=True)[2:]
    idx.put_service(f.service("web", cluster_ip="10.96.0.99"))  # the answer changes: nothing stale is served
    changed = dns.message.from_wire(responder.respond(again.to_wire(), udp=True))
    assert [rd.address for rd in changed.answer[0]] == ["10.96.0.99"]
    idx.synced = False
    assert dns.message.from_wire(responder.respond(
        dns.message.make_query(f"nope.default.svc.{Z}", "A").to_wire(), udp=True)).rcode() == dns.rcode.SERVFAIL


def test_the_responder_cache_stays_bounded(idx: records.Index) -> None:
    responder = wire.Responder(idx, max_entries=50, max_bytes=20_000)
    for i in range(500):  # distinct spellings, as a client randomising case would send
        name = "".join(c.upper() if (i >> n) & 1 else c for n, c in enumerate("web.default"))
        responder.respond(dns.message.make_query(f"{name}.svc.{Z}", "A").to_wire(), udp=False)
        assert len(responder) <= 50 and responder._bytes <= 20_000
    big = dns.message.make_query(f"db.default.svc.{Z}", "A").to_wire()  # 300 addresses over TCP
    responder.respond(big, udp=False)
    assert responder._bytes <= 20_000 or len(responder) == 1
