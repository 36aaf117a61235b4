"""Resource quantities: exact decimal parsing and the CPU/byte conversions."""

from __future__ import annotations

import decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.core import errors, quantities


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2", "2"),
        ("500m", "0.5"),
        ("1.5k", "1500"),
        ("1e3", "1000"),
        ("1E-3", "0.001"),
        ("1Ki", "1024"),
        ("1Gi", str(2**30)),
        ("100n", "0.0000001"),
        ("+3", "3"),
        (".5", "0.5"),
        ("-1M", "-1000000"),
    ],
)
def test_parse_quantity(text: str, value: str) -> None:
    assert quantities.parse_quantity(text) == decimal.Decimal(value)


def test_cpu_and_bytes() -> None:
    assert quantities.parse_cpu_millis("0.1") == 100
    assert quantities.parse_cpu_millis("250m") == 250
    assert quantities.parse_cpu_millis(2) == 2000
    assert quantities.parse_cpu_millis("1u") == 1  # rounds up like MilliValue
    assert quantities.parse_bytes("1Gi") == 1073741824
    assert quantities.parse_bytes("128Mi") == 128 * 2**20
    assert quantities.parse_bytes("1e3") == 1000
    assert quantities.parse_bytes(512) == 512
    assert quantities.format_cpu_millis(2000) == "2" and quantities.format_cpu_millis(250) == "250m"
    assert quantities.format_bytes(2**30) == "1Gi" and quantities.format_bytes(1000) == "1000"


@pytest.mark.parametrize("text", ["", "abc", "1Gb", "1.2.3", "Mi", "1 Gi", "1ki", "--1"])
def test_bad_quantities(text: str) -> None:
    with pytest.raises(quantities.InvalidQuantity) as info:
        quantities.parse_quantity(text)
    assert isinstance(info.value, errors.BadRequest) and isinstance(info.value, ValueError)
    assert info.value.message.startswith("quantities must match the regular expression")


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**6))
def test_format_parse_round_trip(n: int) -> None:
    assert quantities.parse_cpu_millis(quantities.format_cpu_millis(n)) == n
    assert quantities.parse_bytes(quantities.format_bytes(n)) == n
