"""`reconcile gitops`: the GitRepository and Sync controllers (Flux's source- and
kustomize-controller), in the foreground."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from reconcile.cli import common


def register(main: click.Group) -> None:
    main.add_command(gitops)


def render_chart(folder: Path, values: dict[str, Any], release: str, namespace: str
                 ) -> list[tuple[str, int, dict[str, Any]]]:
    """gitops' ChartRenderer over the charts engine: a Sync whose source is a chart renders as
    `reconcile chart template` would (the chart's files only; no lookup of live objects)."""
    from reconcile.charting import chart as chart_mod
    from reconcile.charting import render as chart_render

    rendered = chart_render.render(chart_mod.load(folder), values, chart_render.ReleaseInfo(release, namespace))
    return [(doc.template, doc.index, doc.obj) for doc in rendered.documents]


@click.command("gitops")
@click.option("--server", "server_url", default=None, help="API server URL (default: $RECONCILE_SERVER, then kubeconfig).")
@click.option("--kubeconfig", "kubeconfig", default=None, type=click.Path(dir_okay=False),
              help="kubeconfig with the server, its CA and this component's client certificate.")
@click.option("--state-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where fetched repositories (git-cache/) and published trees (artifacts/) are kept.")
@click.option("--leader-elect/--no-leader-elect", default=True, show_default=True,
              help="Compete for the Lease kube-system/reconcile-gitops before reconciling.")
@click.option("--health-port", type=int, default=None, help="Serve /healthz, /readyz and /metrics on this port.")
@click.option("--workers", type=int, default=2, show_default=True, help="GitRepositories and Syncs reconciled at once.")
@click.option("--allow-local-sources", is_flag=True,
              help="Accept file:// URLs and local paths in GitRepositories (anyone who may create one could "
                   "then read any repository on this host; Flux has no such sources).")
@click.option("--default-service-account", default=None,
              help="Apply Syncs without spec.serviceAccountName as this account of their namespace (Flux's flag).")
@click.option("--allow-cross-namespace-refs", is_flag=True,
              help="Let a Sync use a GitRepository of another namespace (Flux's --no-cross-namespace-refs=false).")
@click.option("--receiver-address", default=None, metavar="HOST:PORT",
              help="Serve the Receivers' webhooks (POST /hooks/gitops/<digest>) here; off unless given.")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def gitops(server_url: str | None, kubeconfig: str | None, state_dir: Path, leader_elect: bool,
           health_port: int | None, workers: int, allow_local_sources: bool, default_service_account: str | None,
           allow_cross_namespace_refs: bool, receiver_address: str | None, verbose: bool) -> None:
    """Fetch GitRepositories and apply Syncs of their published trees."""
    from reconcile.gitops import app

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if server_url is None:
        server_url = common.group_server()
    if workers < 1:
        raise click.BadParameter("must be at least 1", param_hint="--workers")
    address = None
    if receiver_address is not None:
        host, sep, port = receiver_address.rpartition(":")
        if not sep or not host or not port.isascii() or not port.isdigit() or int(port) > 65535:
            raise click.BadParameter(f"{receiver_address!r} is not HOST:PORT", param_hint="--receiver-address")
        address = (host.strip("[]"), int(port))
    options = app.Options(state_dir=state_dir, server=server_url, kubeconfig=kubeconfig, leader_elect=leader_elect,
                          health_port=health_port, workers=workers, allow_local_sources=allow_local_sources,
                          default_service_account=default_service_account,
                          cross_namespace_refs=allow_cross_namespace_refs, receiver_address=address)
    common.run_component(lambda: app.run(options, renderer=render_chart))
