"""The scheduler process: a Manager with leader election running the scheduler while it leads."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from reconcile.client import aio
from reconcile.client import config as config_mod
from reconcile.engine import manager as manager_mod
from reconcile.scheduler import scheduler as scheduler_mod

log = logging.getLogger(__name__)

LEASE_NAME = "reconcile-scheduler"
LEASE_NAMESPACE = "kube-system"


@dataclass
class Options:
    server: str | None = None  # None: $RECONCILE_SERVER, then the kubeconfig
    kubeconfig: str | None = None  # a kubeconfig file (its server, CA and client certificate)
    leader_elect: bool = True  # compete for kube-system/reconcile-scheduler first
    health_port: int | None = None  # /healthz, /readyz, /metrics
    identity: str | None = None  # leader election identity (default: host_random)
    scheduler_name: str = scheduler_mod.DEFAULT_SCHEDULER_NAME  # pods naming another scheduler are left alone
    max_in_flight: int = scheduler_mod.MAX_IN_FLIGHT  # concurrent bindings


async def run(options: Options) -> None:
    """Run until cancelled (or until the lease is lost: then LeaderElectionLost is raised, as client-go exits)."""
    cfg = config_mod.load_config(server=options.server, kubeconfig=options.kubeconfig)
    async with aio.AsyncClient(cfg) as client:
        mgr = manager_mod.Manager(
            client,
            name=LEASE_NAME,
            leader_election=options.leader_elect,
            identity=options.identity,
            health_port=options.health_port,
            lease_namespace=LEASE_NAMESPACE,
        )
        sched = scheduler_mod.Scheduler(
            client,
            writer=mgr.client,
            scheduler_name=options.scheduler_name,
            max_in_flight=options.max_in_flight,
            metrics=mgr.metrics,
        )
        mgr.add(scheduler_mod.InformersRunnable(sched), needs_leader=False)
        mgr.add_health_check(sched.supervisor)
        mgr.add(sched, needs_leader=True)
        try:
            await mgr.run()
        finally:
            with contextlib.suppress(Exception):
                await mgr.stop()
            log.info("scheduler stopped after binding %d pods", sched.bound)
