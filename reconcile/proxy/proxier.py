"""The service proxy's loop: informers on Services, EndpointSlices and Nodes feed one sync.

Level-triggered, as kube-proxy: any event marks the state dirty; a sync builds the WHOLE table
as data (`render.Ruleset`, from the informers' caches; per-Service fragments are memoized) and
applies it in one `nft -f` transaction. The API objects are read through `model.PortTracker`:
events mark the Services they touch, and a sync re-reads only those (every Service on a full
sync), as kube-proxy's change trackers do. The first sync, one after a failure, and one every
`full_sync_period` (kube-proxy: 1 h) are full: the table is listed, flushed and rebuilt (which
repairs a table someone changed by hand and deletes chains that are not ours to keep); every
other sync is partial (delta.py): only what differs from the Ruleset last applied, still one
transaction. Rate: a sync runs at once when the previous one began at least `min_sync_period` ago
(so an isolated readiness change reaches the kernel in milliseconds), otherwise when that period
is over (bursts coalesce); every `sync_period` a sync also re-checks the host (route, iptables
accept rule) even with nothing changed.
Nothing is written before all three informers have synced, and before the service CIDR is
guarded (netfilter.guard_service_cidr). The table is left in place when the proxy stops: a
restarted proxy adopts it (the next apply replaces it atomically) and live traffic never sees an
empty table. `cleanup` (`reconcile proxy --cleanup`, `reconcile down --remove-containers`)
removes it. After a sync that changed the rules, UDP conntrack entries still bound to endpoints
that are no longer serving are deleted (conntrack.py), as kube-proxy does.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from dataclasses import dataclass

from reconcile.client import aio
from reconcile.client import config as config_mod
from reconcile.client import informer as informer_mod
from reconcile.engine import manager as manager_mod
from reconcile.proxy import conntrack, delta, model, netfilter, render

log = logging.getLogger(__name__)


@dataclass
class Options:
    """One line per flag of `reconcile proxy`."""

    node: str  # --hostname-override: the Node this proxy serves (its table is named after it)
    server: str | None = None  # None: $RECONCILE_SERVER, then the kubeconfig
    kubeconfig: str | None = None
    service_cidr: str = "10.96.0.0/12"  # --service-cluster-ip-range (as the API server's)
    min_sync_period: float = 1.0  # upstream's --iptables-min-sync-period / nftables default
    sync_period: float = 30.0  # upstream's --iptables-sync-period: the host is re-checked this often
    full_sync_period: float = 3600.0  # upstream's FullSyncPeriod: the table is rebuilt this often
    health_port: int | None = None  # /healthz, /readyz, /metrics on 127.0.0.1 (upstream: :10256)


class Proxier:
    """Owns one node's table; `sync()` is the whole act step (render from caches, apply)."""

    def __init__(self, client: aio.AsyncClient, options: Options) -> None:
        self.client = client
        self.options = options
        self.table = render.table_name(options.node)
        self.services = informer_mod.Informer(client, "v1", "services")
        self.slices = informer_mod.Informer(client, "discovery.k8s.io/v1", "endpointslices")
        self.nodes = informer_mod.Informer(client, "v1", "nodes")
        self.slices.store.add_indexer(SLICES_BY_SERVICE, _slice_service_index)
        self.tracker = model.PortTracker()  # which Services changed since the last sync
        self._dirty = asyncio.Event()
        self._last_sync = 0.0  # when the last sync ended (liveness)
        self._last_sync_start = 0.0  # when it began: the rate limit counts from there, as upstream's runner
        self._guarded_cidrs: tuple[str, ...] | None = None
        self.syncs = 0  # successful applies (tests and metrics read it)
        self.failures = 0
        self.conntrack_flushes = 0  # stale UDP flow groups deleted (conntrack.flush)
        self.full_syncs = 0  # of `syncs`, the full ones
        self._last_full = 0.0
        self._stopping = False
        self.applied: render.Ruleset | None = None  # what the table holds (None: unknown, sync in full)
        self.last_text = ""  # the last text applied (a full text or a delta)

    def _changed(self, *_args: object) -> None:
        self._dirty.set()

    def _service_changed(self, *objects: dict) -> None:
        self.tracker.service_changed(*objects)
        self._dirty.set()

    def _slice_changed(self, *objects: dict) -> None:
        self.tracker.slice_changed(*objects)
        self._dirty.set()

    async def start(self) -> None:
        for inf, handler in ((self.services, self._service_changed), (self.slices, self._slice_changed),
                             (self.nodes, self._changed)):
            inf.add_handler(on_add=handler, on_update=handler, on_delete=handler)
            await inf.start()
        for inf in (self.services, self.slices, self.nodes):
            await inf.wait_synced()

    def node_info(self) -> render.NodeInfo:
        return render.NodeInfo(name=self.options.node, service_cidr=self.options.service_cidr,
                               pod_cidrs=tuple(model.node_pod_cidrs(self.nodes.store.list())))

    def _take_changes(self, full: bool) -> tuple[bool, model.Inputs]:
        """On the event loop (where the informers write their stores): the changed Services and
        their slices, or every Service on a full sync (which thus also repairs a missed event)."""
        if full:
            self.tracker.reset()

        def slices_of(key: model.Key) -> list[dict]:
            return self.slices.store.by_index(SLICES_BY_SERVICE, _index_value(key))

        return self.tracker.take_changes(lambda key: self.services.store.get(*key), slices_of,
                                         self.services.store.list)

    def _sync_now(self, full: bool, check_host: bool, changes: tuple[bool, model.Inputs]) -> None:
        """Blocking (run in a thread): check the host, guard the CIDR, build, apply.

        Full (`full`, or nothing applied yet, or a change no delta can express): list the live
        table (for the chains and sets to delete) and rebuild it. Otherwise a delta against what
        the last sync applied, and nothing at all when it is empty (Node heartbeats wake the proxy
        every few seconds). A failed apply forgets what the table holds: the next sync is full.
        """
        node = self.node_info()
        if full or check_host or self._guarded_cidrs != tuple(node.pod_cidrs):
            netfilter.check_overlaps(node.service_cidr, node.pod_cidrs)
            netfilter.guard_service_cidr(node.service_cidr)
            netfilter.allow_pod_forwarding(self.options.node)
            self._guarded_cidrs = tuple(node.pod_cidrs)
        everything, inputs = changes
        ports = self.tracker.update(everything, self.tracker.ports_of(inputs))
        wanted = render.ruleset(ports, node)
        text = ""
        if not full and self.applied is not None:
            try:
                text, after = delta.render(self.applied, wanted)
            except delta.NeedsFullSync:
                full = True
            else:
                if not text:
                    return
        if full or self.applied is None:
            chains, sets = netfilter.table_contents(self.table)
            text, after = render.render_full(wanted, existing_chains=chains, existing_sets=sets), wanted
            full = True
        try:
            netfilter.apply(text)
        except netfilter.NetfilterError:
            self.applied = None  # the next sync lists the live table again and rebuilds it
            raise
        devices = netfilter.pod_devices(node.pod_cidrs)
        netfilter.enable_hairpin(devices)
        if model.needs_route_localnet(ports):
            netfilter.enable_route_localnet(devices)
        self.applied, self.last_text = after, text
        self.syncs += 1
        if full:
            self.full_syncs += 1
            self._last_full = time.monotonic()
        try:  # after the rules changed: UDP flows still NATed to endpoints that are gone
            self.conntrack_flushes += conntrack.flush(ports, node.pod_cidrs)
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("proxy %s: UDP conntrack cleanup failed: %s", self.options.node, exc)

    async def sync(self, *, full: bool = True, check_host: bool = False) -> None:
        started, before = time.monotonic(), self.syncs
        self._last_sync_start = started
        changes = self._take_changes(full or self.applied is None)
        try:
            await asyncio.to_thread(self._sync_now, full, check_host, changes)
        except BaseException:
            self.tracker.forget_pending(*changes)  # what this sync took is still to be programmed
            raise
        self._last_sync = time.monotonic()
        log.info("proxy %s: synced %s in %.3fs", self.options.node, self.table, self._last_sync - started)
        if before == 0 and self.syncs == 1:  # once: the first table this process programmed
            print(f"proxy for node {self.options.node} programmed {self.table}", flush=True)

    async def run(self) -> None:
        """After the first sync: sync on every change (rate-limited) and every sync_period, until stop()."""
        retry = False
        while not self._stopping:
            wait = self.options.min_sync_period if retry else self.options.sync_period
            check_host = retry
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout=wait)
            except TimeoutError:
                check_host = True
            full = retry or time.monotonic() - self._last_full >= self.options.full_sync_period
            if self._stopping:
                return
            gap = self.options.min_sync_period - (time.monotonic() - self._last_sync_start)
            if gap > 0:
                await asyncio.sleep(gap)  # rate limit: coalesce a burst of changes into one sync
            try:
                self._dirty.clear()
                await self.sync(full=full, check_host=check_host)
                retry = False
            except netfilter.NetfilterError as exc:
                log.error("proxy %s: sync failed (retrying): %s", self.options.node, exc)
                self.failures += 1
                retry = True

    async def stop(self) -> None:
        self._stopping = True
        self._dirty.set()
        for inf in (self.services, self.slices, self.nodes):
            await inf.stop()

    # --- health (engine.manager serves it) -------------------------------------------------------

    def readiness(self) -> list[str]:
        return [] if self.syncs else ["no rule set programmed yet"]

    def liveness(self) -> list[str]:
        """kube-proxy's /healthz: programming progressed within 2 x syncPeriod."""
        age = time.monotonic() - self._last_sync
        if self.syncs and age > 2 * self.options.sync_period + self.options.min_sync_period:
            return [f"last successful sync {age:.0f}s ago"]
        return []


