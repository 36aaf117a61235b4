"""`reconcile apiserver`: run the API server in the foreground."""

from __future__ import annotations

import click


@click.command()
@click.option("--etcd", "etcd", required=True, help="etcd endpoint(s), comma-separated (http://127.0.0.1:2379).")
@click.option("--port", type=int, default=6443, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--etcd-prefix", default="/registry", show_default=True, help="Key prefix, so clusters can share an etcd.")
@click.option("--etcd-cacert", default=None, help="CA bundle for an etcd served over TLS.")
@click.option("--etcd-cert", default=None, help="Client certificate for etcd.")
@click.option("--etcd-key", default=None, help="Client key for etcd.")
@click.option("--bookmark-interval", type=float, default=30.0, show_default=True,
              help="Seconds between BOOKMARK events on idle watches that allow them.")
@click.option("--encryption-provider-config", default=None, type=click.Path(dir_okay=False),
              help="An EncryptionConfiguration file (apiserver.config.k8s.io/v1): the resources encrypted in "
                   "etcd and their providers (aesgcm, aescbc, identity). Off when not given.")
def apiserver(etcd: str, port: int, host: str, etcd_prefix: str, etcd_cacert: str | None,
              etcd_cert: str | None, etcd_key: str | None, bookmark_interval: float,
              encryption_provider_config: str | None) -> None:
    """Serve the Kubernetes-style REST API from etcd."""
    from reconcile.api import server

    config = server.ApiConfig(
        etcd_endpoints=[e.strip() for e in etcd.split(",") if e.strip()],
        etcd_prefix=etcd_prefix,
        etcd_cacert=etcd_cacert,
        etcd_cert=etcd_cert,
        etcd_key=etcd_key,
        bookmark_interval=bookmark_interval,
        encryption_provider_config=encryption_provider_config,
    )
    try:
        server.serve(config, host=host, port=port)
    except server.StartupError as exc:
        raise click.ClickException(str(exc)) from None
