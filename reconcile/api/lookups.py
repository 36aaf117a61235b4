"""What admission plugins read and write besides the request's object, over the API server's own
caches and storage (the plugins take these as plain callables, so they are testable alone).

Reads come from the watch caches. A namespace with nothing cached for a resource is looked up once
more with a consistent read (an object created a moment ago may not have reached the cache), and
that answer is remembered for a while: upstream's "live lookup" of LimitRanges and quotas, which
keeps every create in a namespace without quotas from costing an etcd round trip.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from reconcile.api import authn, listing, registry, rest
from reconcile.core import errors

LIVE_LOOKUP_TTL = 30.0  # seconds an empty answer of the consistent read is reused (upstream's liveTTL)


class NamespacedReader:
    """The objects of one resource in a namespace. They are the caches' own: never change one."""

    def __init__(self, api: rest.Rest, group: str, version: str, plural: str, *, ttl: float = LIVE_LOOKUP_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api, self.group, self.version, self.plural = api, group, version, plural
        self.ttl = ttl
        self.clock = clock
        self._live: dict[str, tuple[float, list[dict[str, Any]]]] = {}  # namespace -> (expiry, objects)

    def resource(self) -> registry.Resource | None:
        return self.api.registry.get(self.group, self.version, self.plural)

    async def list(self, namespace: str) -> list[dict[str, Any]]:
        """From the cache as it is; if it holds none, the live lookup."""
        resource = self.resource()
        if resource is None:
            return []
        found = await self._list(resource, namespace, listing.ListOptions(resource_version="0"))
        if found or not self.ttl:
            return found
        now = self.clock()
        live = self._live.get(namespace)
        if live is None or live[0] < now:
            live = (now + self.ttl, await self._list(resource, namespace, listing.ListOptions()))
            self._live[namespace] = live
            if len(self._live) > 10_000:  # bounded, as upstream's LRU
                self._live.pop(next(iter(self._live)))
        return list(live[1])

    async def list_fresh(self, namespace: str) -> list[dict[str, Any]]:
        """A consistent read (after losing a compare-and-swap, for instance)."""
        resource = self.resource()
        if resource is None:
            return []
        return await self._list(resource, namespace, listing.ListOptions())

    async def _list(self, resource: registry.Resource, namespace: str,
                    options: listing.ListOptions) -> list[dict[str, Any]]:
        result = await self.api.list(resource, rest.Selection(namespace=namespace), options)
        return [entry.obj for entry in result.entries]

    async def write_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Write `obj`'s status, only if it is still at `obj`'s resourceVersion (Conflict otherwise)."""
        resource = self.resource()
        assert resource is not None
        metadata = obj["metadata"]
        result = await self.api.update(resource, metadata.get("namespace"), metadata["name"], copy.deepcopy(obj),
                                       subresource="status", user=authn.SERVER)
        return result.obj


class ObjectReader:
    """One object of a resource by name, as stored now (the cache, proven current), or None.
    The object is the cache's own: never change it."""

    def __init__(self, api: rest.Rest, group: str, version: str, plural: str) -> None:
        self.api, self.group, self.version, self.plural = api, group, version, plural

    async def get(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        resource = self.api.registry.get(self.group, self.version, self.plural)
        if resource is None:
            return None
        try:
            entry = await self.api.get(resource, namespace if resource.namespaced else None, name)
        except errors.NotFound:
            return None
        return entry.obj
