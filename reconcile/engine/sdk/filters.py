"""Label/annotation filters with kopf's markers: a value, `PRESENT`, `ABSENT`, or a callable."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any


class Marker(enum.Enum):
    """Special filter values: the key must be there (any value) or must not be there."""

    PRESENT = "PRESENT"
    ABSENT = "ABSENT"


PRESENT = Marker.PRESENT
ABSENT = Marker.ABSENT

FilterValue = str | Marker | Callable[[Any], bool] | None
Filter = Mapping[str, FilterValue]


def matches(actual: Mapping[str, str] | None, wanted: Filter | None) -> bool:
    """True if every key of `wanted` is satisfied by `actual` (labels or annotations)."""
    if not wanted:
        return True
    actual = actual or {}
    for key, value in wanted.items():
        if value is ABSENT:
            if key in actual:
                return False
        elif value is PRESENT:
            if key not in actual:
                return False
        elif callable(value):
            if not value(actual.get(key)):
                return False
        elif actual.get(key) != value:
            return False
    return True
