"""The gitops process (`reconcile gitops controller`): the GitRepository and Sync controllers, one artifact store.

The three controllers (GitRepositories, Syncs, and the Receivers' status) run in one Manager,
while it leads (Lease kube-system/reconcile-gitops): the source
side fetches each GitRepository and publishes its tree into the store; the Sync side applies what
the store holds. They share one GitRepository informer, so a new artifact wakes its Syncs at once.
Charts in a repository are rendered by the `renderer` the caller injects (charting is a sibling
layer; the CLI passes it in).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from reconcile.client import aio
from reconcile.client import config as config_mod
from reconcile.engine import manager as manager_mod
from reconcile.gitops import artifacts, controller, receivers, render, sources

log = logging.getLogger(__name__)

LEASE_NAME = "reconcile-gitops"
LEASE_NAMESPACE = "kube-system"


@dataclass
class Options:
    state_dir: Path  # artifacts/ (published trees) and git-cache/ (fetched objects) live here
    server: str | None = None  # None: $RECONCILE_SERVER, then the kubeconfig
    kubeconfig: str | None = None
    leader_elect: bool = True
    health_port: int | None = None  # /healthz, /readyz, /metrics
    workers: int = 2
    allow_local_sources: bool = False  # file:// and local paths as GitRepository URLs (Flux has none)
    default_service_account: str | None = None  # Flux's --default-service-account
    cross_namespace_refs: bool = False  # Flux's --no-cross-namespace-refs=false


class _Runnable:
    """An engine Controller as a Manager runnable (run() until stop())."""

    def __init__(self, running: object) -> None:
        self.running = running

    async def run(self) -> None:
        await self.running.run()  # type: ignore[attr-defined]

    async def stop(self) -> None:
        await self.running.stop()  # type: ignore[attr-defined]


async def run(options: Options, *, renderer: render.ChartRenderer | None = None) -> None:
    """Run until cancelled (or until the lease is lost: LeaderElectionLost, as client-go exits)."""
    cfg = config_mod.load_config(server=options.server, kubeconfig=options.kubeconfig)
    store = artifacts.ArtifactStore(options.state_dir / "artifacts")
    async with aio.AsyncClient(cfg) as client:
        mgr = manager_mod.Manager(client, name=LEASE_NAME, leader_election=options.leader_elect,
                                  health_port=options.health_port, lease_namespace=LEASE_NAMESPACE)
        syncer = controller.SyncController(client, store, renderer=renderer, workers=options.workers,
                                           default_service_account=options.default_service_account,
                                           cross_namespace_refs=options.cross_namespace_refs)
        reconciler = sources.GitRepositoryReconciler(client, store, options.state_dir / "git-cache",
                                                     recorder=syncer.recorder,
                                                     allow_local=options.allow_local_sources)
        # registered on the shared informer before it starts, so its first list reaches both sides
        fetcher = sources.controller(reconciler, syncer.sources, workers=options.workers, metrics=mgr.metrics)
        mgr.add(syncer, needs_leader=True)
        mgr.add(_Runnable(fetcher), needs_leader=True)
        mgr.add(receivers.Receivers(client), needs_leader=True)  # their hooks are the API server's
        try:
            await mgr.run()
        finally:
            with contextlib.suppress(Exception):
                await mgr.stop()
            log.info("gitops controllers stopped")
