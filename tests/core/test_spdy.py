"""SPDY/3.1 framing: the dictionary is the draft's, frames round-trip split anywhere, header
blocks share one compression context per direction, garbage is refused."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.core import spdy


def test_dictionary_is_spdy3s():
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2


def test_first_header_block_starts_as_kubectls():
    wire = spdy.Encoder().syn_stream(1, {"streamtype": "error", "port": "80", "requestid": "0"})
    assert wire[:4] == bytes.fromhex("80030001")
    assert wire[18:24] == bytes.fromhex("78f9e3c6a7c2")  # zlib header + the dictionary's id, captured from kubectl


headers = st.dictionaries(st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12),
                          st.text(max_size=30), max_size=4)


@given(st.lists(st.one_of(
    st.tuples(st.just("syn"), st.integers(1, 2**31 - 1), headers),
    st.tuples(st.just("data"), st.integers(1, 2**31 - 1), st.binary(max_size=200)),
    st.tuples(st.just("ping"), st.integers(0, 2**32 - 1), st.just(None)),
    st.tuples(st.just("rst"), st.integers(1, 2**31 - 1), st.just(None)),
), max_size=10), st.integers(1, 50))
def test_frames_round_trip_split_anywhere(items, cut):
    encoder = spdy.Encoder()
    wire = b""
    for kind, number, value in items:
        if kind == "syn":
            wire += encoder.syn_stream(number, value)
        elif kind == "data":
            wire += encoder.data(number, value, fin=len(value) % 2 == 1)
        elif kind == "ping":
            wire += encoder.ping(number)
        else:
            wire += encoder.rst_stream(number, spdy.CANCEL)
    parser = spdy.Parser()
    frames = []
    for i in range(0, len(wire), cut):
        frames += parser.feed(wire[i:i + cut])
    assert len(frames) == len(items)
    for frame, (kind, number, value) in zip(frames, items, strict=True):
        if kind == "syn":
            assert (frame.type, frame.stream_id, frame.headers) == (spdy.SYN_STREAM, number,
                                                                   {k.lower(): v for k, v in value.items()})
        elif kind == "data":
            assert (frame.type, frame.stream_id, frame.data, frame.fin) == (0, number, value, len(value) % 2 == 1)
        elif kind == "ping":
            assert (frame.type, frame.ping_id) == (spdy.PING, number)
        else:
            assert (frame.type, frame.stream_id, frame.status) == (spdy.RST_STREAM, number, spdy.CANCEL)


def test_garbage_is_a_protocol_error():
    with pytest.raises(spdy.ProtocolError):
        spdy.Parser().feed(bytes.fromhex("80020001 00000004 00000001"))  # SPDY/2
    with pytest.raises(spdy.ProtocolError):  # a header block not compressed with the dictionary
        spdy.Parser().feed(bytes.fromhex("80030001 0000000e 00000001 00000000 0000") + b"\x78\x9c\x00\x00")
    deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, spdy.DICTIONARY)
    bomb = deflate.compress(b"\0" * (4 << 20)) + deflate.flush(zlib.Z_SYNC_FLUSH)  # 4 MiB from a few KiB
    frame = spdy.Encoder._control(spdy.SYN_REPLY, 0, b"\0\0\0\1" + bomb)
    with pytest.raises(spdy.ProtocolError, match="too large"):
        spdy.Parser().feed(frame)
