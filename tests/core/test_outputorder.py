"""The relay's output order (`outputorder`): stderr never waits behind held stdout, and neither
stream is reordered within itself or loses a byte."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconcile.core import outputorder as oo

frames = st.lists(st.tuples(st.sampled_from([oo.STDOUT, oo.STDERR]), st.binary(min_size=0, max_size=8)), max_size=30)


def _stream(sent: list[oo.Frame], channel: int) -> bytes:
    return b"".join(p for c, p in sent if c == channel)


@given(st.lists(frames, max_size=8), st.lists(st.booleans(), max_size=8))
def test_every_byte_once_in_each_streams_own_order(batches, quiet):
    order = oo.StderrFirst()
    sent: list[oo.Frame] = []
    for i, batch in enumerate(batches):
        sent += order.feed(batch)
        if i < len(quiet) and quiet[i]:  # a quiet spell while the command runs
            sent += order.release()
    sent += order.release()
    received = [f for batch in batches for f in batch]
    for channel in (oo.STDOUT, oo.STDERR):
        assert _stream(sent, channel) == _stream(received, channel)
    assert all(payload for _, payload in sent)  # empty frames carry nothing and are not sent
    assert not order.holding


@given(frames)
def test_stderr_is_sent_at_once_and_the_last_stdout_is_held(batch):
    order = oo.StderrFirst()
    sent = order.feed(batch)
    assert _stream(sent, oo.STDERR) == _stream(batch, oo.STDERR)
    stdout = [p for c, p in batch if c == oo.STDOUT and p]
    assert order.holding == bool(stdout)
    assert order.release() == ([(oo.STDOUT, stdout[-1])] if stdout else [])


def test_tars_complaint_goes_before_an_end_of_archive_docker_delivered_first():
    order = oo.StderrFirst()
    end = bytes(1024)
    sent = order.feed([(oo.STDOUT, end)])
    sent += order.feed([(oo.STDERR, b"tar: /x: No such file or directory\n")])
    sent += order.release()  # the stream ended
    assert sent == [(oo.STDERR, b"tar: /x: No such file or directory\n"), (oo.STDOUT, end)]


def test_more_stdout_releases_the_held_frame_first():
    order = oo.StderrFirst()
    assert order.feed([(oo.STDOUT, b"a")]) == []
    assert order.feed([(oo.STDOUT, b"b"), (oo.STDOUT, b"c")]) == [(oo.STDOUT, b"a"), (oo.STDOUT, b"b")]
    assert order.release() == [(oo.STDOUT, b"c")]
    assert order.release() == []
