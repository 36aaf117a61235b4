"""In-memory indexes (`@rc.index`): each object contributes `{key: value}`; handlers see key -> values.

Maintained from the informer's events, so an index is as current as the cache it is built on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from reconcile.engine.sdk import background, invocation
from reconcile.engine.sdk import registry as registry_mod

log = logging.getLogger(__name__)

Key = tuple[str, str]


class Index(Mapping[Any, list[Any]]):
    """key -> the values every object contributed under that key (read-only for handlers)."""

    def __init__(self) -> None:
        # Invariant: _items[k][obj] exists iff object `obj` currently contributes k -> value.
        self._items: dict[Any, dict[Key, Any]] = {}
        self._by_object: dict[Key, list[Any]] = {}

    def __getitem__(self, key: Any) -> list[Any]:
        return list(self._items[key].values())

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def replace(self, obj: Key, contributions: Mapping[Any, Any]) -> None:
        self.remove(obj)
        for key, value in contributions.items():
            self._items.setdefault(key, {})[obj] = value
        if contributions:
            self._by_object[obj] = list(contributions)

    def remove(self, obj: Key) -> None:
        for key in self._by_object.pop(obj, ()):
            bucket = self._items.get(key)
            if bucket is not None:
                bucket.pop(obj, None)
                if not bucket:
                    del self._items[key]


class Indexer:
    """Feeds one `Index` from one index handler."""

    def __init__(self, handler: registry_mod.Handler, base_kwargs: Mapping[str, Any]) -> None:
        self.handler = handler
        self.index = Index()
        self._base = base_kwargs

    def update(self, key: Key, body: dict[str, Any]) -> None:
        kwargs = {**invocation.object_kwargs(body), **self._base, "param": self.handler.param,
                  "logger": invocation.object_logger(__name__, body)}
        if not background.wanted(self.handler, body, kwargs):
            self.index.remove(key)
            return
        try:
            result = self.handler.fn(**kwargs)
        except Exception:
            log.exception("index %r failed for %s/%s", self.handler.id, *key)
            return
        if result is None:
            self.index.remove(key)
        elif isinstance(result, Mapping):
            self.index.replace(key, result)
        else:
            self.index.replace(key, {None: result})

    def remove(self, key: Key) -> None:
        self.index.remove(key)
