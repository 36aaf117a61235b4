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
@click.option("--tls-cert-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Serving certificate (PEM). When given, the server speaks HTTPS only.")
@click.option("--tls-private-key-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Private key of --tls-cert-file.")
@click.option("--client-ca-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="CA bundle: a client certificate it signed authenticates as CN (user) and O (groups). "
                   "Requests without one are anonymous (only health and version are answered).")
@click.option("--bookmark-interval", type=float, default=30.0, show_default=True,
              help="Seconds between BOOKMARK events on idle watches that allow them.")
@click.option("--admission-control-config-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="An AdmissionConfiguration file (PodSecurity defaults and exemptions).")
@click.option("--initial-namespaces-pod-security/--no-initial-namespaces-pod-security", default=False,
              show_default=True,
              help="Create the initial namespaces with Pod Security labels: default enforces baseline, "
                   "kube-system privileged.")
def apiserver(etcd: str, port: int, host: str, etcd_prefix: str, etcd_cacert: str | None,
              etcd_cert: str | None, etcd_key: str | None, tls_cert_file: str | None,
              tls_private_key_file: str | None, client_ca_file: str | None, bookmark_interval: float,
              admission_control_config_file: str | None, initial_namespaces_pod_security: bool) -> None:
    """Serve the Kubernetes-style REST API from etcd."""
    from reconcile.api import server

    if bool(tls_cert_file) != bool(tls_private_key_file):
        raise click.UsageError("--tls-cert-file and --tls-private-key-file go together")
    if client_ca_file and not tls_cert_file:
        raise click.UsageError("--client-ca-file needs --tls-cert-file: client certificates come over TLS")
    config = server.ApiConfig(
        etcd_endpoints=[e.strip() for e in etcd.split(",") if e.strip()],
        etcd_prefix=etcd_prefix,
        etcd_cacert=etcd_cacert,
        etcd_cert=etcd_cert,
        etcd_key=etcd_key,
        tls_cert_file=tls_cert_file,
        tls_private_key_file=tls_private_key_file,
        client_ca_file=client_ca_file,
        bookmark_interval=bookmark_interval,
        admission_config_file=admission_control_config_file,
        pod_security_initial_labels=initial_namespaces_pod_security,
    )
    server.serve(config, host=host, port=port)
