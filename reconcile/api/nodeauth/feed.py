"""The node graph kept current from the API server's watch caches (pods and PersistentVolumes).

The caches call `pod_event` / `pv_event` for every change they apply (their listeners); the graph
takes each one incrementally. It starts from the caches' contents the first time a decision needs
it (a cache's first list sends no events; a relist after compaction does send them); until both
caches run, `graph()` answers from the empty graph and tries again next time (a node is refused,
never let through, while the server starts).

Invariant: once `_synced`, the graph reflects every pod and PV the caches hold, because every later
change reached it through a listener, synchronously, before any request could observe the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from reconcile.api import watchcache
from reconcile.api.nodeauth import graph as graph_mod

PODS, PVS = "pods", "persistentvolumes"

# plural -> the objects its cache holds now, or None while that cache is not running
Source = Callable[[str], Iterable[dict[str, Any]] | None]


class LiveGraph:
    def __init__(self, source: Source) -> None:
        self.source = source
        self._graph = graph_mod.Graph()
        self._synced = False
        self.resyncs = 0  # how often the graph was rebuilt from the caches (tests and metrics read it)

    def graph(self) -> graph_mod.Graph:
        if not self._synced:
            pods, pvs = self.source(PODS), self.source(PVS)
            if pods is not None and pvs is not None:
                self._graph.reset(pods, pvs)
                self._synced = True
                self.resyncs += 1
        return self._graph

    def pod_event(self, event: watchcache.CacheEvent) -> None:
        if not self._synced or not event.entry.decodable:
            return
        obj = event.entry.obj
        if event.type == watchcache.DELETED:
            metadata = obj.get("metadata") or {}
            self._graph.remove_pod(str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
        else:
            self._graph.set_pod(obj)

    def pv_event(self, event: watchcache.CacheEvent) -> None:
        if not self._synced or not event.entry.decodable:
            return
        obj = event.entry.obj
        if event.type == watchcache.DELETED:
            self._graph.remove_pv(str((obj.get("metadata") or {}).get("name") or ""))
        else:
            self._graph.set_pv(obj)
