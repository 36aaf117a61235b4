"""`reconcile controller-manager`: the built-in controllers in the foreground."""

from __future__ import annotations

import datetime
import logging

import click

from reconcile.cli import common


def _duration(text: str) -> datetime.timedelta:
    from reconcile.cli import token_cmd

    value = token_cmd.parse_duration(text)
    if value <= datetime.timedelta(0):
        raise click.BadParameter("must be positive", param_hint="--cluster-signing-duration")
    return value


def register(main: click.Group) -> None:
    main.add_command(controller_manager)


@click.command("controller-manager")
@click.option("--server", "server_url", default=None, help="API server URL (default: $RECONCILE_SERVER, then kubeconfig).")
@click.option("--kubeconfig", "kubeconfig", default=None, type=click.Path(dir_okay=False),
              help="kubeconfig with the server, its CA and this component's client certificate.")
@click.option("--leader-elect/--no-leader-elect", default=True, show_default=True,
              help="Compete for the Lease kube-system/reconcile-controller-manager before running controllers.")
@click.option("--health-port", type=int, default=None, help="Serve /healthz, /readyz and /metrics on this port.")
@click.option("--workers", type=int, default=4, show_default=True, help="Workers per controller.")
@click.option("--node-monitor-grace-period", type=float, default=50.0, show_default=True,
              help="Seconds without a node heartbeat before the node is Ready=Unknown and tainted unreachable.")
@click.option("--pod-eviction-timeout", "--default-toleration-seconds", "pod_eviction_timeout", type=float,
              default=300.0, show_default=True,
              help="Seconds pods without a matching toleration stay on an unreachable node before being deleted.")
@click.option("--leader-elect-lease-duration", type=float, default=15.0, show_default=True,
              help="Seconds a standby waits after the last renewal before taking the Lease.")
@click.option("--leader-elect-renew-deadline", type=float, default=10.0, show_default=True,
              help="Seconds the leader keeps trying to renew before it stops its controllers.")
@click.option("--leader-elect-retry-period", type=float, default=2.0, show_default=True,
              help="Seconds between tries to acquire or renew the Lease.")
@click.option("--burst-replicas", type=click.IntRange(min=1), default=500, show_default=True,
              help="Pods one ReplicaSet sync creates or deletes at most (created in slow-start batches 1, 2, 4, ...).")
@click.option("--resource-quota-sync-period", type=click.FloatRange(min=0.1), default=300.0, show_default=True,
              help="Seconds between full recounts of each ResourceQuota's usage.")
@click.option("--root-ca-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="The cluster CA bundle, published in every namespace as the ConfigMap kube-root-ca.crt "
                   "(default: the CA of --kubeconfig).")
@click.option("--cluster-signing-cert-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="CA certificate (PEM) that signs approved CertificateSigningRequests of the kubernetes.io "
                   "signers (without it the csrsigning controller is off).")
@click.option("--cluster-signing-key-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Private key of --cluster-signing-cert-file.")
@click.option("--cluster-signing-duration", default="8760h", show_default=True,
              help="The longest certificate csrsigning issues (a duration: 8760h, 30m); a request's "
                   "expirationSeconds may ask for less.")
@click.option("--horizontal-pod-autoscaler-sync-period", "hpa_sync_period", type=click.FloatRange(min=0.1),
              default=15.0, show_default=True, help="Seconds between two looks at each HorizontalPodAutoscaler.")
@click.option("--horizontal-pod-autoscaler-downscale-stabilization", "hpa_downscale_stabilization",
              type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="Seconds of recommendations an HPA scales down from at most (the highest wins), unless its "
                   "behavior.scaleDown.stabilizationWindowSeconds says otherwise.")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def controller_manager(server_url: str | None, kubeconfig: str | None, leader_elect: bool, health_port: int | None, workers: int,
                       node_monitor_grace_period: float, pod_eviction_timeout: float,
                       leader_elect_lease_duration: float, leader_elect_renew_deadline: float,
                       leader_elect_retry_period: float, burst_replicas: int, resource_quota_sync_period: float,
                       root_ca_file: str | None, cluster_signing_cert_file: str | None,
                       cluster_signing_key_file: str | None, cluster_signing_duration: str, hpa_sync_period: float,
                       hpa_downscale_stabilization: float, verbose: bool) -> None:
    """Run the ReplicaSet, Deployment, garbage-collector, namespace, node-lifecycle and resource-quota controllers."""
    from reconcile.controllers import manager
    from reconcile.engine import leader

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns what controllers say
    if server_url is None:
        server_url = common.group_server()
    options = manager.Options(server=server_url, kubeconfig=kubeconfig, leader_elect=leader_elect, health_port=health_port, workers=workers,
                              node_monitor_grace_period=node_monitor_grace_period,
                              default_toleration_seconds=pod_eviction_timeout, burst_replicas=burst_replicas,
                              quota_resync=resource_quota_sync_period, root_ca_file=root_ca_file,
                              cluster_signing_cert_file=cluster_signing_cert_file,
                              cluster_signing_key_file=cluster_signing_key_file,
                              cluster_signing_duration=_duration(cluster_signing_duration),
                              hpa_sync_period=hpa_sync_period, hpa_downscale_stabilization=hpa_downscale_stabilization,
                              leader_config=leader.LeaderConfig(lease_duration=leader_elect_lease_duration,
                                                                renew_deadline=leader_elect_renew_deadline,
                                                                retry_period=leader_elect_retry_period))

    common.run_component(lambda: manager.run(options))
