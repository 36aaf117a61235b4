"""The requestedAt token (unit): sub-second and unique, while condition timestamps stay in seconds."""

from __future__ import annotations

import datetime
import re

from hypothesis import given
from hypothesis import strategies as st

from reconcile.core import webhookreceiver
from reconcile.gitops import syncs

_NANO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")


def test_two_requests_in_the_same_second_get_different_tokens() -> None:
    # 2200-01-01T00:00:00Z: later than any reading the other tests give (the tokens only go forward)
    second = 7_258_118_400 * 1_000_000_000
    first = webhookreceiver.requested_at(lambda: second + 1_000)
    later = webhookreceiver.requested_at(lambda: second + 2_000)
    assert first != later
    assert first[:19] == later[:19] == "2200-01-01T00:00:00"
    assert _NANO.fullmatch(first) and _NANO.fullmatch(later)
    assert datetime.datetime.fromisoformat(later.replace("Z", "+00:00")) > \
        datetime.datetime.fromisoformat(first.replace("Z", "+00:00"))


@given(st.lists(st.integers(min_value=0, max_value=4_102_444_800 * 10**9), min_size=2, max_size=30))
def test_tokens_are_unique_and_increasing_whatever_the_clock_does(readings: list[int]) -> None:
    """A clock that stands still or steps back (NTP) still gives a new, later-sorting token each time."""
    tokens = [webhookreceiver.requested_at(lambda r=r: r) for r in readings]
    assert len(set(tokens)) == len(tokens)
    assert tokens == sorted(tokens)


def test_the_real_clock_and_the_condition_timestamp() -> None:
    tokens = [webhookreceiver.requested_at() for _ in range(50)]
    assert len(set(tokens)) == 50 and all(_NANO.fullmatch(t) for t in tokens)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", syncs.now())  # lastTransitionTime: seconds
