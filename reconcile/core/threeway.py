"""The three-way JSON merge patch of client-side apply and of chart upgrades (in core: both `cli/apply`
and `charting` use it).

Inputs: what was applied last time (`original`, from the annotation), what the file says
now (`modified`) and what the server holds (`current`). The patch deletes what the user
removed since last time, and sets what the file says where the server differs. Fields the
user never declared (server defaults, other writers) are left alone.

Lists are atomic in a merge patch. A list is sent whole when the user changed it since the
last apply, or when the server's list is not a superset of it item by item; a list the
server only enriched with defaults counts as unchanged, so re-applying is a no-op.
"""

from __future__ import annotations

from typing import Any

_MISSING = object()


def merge_patch(original: dict[str, Any] | None, modified: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """An RFC 7386 patch taking `current` to `modified`, removing what `original` had and `modified` dropped."""
    return _diff(original if isinstance(original, dict) else {}, modified, current)


def _diff(original: dict[str, Any], modified: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key in original:
        if key not in modified and key in current:
            patch[key] = None
    for key, want in modified.items():
        have = current.get(key, _MISSING)
        before = original.get(key, _MISSING)
        if isinstance(want, dict) and isinstance(have, dict):
            sub = _diff(before if isinstance(before, dict) else {}, want, have)
            if sub:
                patch[key] = sub
        elif isinstance(want, list) and isinstance(have, list):
            if (before is not _MISSING and before != want) or not contained(want, have):
                patch[key] = want
        elif have is _MISSING or not _equal(want, have):
            if want is None and have is _MISSING:
                continue
            patch[key] = want
    return patch


def contained(want: Any, have: Any) -> bool:
    """`want` is `have` minus fields only the server filled in (same list lengths and order)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and contained(v, have[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(
            contained(w, h) for w, h in zip(want, have, strict=True))
    return _equal(want, have)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b