SLICES_BY_SERVICE = "service"  # the slices informer's index: "namespace/name" of the Service a slice serves


def _index_value(key: model.Key) -> str:
    return f"{key[0]}/{key[1]}"


def _slice_service_index(sl: dict) -> list[str]:
    key = model.slice_service(sl)
    return [_index_value(key)] if key is not None else []


@dataclass
class _Loop:
    """The proxier as the manager's run()-style runnable (it is started already)."""

    proxier: Proxier

    async def run(self) -> None:
        await self.proxier.run()

    async def stop(self) -> None:
        await self.proxier.stop()


async def run(options: Options) -> None:
    """`reconcile proxy`: the first sync (a host that routes our ranges fails it: NetfilterError),
    then serve until cancelled; the table stays (a restart adopts it)."""
    cfg = config_mod.load_config(server=options.server, kubeconfig=options.kubeconfig)
    async with aio.AsyncClient(cfg) as client:
        proxier = Proxier(client, options)
        await proxier.start()
        try:
            await proxier.sync()
        except BaseException:
            await proxier.stop()
            raise
        mgr = manager_mod.Manager(client, name="reconcile-proxy", leader_election=False,
                                  health_port=options.health_port)
        mgr.add(_Loop(proxier), needs_leader=False)
        mgr.add_health_check(proxier)
        await mgr.run()


def cleanup(node: str | None) -> list[str]:
    """Remove one node's (or every node's) rules and, when none are left, the service route."""
    return netfilter.cleanup(node)
