"""The controller-manager: every built-in controller in one process, behind one leader election.

All controllers form one runnable that needs the lease: on `start` it builds fresh informers,
waits for them to sync (a controller acting on a half-filled cache would create duplicates),
then runs the controllers; on `stop` it lets in-flight reconciles finish. A process that
loses the lease exits (the engine's manager raises) and is restarted fresh, as upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from reconcile.client import aio
from reconcile.client import config as config_mod
from reconcile.controllers import context, deployment, garbagecollector, namespace, nodelifecycle, replicaset
from reconcile.controllers import informers as informers_mod
from reconcile.engine import clock as clock_mod
from reconcile.engine import events as events_mod
from reconcile.engine import leader as leader_mod
from reconcile.engine import manager as manager_mod
from reconcile.engine import metrics as metrics_mod

log = logging.getLogger(__name__)

LEASE_NAME = "reconcile-controller-manager"
SYNC_TIMEOUT = 120.0


@dataclass
class Options:
    """Settings of one controller-manager process."""

    server: str | None = None  # API server URL (None: the usual kubeconfig lookup)
    leader_elect: bool = True  # compete for the Lease kube-system/reconcile-controller-manager
    health_port: int | None = None  # /healthz, /readyz, /metrics (None: not served)
    workers: int = 4  # workers per controller
    identity: str | None = None  # leader-election identity (default host_random)
    node_monitor_grace_period: float = 50.0  # a node silent this long goes Ready=Unknown and is tainted
    default_toleration_seconds: float = 300.0  # pods without a matching toleration leave a tainted node after this
    leader_config: leader_mod.LeaderConfig | None = None  # lease timings (None: 15 s / 10 s / 2 s)


class Controllers:
    """The runnable: informers + ReplicaSet, Deployment, GC and Namespace controllers."""

    def __init__(self, read_client: aio.AsyncClient, write_client: Any, *, workers: int = 4,
                 clock: clock_mod.Clock | None = None, metrics: metrics_mod.Metrics | None = None,
                 node_lifecycle: nodelifecycle.Settings | None = None) -> None:
        self.read_client = read_client
        self.node_lifecycle = node_lifecycle
        self.write_client = write_client
        self.workers = workers
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        self.metrics = metrics
        self.informers: informers_mod.SharedInformers | None = None
        self.controllers: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.informers = informers_mod.SharedInformers(self.read_client)
        ctx = context.ControllerContext(
            client=self.write_client,
            informers=self.informers,
            recorder=events_mod.EventRecorder(self.write_client, component="controller-manager", clock=self.clock),
            clock=self.clock,
            metrics=self.metrics,
            workers=self.workers,
        )
        gc = garbagecollector.GarbageCollector(ctx)
        await gc.prepare()
        self.controllers = [
            replicaset.ReplicaSetController(ctx),
            deployment.DeploymentController(ctx),
            gc,
            namespace.NamespaceController(ctx),
            nodelifecycle.NodeLifecycleController(ctx, settings=self.node_lifecycle),
        ]
        await self.informers.start()
        await self.informers.wait_synced(timeout=SYNC_TIMEOUT)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(c.controller.run(), name=f"controller:{c.controller.name}")
                       for c in self.controllers]
        log.info("controllers started: %s", ", ".join(c.controller.name for c in self.controllers))

    async def stop(self, *, timeout: float = 30.0) -> None:
        await asyncio.gather(*(c.controller.stop(timeout=timeout) for c in self.controllers),
                             return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self.informers is not None:
            await self.informers.stop()


async def run(options: Options) -> None:
    """Run the controller-manager until cancelled (or until it loses its lease)."""
    cfg = config_mod.load_config(server=options.server)
    async with aio.AsyncClient(cfg) as client:
        metrics = metrics_mod.Metrics()
        mgr = manager_mod.Manager(
            client,
            name=LEASE_NAME,
            leader_election=options.leader_elect,
            identity=options.identity,
            health_port=options.health_port,
            metrics=metrics,
            leader_config=options.leader_config,
        )
        node_lifecycle = nodelifecycle.Settings(grace_period=options.node_monitor_grace_period,
                                                default_toleration_seconds=options.default_toleration_seconds)
        mgr.add(Controllers(client, mgr.client, workers=options.workers, metrics=metrics,
                            node_lifecycle=node_lifecycle), needs_leader=True)
        try:
            await mgr.run()
        finally:
            with contextlib.suppress(Exception):
                await mgr.stop()

