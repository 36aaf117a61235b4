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
@click.option("--authorization-mode", default="AlwaysAllow", show_default=True,
              help="Authorizers to ask, in order, comma-separated: AlwaysAllow, AlwaysDeny, RBAC "
                   "(system:masters is always allowed).")
@click.option("--token-auth-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Static bearer tokens, CSV lines token,user,uid[,\"group1,group2\"]; turns authentication on "
                   "(without any authenticator every caller is an administrator).")
@click.option("--anonymous-auth", type=click.BOOL, default=True, show_default=True,
              help="With authentication on: requests without credentials are system:anonymous (else 401).")
def apiserver(etcd: str, port: int, host: str, etcd_prefix: str, etcd_cacert: str | None,
              etcd_cert: str | None, etcd_key: str | None, bookmark_interval: float, authorization_mode: str,
              token_auth_file: str | None, anonymous_auth: bool) -> None:
    """Serve the Kubernetes-style REST API from etcd."""
    from reconcile.api import authorizers, server

    try:
        authorizers.parse_modes(authorization_mode)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--authorization-mode") from None

    config = server.ApiConfig(
        etcd_endpoints=[e.strip() for e in etcd.split(",") if e.strip()],
        etcd_prefix=etcd_prefix,
        etcd_cacert=etcd_cacert,
        etcd_cert=etcd_cert,
        etcd_key=etcd_key,
        bookmark_interval=bookmark_interval,
        authorization_mode=authorization_mode,
        token_auth_file=token_auth_file,
        anonymous_auth=anonymous_auth,
    )
    server.serve(config, host=host, port=port)
