"""Kubernetes resource quantities (`500m`, `1Gi`, `2`, `1e3`), for the scheduler and node agent.

Exact decimal arithmetic, because `0.1` CPUs must be 100 millicores, not 99.
"""

from __future__ import annotations

import decimal
import re

from reconcile.core import errors

_QUANTITY_RE = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)
_FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_EXPONENT = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


class InvalidQuantity(errors.BadRequest, ValueError):
    """A malformed quantity: a 400 on the wire, a ValueError to plain Python callers."""


def parse_quantity(text: str | int | float) -> decimal.Decimal:
    """The exact value of a quantity string (or a bare number)."""
    if isinstance(text, bool):
        raise InvalidQuantity(_FORMAT_ERROR)
    if isinstance(text, int | float):
        return decimal.Decimal(str(text))
    match = _QUANTITY_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InvalidQuantity(_FORMAT_ERROR)
    number = decimal.Decimal(match["number"])
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix[:1] in ("e", "E"):
        return number.scaleb(int(suffix[1:]))
    return number.scaleb(_DECIMAL_EXPONENT[suffix])


def _ceil(value: decimal.Decimal) -> int:
    return int(value.to_integral_value(rounding=decimal.ROUND_CEILING))


def parse_cpu_millis(value: str | int | float) -> int:
    """CPU in millicores, rounded up like Quantity.MilliValue (`0.5` -> 500, `100m` -> 100)."""
    return _ceil(parse_quantity(value) * 1000)


def parse_bytes(value: str | int | float) -> int:
    """Memory/storage in bytes, rounded up like Quantity.Value (`1Gi` -> 1073741824)."""
    return _ceil(parse_quantity(value))


def format_cpu_millis(millis: int) -> str:
    """The canonical CPU string: whole cores as `2`, otherwise `250m`."""
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_bytes(count: int) -> str:
    """The largest exact binary suffix: 1073741824 -> `1Gi`, 1000 -> `1000`."""
    for suffix, size in sorted(_BINARY.items(), key=lambda kv: -kv[1]):
        if count and count % size == 0:
            return f"{count // size}{suffix}"
    return str(count)
