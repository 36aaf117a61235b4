"""Go durations as Flux's interval, retryInterval and timeout take them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconcile.gitops import durations


@pytest.mark.parametrize(("text", "seconds"), [("5m", 300.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0),
                                               ("1.5s", 1.5), ("2h0m1s", 7201.0)])
def test_parses_go_durations(text: str, seconds: float) -> None:
    assert durations.parse(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "-1s", "1d", "1m 2s", "s", "1s5", "1e3s", " 1s"])
def test_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        durations.parse(text)
    assert durations.parse_or(text, 7.0) == 7.0


@given(st.text(max_size=20))
def test_never_raises_anything_but_value_error(text: str) -> None:
    try:
        assert durations.parse(text) >= 0
    except ValueError:
        pass
