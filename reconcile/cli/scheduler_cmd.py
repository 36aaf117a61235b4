"""`reconcile scheduler`: bind pending pods to nodes, in the foreground."""

from __future__ import annotations

import logging

import click

from reconcile.cli import common


def register(main: click.Group) -> None:
    main.add_command(scheduler)


@click.command("scheduler")
@click.option("--server", "server_url", default=None, help="API server URL (default: $RECONCILE_SERVER, then kubeconfig).")
@click.option("--kubeconfig", "kubeconfig", default=None, type=click.Path(dir_okay=False),
              help="kubeconfig with the server, its CA and this component's client certificate.")
@click.option("--leader-elect/--no-leader-elect", default=True, show_default=True,
              help="Compete for the Lease kube-system/reconcile-scheduler before scheduling.")
@click.option("--health-port", type=int, default=None, help="Serve /healthz, /readyz and /metrics on this port.")
@click.option("--scheduler-name", default="default-scheduler", show_default=True,
              help="Schedule the pods whose spec.schedulerName is this (or unset).")
@click.option("--max-in-flight", type=int, default=8, show_default=True, help="Bindings written at once.")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def scheduler(server_url: str | None, kubeconfig: str | None, leader_elect: bool, health_port: int | None, scheduler_name: str,
              max_in_flight: int, verbose: bool) -> None:
    """Watch pods without a node and bind each to the best node that fits."""
    from reconcile.scheduler import app

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if server_url is None:
        server_url = common.group_server()
    options = app.Options(server=server_url, kubeconfig=kubeconfig, leader_elect=leader_elect, health_port=health_port,
                          scheduler_name=scheduler_name, max_in_flight=max_in_flight)

    common.run_component(lambda: app.run(options))
