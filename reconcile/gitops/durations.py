"""Go durations (`5m`, `1m30s`, `500ms`), the form Flux's `interval`, `retryInterval` and `timeout` take.

The Sync CRD's pattern admits only these, so a value that reaches `parse` is well formed; `parse`
still refuses anything else (a Sync written before the pattern, or read from elsewhere).
"""

from __future__ import annotations

import re

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse(text: str) -> float:
    """Seconds of a Go duration; ValueError for anything else (empty, negative, unknown units)."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"invalid duration {text!r}")
    seconds, position = 0.0, 0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise ValueError(f"invalid duration {text!r}")
    return seconds


def parse_or(text: object, default: float) -> float:
    """`parse(text)`, or `default` when unset or malformed."""
    if not isinstance(text, str) or not text:
        return default
    try:
        return parse(text)
    except ValueError:
        return default
