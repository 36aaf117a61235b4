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
    if suffix[:1] in ("e", "E") and len(suffix) > 1:  # an exponent; "E" alone is exa
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


# --- Quantity: a value with upstream's serialization format ---------------------------------------
#
# Quota status, LimitRange messages and quota errors print quantities the way apimachinery's
# `Quantity.String()` does: the format a quantity was written in (decimal SI, binary SI or a decimal
# exponent) is kept through arithmetic, and the canonical text is the largest suffix whose
# mantissa stays an integer (`1500m`, `1536Mi`, `1200k`, `1e3`). Values finer than a nano unit are
# rounded up, as upstream's parser does.

DECIMAL_SI, BINARY_SI, DECIMAL_EXPONENT = "DecimalSI", "BinarySI", "DecimalExponent"
_NANO = decimal.Decimal("1e-9")
_WIDE = decimal.Context(prec=80)  # wide enough that no quantity is ever rounded by the context
_DECIMAL_SUFFIX = {exponent: suffix for suffix, exponent in _DECIMAL_EXPONENT.items()}
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


class Quantity:
    """An exact quantity and the format it prints in; compared and hashed by value alone."""

    __slots__ = ("value", "format")

    def __init__(self, value: decimal.Decimal | int | str = 0, format: str = DECIMAL_SI) -> None:
        self.value = decimal.Decimal(value)
        self.format = format

    @classmethod
    def parse(cls, text: str | int | float | Quantity) -> Quantity:
        """`resource.ParseQuantity`: the value (rounded up to nano units) and the format of its suffix."""
        if isinstance(text, Quantity):
            return text
        value = parse_quantity(text)
        if value.as_tuple().exponent < -9:  # type: ignore[operator]
            value = value.quantize(_NANO, rounding=decimal.ROUND_CEILING, context=_WIDE)
        suffix = ""
        if isinstance(text, str):
            match = _QUANTITY_RE.fullmatch(text.strip())
            suffix = (match["suffix"] or "") if match else ""
        if suffix in _BINARY:
            return cls(value, BINARY_SI)
        if suffix[:1] in ("e", "E") and len(suffix) > 1:
            return cls(value, DECIMAL_EXPONENT)
        return cls(value, DECIMAL_SI)

    # arithmetic keeps the receiver's format, unless the receiver is zero (as upstream's Add/Sub)
    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(_WIDE.add(self.value, other.value), other.format if self.value == 0 else self.format)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(_WIDE.subtract(self.value, other.value), other.format if self.value == 0 else self.format)

    def __neg__(self) -> Quantity:
        return Quantity(-self.value, self.format)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __lt__(self, other: Quantity) -> bool:
        return self.value < other.value

    def __le__(self, other: Quantity) -> bool:
        return self.value <= other.value

    def __gt__(self, other: Quantity) -> bool:
        return self.value > other.value

    def __ge__(self, other: Quantity) -> bool:
        return self.value >= other.value

    def __bool__(self) -> bool:
        return self.value != 0

    def __repr__(self) -> str:
        return f"Quantity({str(self)!r})"

    def int_value(self) -> int:
        """`Quantity.Value()`: rounded up to an integer."""
        return _ceil(self.value)

    def milli_value(self) -> int:
        """`Quantity.MilliValue()`: thousandths, rounded up."""
        return _ceil(self.value * 1000)

    def __str__(self) -> str:
        return canonical(self.value, self.format)


def canonical(value: decimal.Decimal, format: str = DECIMAL_SI) -> str:
    """`Quantity.String()` for `value` written in `format`."""
    if value == 0:
        return "0"
    if format == BINARY_SI and (-1024 < value < 1024 or value != value.to_integral_value()):
        format = DECIMAL_SI  # small or fractional binary values print in decimal, never rounded
    if format == BINARY_SI:
        mantissa, power = int(value), 0
        while power < len(_BINARY_SUFFIXES) - 1 and mantissa % 1024 == 0:
            mantissa //= 1024
            power += 1
        return f"{mantissa}{_BINARY_SUFFIXES[power]}"
    sign, digits, exponent = value.normalize(context=_WIDE).as_tuple()
    mantissa = int("".join(map(str, digits)) or "0")
    shift = int(exponent) % 3  # the exponent goes down to a multiple of 3, the mantissa grows
    mantissa, exponent = mantissa * 10**shift, int(exponent) - shift
    number = f"{'-' if sign else ''}{mantissa}"
    if format == DECIMAL_SI and exponent in _DECIMAL_SUFFIX:
        return number + _DECIMAL_SUFFIX[exponent]
    return number if exponent == 0 else f"{number}e{exponent}"


ZERO = Quantity(0)
