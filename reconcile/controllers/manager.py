"""The controller-manager: every built-in controller in one process, behind one leader election.

All controllers form one runnable that needs the lease: on `start` it builds fresh informers,
waits for them to sync (a controller acting on a half-filled cache would create duplicates),
then runs the controllers; on `stop` it lets in-flight reconciles finish. A process that
loses the lease exits (the engine's manager raises) and is restarted fresh, as upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from dataclasses import dataclass
from typing import Any

from reconcile.client import aio
from reconcile.client import config as config_mod
from reconcile.controllers import (
    clusterroleaggregation,
    context,
    cronjob,
    csrapproving,
    csrsigning,
    deployment,
    disruption,
    endpoints,
    endpointslice,
    endpointslicemirroring,
    garbagecollector,
    job,
    namespace,
    nodelifecycle,
    podautoscaler,
    pvbinder,
    replicaset,
    resourcequota,
    rootcacert,
    serviceaccounts,
    statefulset,
    storageprotection,
    tokencleaner,
)
from reconcile.controllers import informers as informers_mod
from reconcile.core import hpabehavior
from reconcile.engine import badobjects, supervision
from reconcile.engine import clock as clock_mod
from reconcile.engine import events as events_mod
from reconcile.engine import leader as leader_mod
from reconcile.engine import manager as manager_mod
from reconcile.engine import metrics as metrics_mod
from reconcile.pki import certs

log = logging.getLogger(__name__)

LEASE_NAME = "reconcile-controller-manager"
SYNC_TIMEOUT = 120.0


@dataclass
class Options:
    """Settings of one controller-manager process."""

    server: str | None = None  # API server URL (None: the usual kubeconfig lookup)
    kubeconfig: str | None = None  # a kubeconfig file (its server, CA and client certificate)
    leader_elect: bool = True  # compete for the Lease kube-system/reconcile-controller-manager
    health_port: int | None = None  # /healthz, /readyz, /metrics (None: not served)
    workers: int = 4  # workers per controller
    identity: str | None = None  # leader-election identity (default host_random)
    node_monitor_grace_period: float = 50.0  # a node silent this long goes Ready=Unknown and is tainted
    default_toleration_seconds: float = 300.0  # pods without a matching toleration leave a tainted node after this
    leader_config: leader_mod.LeaderConfig | None = None  # lease timings (None: 15 s / 10 s / 2 s)
    burst_replicas: int = replicaset.BURST_REPLICAS  # pods a ReplicaSet sync creates or deletes at most
    quota_resync: float = resourcequota.RESYNC  # seconds between full recounts of each ResourceQuota
    root_ca_file: str | None = None  # --root-ca-file: published as kube-root-ca.crt (default: the kubeconfig's CA)
    cluster_signing_cert_file: str | None = None  # the CA csrsigning signs with (none: csrsigning is off)
    cluster_signing_key_file: str | None = None
    cluster_signing_duration: datetime.timedelta = csrsigning.DEFAULT_DURATION  # longest certificate it issues
    hpa_sync_period: float = podautoscaler.SYNC_PERIOD  # seconds between two looks at each HPA
    hpa_downscale_stabilization: float = hpabehavior.DOWNSCALE_STABILIZATION_SECONDS  # its default scale-down window


class Controllers:
    """The runnable: informers + ReplicaSet, Deployment, GC, Namespace, node lifecycle, ClusterRole
    aggregation and resource quota controllers."""

    def __init__(self, read_client: aio.AsyncClient, write_client: Any, *, workers: int = 4,
                 clock: clock_mod.Clock | None = None, metrics: metrics_mod.Metrics | None = None,
                 node_lifecycle: nodelifecycle.Settings | None = None,
                 burst_replicas: int = replicaset.BURST_REPLICAS, quota_resync: float = resourcequota.RESYNC,
                 root_ca: str | None = None, signing: tuple[certs.Issued, datetime.timedelta] | None = None,
                 hpa_sync_period: float = podautoscaler.SYNC_PERIOD,
                 hpa_downscale_stabilization: float = hpabehavior.DOWNSCALE_STABILIZATION_SECONDS) -> None:
        self.read_client = read_client
        self.hpa_sync_period = hpa_sync_period
        self.hpa_downscale_stabilization = hpa_downscale_stabilization
        self.root_ca = root_ca  # PEM for kube-root-ca.crt; None: that publisher does not run
        self.signing = signing
        self.quota_resync = quota_resync
        self.node_lifecycle = node_lifecycle
        self.write_client = write_client
        self.workers = workers
        self.clock: clock_mod.Clock = clock or clock_mod.RealClock()
        self.metrics = metrics
        self.burst_replicas = burst_replicas
        self.informers: informers_mod.SharedInformers | None = None
        self.controllers: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []
        # Restarts the informers of this term that stop; /readyz and /healthz report through it.
        # Real time, as the informers' own reconnect backoff (a FakeClock drives the controllers only).
        self.supervisor = supervision.InformerSupervisor(self._current_informers, name="controller-manager",
                                                         metrics=metrics)
        self.reporter: badobjects.Reporter | None = None

    def _current_informers(self) -> list[Any]:
        return list(self.informers.known().values()) if self.informers is not None else []

    async def start(self) -> None:
        recorder = events_mod.EventRecorder(self.write_client, component="controller-manager", clock=self.clock)
        self.reporter = badobjects.Reporter(component="controller-manager", metrics=self.metrics, recorder=recorder)
        self.informers = informers_mod.SharedInformers(self.read_client, reporter=self.reporter)
        ctx = context.ControllerContext(
            client=self.write_client,
            informers=self.informers,
            recorder=recorder,
            clock=self.clock,
            metrics=self.metrics,
            workers=self.workers,
            reporter=self.reporter,
            burst_replicas=self.burst_replicas,
        )
        gc = garbagecollector.GarbageCollector(ctx)
        await gc.prepare()
        self.controllers = [
            replicaset.ReplicaSetController(ctx),
            deployment.DeploymentController(ctx),
            gc,
            namespace.NamespaceController(ctx),
            nodelifecycle.NodeLifecycleController(ctx, settings=self.node_lifecycle),
            clusterroleaggregation.ClusterRoleAggregationController(ctx),
            resourcequota.ResourceQuotaController(ctx, resync=self.quota_resync),
            serviceaccounts.ServiceAccountsController(ctx),
            tokencleaner.TokenCleaner(ctx),
            csrapproving.CsrApprovingController(ctx),
            endpoints.EndpointsController(ctx),
            endpointslice.EndpointSliceController(ctx),
            endpointslicemirroring.EndpointSliceMirroringController(ctx),
            pvbinder.PersistentVolumeBinder(ctx),
            storageprotection.PvcProtectionController(ctx),
            storageprotection.PvProtectionController(ctx),
            statefulset.StatefulSetController(ctx),
            disruption.DisruptionController(ctx),
            podautoscaler.HorizontalPodAutoscalerController(ctx, sync_period=self.hpa_sync_period,
                                                            downscale_stabilization=self.hpa_downscale_stabilization),
            job.JobController(ctx),
            cronjob.CronJobController(ctx),
        ]
        if self.root_ca:
            self.controllers.append(rootcacert.RootCACertPublisher(ctx, self.root_ca))
        if self.signing is not None:
            self.controllers.append(csrsigning.CsrSigningController(ctx, self.signing[0], duration=self.signing[1]))
        await self.informers.start()
        await self.supervisor.start()
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
        await self.supervisor.stop()
        if self.informers is not None:
            await self.informers.stop()
        if self.reporter is not None:
            await self.reporter.drain(timeout=min(timeout, 2.0))


def signing_ca(options: Options) -> tuple[certs.Issued, datetime.timedelta] | None:
    """The CA csrsigning signs with (read once), or None (with a warning) when no files are given."""
    if not options.cluster_signing_cert_file:
        log.warning("no --cluster-signing-cert-file: the csrsigning controller is off")
        return None
    with open(options.cluster_signing_cert_file, "rb") as cert, \
            open(options.cluster_signing_key_file or options.cluster_signing_cert_file, "rb") as key:
        ca = certs.Issued(cert.read(), key.read())
    if not certs.key_matches(ca.cert, ca.key):
        raise ValueError("--cluster-signing-key-file does not match --cluster-signing-cert-file")
    return ca, options.cluster_signing_duration


async def run(options: Options) -> None:
    """Run the controller-manager until cancelled (or until it loses its lease)."""
    cfg = config_mod.load_config(server=options.server, kubeconfig=options.kubeconfig)
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
        controllers = Controllers(client, mgr.client, workers=options.workers, metrics=metrics,
                                  node_lifecycle=node_lifecycle, burst_replicas=options.burst_replicas,
                                  quota_resync=options.quota_resync, root_ca=_root_ca(options, cfg),
                                  signing=signing_ca(options), hpa_sync_period=options.hpa_sync_period,
                                  hpa_downscale_stabilization=options.hpa_downscale_stabilization)
        mgr.add(controllers, needs_leader=True)
        mgr.add_health_check(controllers.supervisor)
        try:
            await mgr.run()
        finally:
            with contextlib.suppress(Exception):
                await mgr.stop()


def _root_ca(options: Options, cfg: config_mod.ClientConfig) -> str | None:
    """The CA bundle to publish: --root-ca-file, else the CA this process trusts the API server by
    (upstream falls back to its client's CA data); None when neither is a file."""
    path = options.root_ca_file or (cfg.verify if isinstance(cfg.verify, str) else None)
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        if options.root_ca_file:
            raise RuntimeError(f"--root-ca-file: cannot read {path}: {exc.strerror}") from None
        return None
