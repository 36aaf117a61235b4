"""What an EndpointSlice writer waits to see in its cache after its own writes (upstream's
EndpointSliceTracker).

A controller that just replaced a slice must not plan again from the old copy its informer still
holds, or it would write twice (or create a duplicate). Each written slice is remembered by name
with the resourceVersion the API answered (None for a deletion) until the cache shows it; a write
not shown within `ttl` seconds is no longer waited for, so a lost event only delays.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Any

DEFAULT_TTL = 10.0


class SliceTracker:
    """Per controller key: slice name -> (resourceVersion written or None if deleted, when)."""

    def __init__(self, store: Any, *, ttl: float = DEFAULT_TTL) -> None:
        self.store = store  # the slices informer's store: get(namespace, name)
        self.ttl = ttl
        self._written: dict[Hashable, dict[str, tuple[str | None, float]]] = {}

    def written(self, key: Hashable, name: str, version: str | None) -> None:
        """Remember a create or replace (`version`), or a delete (None), of slice `name`."""
        self._written.setdefault(key, {})[name] = (version, time.monotonic())

    def forget(self, key: Hashable) -> None:
        self._written.pop(key, None)

    def current(self, key: Hashable, namespace: str) -> bool:
        """True when the cache shows every write made for `key` (or has stopped being waited for)."""
        written = self._written.get(key)
        if not written:
            return True
        now = time.monotonic()
        for name, (version, when) in list(written.items()):
            cached = self.store.get(namespace, name)
            seen = (cached is None) if version is None else (
                cached is not None and int((cached.get("metadata") or {}).get("resourceVersion") or 0) >= int(version))
            if seen or now - when > self.ttl:
                del written[name]
        if written:
            return False
        self._written.pop(key, None)
        return True
