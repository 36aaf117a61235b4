"""The exec stream format (`core/execstream.py`): frames survive any cut, statuses carry exit codes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.core import errors, execstream

frames_strategy = st.lists(st.tuples(st.sampled_from([execstream.STDOUT, execstream.STDERR]),
                                     st.binary(max_size=300)), max_size=12)


@given(frames_strategy, st.lists(st.integers(min_value=0, max_value=4000), max_size=10))
def test_frames_come_back_whole_however_the_bytes_are_cut(frames, cuts):
    data = b"".join(execstream.frame(channel, payload) for channel, payload in frames)
    decoder = execstream.Decoder()
    decoded: list[tuple[int, bytes]] = []
    start = 0
    for cut in sorted(min(c, len(data)) for c in cuts) + [len(data)]:
        decoded += decoder.feed(data[start:cut])
        start = cut
    assert decoded == frames
    assert not decoder.partial


def test_a_frame_cut_short_is_partial():
    decoder = execstream.Decoder()
    whole = execstream.frame(execstream.STDOUT, b"hello")
    assert decoder.feed(whole[:-1]) == [] and decoder.partial
    assert decoder.feed(whole[-1:]) == [(execstream.STDOUT, b"hello")] and not decoder.partial


@given(st.integers(min_value=0, max_value=255))
def test_exit_codes_round_trip_through_the_status_frame(code):
    [(channel, payload)] = execstream.Decoder().feed(execstream.status_frame(execstream.exit_status(code)))
    status = json.loads(payload)
    assert channel == execstream.STATUS and execstream.exit_code(status) == code
    assert status["status"] == ("Success" if code == 0 else "Failure")


def test_a_non_zero_exit_is_reported_as_the_kubelet_does():
    status = execstream.exit_status(3)
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


def test_an_error_status_raises_its_error():
    [(_, payload)] = execstream.Decoder().feed(execstream.error_frame(errors.ServiceUnavailable("agent gone")))
    with pytest.raises(errors.ServiceUnavailable, match="agent gone"):
        execstream.exit_code(json.loads(payload))


def test_bytes_that_are_not_frames_are_refused():
    with pytest.raises(ValueError, match="not an exec stream"):
        execstream.Decoder().feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ValueError):
        execstream.frame(9, b"")
