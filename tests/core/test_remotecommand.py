"""The remote-command channel protocol's pure parts: option parsing, negotiation, the resize
stream, Docker's multiplexed stream."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from reconcile.core import remotecommand as rc


def test_bool_parsing_is_kube_apiservers():
    assert [rc.query_bool(v) for v in (None, "0", "false", "FALSE")] == [False] * 4
    assert [rc.query_bool(v) for v in ("", "1", "true", "yes", "x")] == [True] * 5


def test_options_from_kubectls_query():
    options = rc.Options.parse(QueryParams("command=sh&command=-c&command=exit+3&container=main&stderr=true"
                                           "&stdout=true"), exec=True)
    assert options == rc.Options(stdin=False, stdout=True, stderr=True, tty=False, command=("sh", "-c", "exit 3"))
    assert rc.Options.parse(QueryParams(options.query()), exec=True) == options


def test_tty_drops_stderr_and_no_stream_is_refused():
    options = rc.Options.parse(QueryParams("command=sh&stdin=true&stdout=true&stderr=true&tty=true"), exec=True)
    assert options.tty and not options.stderr
    with pytest.raises(ValueError, match="at least 1 of stdin, stdout, stderr"):
        rc.Options.parse(QueryParams("command=true"), exec=True)
    with pytest.raises(ValueError, match="at least 1 command"):
        rc.Options.parse(QueryParams("stdout=true"), exec=True)
    assert rc.Options.parse(QueryParams("stdout=true"), exec=False).command == ()


def test_negotiation_follows_the_clients_order():
    assert rc.negotiate(["v5.channel.k8s.io"]) == rc.V5
    assert rc.negotiate(["v4.channel.k8s.io", "v5.channel.k8s.io"]) == rc.V4
    assert rc.negotiate(["SPDY/3.1+portforward.k8s.io", "channel.k8s.io"]) is None


def test_exit_status_shape():
    assert rc.exit_status(0) == {"metadata": {}, "status": "Success"}
    status = rc.exit_status(3)
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"][0] == {"reason": "ExitCode", "message": "3"}
    assert rc.split(rc.status_message(status))[0] == rc.ERROR


def test_split_accepts_text_and_binary():
    assert rc.split(b"\x00abc") == (0, b"abc")
    assert rc.split("\x00abc") == (0, b"abc")  # the Python client writes str as text frames
    assert rc.split(b"") is None


@given(st.lists(st.tuples(st.integers(1, 500), st.integers(1, 500)), max_size=5), st.integers(1, 40))
def test_resize_stream_split_anywhere(sizes, cut):
    text = "".join(f'{{"Width":{w},"Height":{h}}}\n' for w, h in sizes).encode()
    decoder = rc.ResizeDecoder()
    got = []
    for i in range(0, len(text), cut):
        got += decoder.feed(text[i:i + cut])
    assert got == sizes


def test_resize_garbage_is_dropped():
    decoder = rc.ResizeDecoder()
    assert decoder.feed(b'{"Width":-1,"Height":5}{"Width":"x"}[1]{"Width":80,"Height":24}') == [(80, 24)]
    assert decoder.feed(b"{" * 5000) == []
    assert decoder.feed(b'{"Width":1,"Height":2}') == [(1, 2)]


@given(st.lists(st.tuples(st.sampled_from([1, 2]), st.binary(max_size=50)), max_size=8), st.integers(1, 30))
def test_docker_demux_split_anywhere(chunks, cut):
    stream = b"".join(struct.pack(">BxxxI", ch, len(p)) + p for ch, p in chunks)
    demux = rc.DockerDemuxer()
    got = []
    for i in range(0, len(stream), cut):
        got += demux.feed(stream[i:i + cut])
    assert got == [(ch, p) for ch, p in chunks if p]


def test_negotiation_of_the_api_servers_protocols():
    assert rc.negotiate([rc.V4_BASE64]) is None  # the agent speaks binary only
    assert rc.negotiate([rc.V4_BASE64], rc.API_SUPPORTED) == rc.V4_BASE64
    assert rc.negotiate(["base64.channel.k8s.io", rc.V5], rc.API_SUPPORTED) == rc.BASE64
    assert rc.negotiate(["channel.k8s.io"], rc.API_SUPPORTED) is None


def test_base64_framing_is_wsstreams():
    # wsstream's own example: "foo\n" on stdin is "0Zm9vCg==", "\n" on stdout is "1Cg=="
    assert rc.decode_base64("0Zm9vCg==") == (rc.STDIN, b"foo\n")
    assert rc.encode_base64(rc.STDOUT, b"\n") == "1Cg=="
    assert rc.encode_base64(rc.STDOUT, b"") == "1"  # the readiness message
    assert rc.decode_base64(b"4eyJXaWR0aCI6ODB9") == (rc.RESIZE, b'{"Width":80}')
    assert rc.decode_base64("") is None


@pytest.mark.parametrize("bad", ["xZm9v", "\xff", "1Zm9", "1Zm9v!!==", "1Zm9v\n"])
def test_base64_malformed_messages_are_refused(bad):
    with pytest.raises(ValueError):
        rc.decode_base64(bad)


@given(st.integers(0, 4), st.binary(max_size=300))
def test_base64_round_trip_both_ways(channel, payload):
    text = rc.encode_base64(channel, payload)
    assert text.isascii() and text[0] == str(channel)
    assert rc.decode_base64(text) == rc.decode_base64(text.encode()) == (channel, payload)
    assert rc.from_client(rc.V4_BASE64, text) == rc.message(channel, payload)
    assert rc.to_client(rc.V4_BASE64, rc.message(channel, payload)) == text
    assert rc.to_client(rc.V5, rc.message(channel, payload)) == rc.message(channel, payload)


def test_the_error_channel_per_protocol():
    failure = rc.status_message(rc.exit_status(3))
    success = rc.status_message(rc.exit_status(0))
    assert rc.decode_base64(rc.to_client(rc.V4_BASE64, failure)) == (rc.ERROR, failure[1:])  # v4: the Status JSON
    assert rc.to_client(rc.BASE64, success) is None  # pre-v4: nothing on success, the message on failure
    assert rc.decode_base64(rc.to_client(rc.BASE64, failure)) == (
        rc.ERROR, b"command terminated with non-zero exit code: exit status 3")
    assert rc.from_client(rc.V5, "\x00hi") == b"\x00hi"  # the Python client's text writes, as bytes
