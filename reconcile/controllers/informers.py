"""One informer per resource, shared by every controller of the controller-manager.

Pods are cached once even though the ReplicaSet controller and the garbage collector both
read them: memory grows with objects, not with controllers. Every store also gets a `uid`
index, so the garbage collector can answer "does this owner still exist?" from memory.
Every informer reports the objects it skips (they do not decode) to the one `reporter`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from reconcile.client import aio, informer
from reconcile.engine import badobjects

INDEX_UID = "uid"


def _by_uid(obj: dict[str, Any]) -> Iterable[str]:
    uid = (obj.get("metadata") or {}).get("uid")
    return [uid] if uid else []


class SharedInformers:
    """Informers by (api_version, plural); created on first request, started by `start`."""

    def __init__(self, client: aio.AsyncClient, *, reporter: badobjects.Reporter | None = None) -> None:
        self.client = client
        self.reporter = reporter
        # Invariant: one informer per (api_version, plural); an informer in `_started` runs.
        self._informers: dict[tuple[str, str], informer.Informer] = {}
        self._started: set[tuple[str, str]] = set()

    def get(self, api_version: str, plural: str) -> informer.Informer:
        key = (api_version, plural)
        found = self._informers.get(key)
        if found is None:
            indexers = dict(informer.DEFAULT_INDEXERS)
            indexers[INDEX_UID] = _by_uid
            found = informer.Informer(self.client, api_version, plural, indexers=indexers)
            if self.reporter is not None:
                self.reporter.watch(found)
            self._informers[key] = found
        return found

    def known(self) -> dict[tuple[str, str], informer.Informer]:
        return dict(self._informers)

    async def start(self) -> None:
        """Start every informer not yet running (call again after adding some)."""
        for key, inf in list(self._informers.items()):
            if key not in self._started:
                self._started.add(key)
                await inf.start()

    async def wait_synced(self, *, timeout: float = 120.0) -> None:
        await asyncio.gather(*(inf.wait_synced(timeout=timeout) for inf in self._informers.values()))

    async def drop(self, api_version: str, plural: str) -> None:
        """Stop and forget an informer (its resource is no longer served)."""
        inf = self._informers.pop((api_version, plural), None)
        self._started.discard((api_version, plural))
        if inf is not None:
            await inf.stop()

    async def stop(self) -> None:
        informers = list(self._informers.values())
        self._informers.clear()
        self._started.clear()
        await asyncio.gather(*(inf.stop() for inf in informers), return_exceptions=True)
