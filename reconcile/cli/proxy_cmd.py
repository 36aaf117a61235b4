"""`reconcile proxy`: the service proxy of one node (kube-proxy), in the foreground."""

from __future__ import annotations

import logging

import click

from reconcile.cli import common


def register(main: click.Group) -> None:
    main.add_command(proxy)


@click.command("proxy")
@click.option("--server", "server_url", default=None, help="API server URL (default: $RECONCILE_SERVER, then kubeconfig).")
@click.option("--kubeconfig", default=None, type=click.Path(dir_okay=False),
              help="kubeconfig with the server, its CA and this component's client certificate (system:kube-proxy).")
@click.option("--node", "--hostname-override", "node", required=False, default=None,
              help="The Node this proxy serves; its rules live in the nft table ip reconcile-proxy-NODE.")
@click.option("--service-cluster-ip-range", "service_cidr", default="10.96.0.0/12", show_default=True,
              help="The service CIDR (the API server's); routed into a local dummy device so nothing to it leaves.")
@click.option("--min-sync-period", type=float, default=1.0, show_default=True,
              help="Seconds between two syncs at least (an isolated change is applied at once).")
@click.option("--sync-period", type=float, default=30.0, show_default=True,
              help="Re-check the host's route and accept rule (and retry) every this many seconds.")
@click.option("--full-sync-period", type=float, default=3600.0, show_default=True,
              help="Rebuild the whole table every this many seconds; other syncs send only what changed.")
@click.option("--health-port", type=int, default=None, help="Serve /healthz, /readyz and /metrics on 127.0.0.1:PORT.")
@click.option("--cleanup", is_flag=True, help="Remove this node's rules (every node's without --node), then exit.")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def proxy(server_url: str | None, kubeconfig: str | None, node: str | None, service_cidr: str, min_sync_period: float,
          sync_period: float, full_sync_period: float, health_port: int | None, cleanup: bool,
          verbose: bool) -> None:
    """Program cluster IPs and node ports into the kernel (nftables) from Services and EndpointSlices."""
    import ipaddress

    from reconcile.proxy import netfilter, proxier

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if cleanup:
        removed = proxier.cleanup(node)
        click.echo(f"removed {', '.join(removed) or 'nothing'}")
        return
    if not node:
        raise click.UsageError("--node is required (the Node this proxy serves)")
    try:
        network = ipaddress.ip_network(service_cidr)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--service-cluster-ip-range") from None
    if network.version != 4:
        raise click.BadParameter("only IPv4 service CIDRs are supported", param_hint="--service-cluster-ip-range")
    if server_url is None:
        server_url = common.group_server()
    options = proxier.Options(node=node, server=server_url, kubeconfig=kubeconfig, service_cidr=str(network),
                              min_sync_period=min_sync_period, sync_period=sync_period,
                              full_sync_period=full_sync_period, health_port=health_port)
    try:
        common.run_component(lambda: proxier.run(options))
    except netfilter.NetfilterError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
