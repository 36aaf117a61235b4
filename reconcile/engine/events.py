"""Posting core/v1 Events about objects, aggregated like client-go's event recorder.

The same (object uid, reason, message, type) seen again within 10 minutes bumps the existing
Event's `count` and `lastTimestamp` instead of creating another, so a hot loop cannot flood
the API. Events are best effort: a failure is logged, never raised into the caller.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from reconcile.client import aio
from reconcile.core import errors, meta
from reconcile.engine import clock as clock_mod

log = logging.getLogger(__name__)

AGGREGATION_WINDOW = 600.0  # seconds: client-go's 10 minutes
CACHE_SIZE = 4096  # client-go's LRU size for the aggregation cache

_Key = tuple[str, str, str, str]  # (involved uid, reason, message, type)


@dataclass
class _Seen:
    name: str
    namespace: str
    count: int
    last: float  # clock.now() of the last post


class EventRecorder:
    """Records Events for one component (e.g. "replicaset-controller")."""

    def __init__(self, client: aio.AsyncClient, *, component: str, clock: clock_mod.Clock | None = None) -> None:
        self.client = client
        self.component = component
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        # Invariant: at most CACHE_SIZE entries, least recently posted first; an entry names
        # the Event that holds `count` occurrences of its key.
        self._seen: OrderedDict[_Key, _Seen] = OrderedDict()
        # One lock per key being posted, so two concurrent identical events aggregate
        # instead of both creating an Event; [lock, users], removed when the last user leaves.
        self._locks: dict[_Key, list[Any]] = {}

    async def record(self, obj: dict, *, reason: str, message: str, type: str = "Normal") -> None:
        metadata = obj.get("metadata") or {}
        key: _Key = (metadata.get("uid") or "", reason, message, type)
        entry = self._locks.setdefault(key, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                await self._post(obj, key, reason=reason, message=message, type=type)
        except errors.ApiError as exc:
            log.warning("event %s for %s/%s not recorded: %s", reason, metadata.get("namespace"), metadata.get("name"), exc)
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[key]

    async def _post(self, obj: dict, key: _Key, *, reason: str, message: str, type: str) -> None:
        now = self.clock.now()
        stamp = meta.format_time(self.clock.wall())
        seen = self._seen.get(key)
        if seen is not None and now - seen.last < AGGREGATION_WINDOW:
            try:
                await self.client.patch(
                    "v1",
                    "events",
                    seen.name,
                    {"count": seen.count + 1, "lastTimestamp": stamp},
                    namespace=seen.namespace,
                )
            except errors.NotFound:
                pass  # the Event was deleted (TTL, by hand): start a new one
            else:
                seen.count += 1
                seen.last = now
                self._seen.move_to_end(key)
                return
        event = self._event(obj, reason=reason, message=message, type=type, stamp=stamp)
        namespace = event["metadata"]["namespace"]
        created = await self.client.create("v1", "events", event, namespace=namespace)
        self._seen[key] = _Seen(created["metadata"]["name"], namespace, 1, now)
        self._seen.move_to_end(key)
        while len(self._seen) > CACHE_SIZE:
            self._seen.popitem(last=False)

    def _event(self, obj: dict, *, reason: str, message: str, type: str, stamp: str) -> dict[str, Any]:
        metadata = obj.get("metadata") or {}
        namespace = metadata.get("namespace") or "default"  # cluster-scoped objects: "default"
        involved = {
            "apiVersion": obj.get("apiVersion", ""),
            "kind": obj.get("kind", ""),
            "name": metadata.get("name", ""),
            "uid": metadata.get("uid", ""),
            "resourceVersion": metadata.get("resourceVersion", ""),
        }
        if metadata.get("namespace"):
            involved["namespace"] = metadata["namespace"]
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{metadata.get('name', 'unknown')}.{secrets.token_hex(8)}", "namespace": namespace},
            "involvedObject": {k: v for k, v in involved.items() if v},
            "reason": reason,
            "message": message,
            "type": type,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
