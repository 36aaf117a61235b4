"""`reconcile node join`: run a node agent against one Docker engine, in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

import click

from reconcile.cli import common


def register(main: click.Group) -> None:
    existing = main.commands.get("node")
    if isinstance(existing, click.Group):  # another module (cordon, drain, ...) owns the group: join it
        existing.add_command(join)
    else:
        main.add_command(node)


@click.group()
def node() -> None:
    """Node agents and node operations."""


@node.command()
@click.option("--name", required=True, help="Node name (the Node object and the Lease are named after it).")
@click.option("--docker-host", default="unix:///var/run/docker.sock", show_default=True,
              help="Docker engine URL (unix://, tcp:// or ssh://).")
@click.option("--state-dir", type=click.Path(path_type=Path), default=None,
              help="Where volumes live (default: $RECONCILE_STATE_DIR/nodes/NAME).")
@click.option("--port", type=int, default=10250, show_default=True, help="The agent's HTTP port (0: any free one).")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="The node's InternalIP: the agent listens there and hostPorts bind there by default.")
@click.option("--pod-cidr", default=None, help="Pod subnet of this node (default: a /24 derived from the name).")
@click.option("--infra-image", default="reconcile-pause:1.0", show_default=True,
              help="Image of each pod's infra container (built locally from busybox when it is the default).")
@click.option("--templates", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Directory with container.json.j2 / infra.json.j2 overriding the shipped templates.")
@click.option("--reserve-cpu", default="0", show_default=True, help="CPU kept from pods (e.g. 100m).")
@click.option("--reserve-memory", default="0", show_default=True, help="Memory kept from pods (e.g. 256Mi).")
@click.option("--lease-interval", type=float, default=10.0, show_default=True, help="Seconds between Lease renewals.")
@click.option("--resync-interval", type=float, default=10.0, show_default=True,
              help="Seconds between full resyncs of the pods (and orphan sweeps).")
@click.option("--stats-interval", type=float, default=15.0, show_default=True,
              help="Seconds between samples of the containers' CPU and memory (what `kubectl top` shows).")
@click.option("--workers", type=int, default=8, show_default=True, help="Pods synced in parallel.")
@click.option("--allowed-host-paths", default="", show_default=False,
              help="Comma-separated host path prefixes that pods of any namespace may mount as hostPath "
                   "(elsewhere hostPath needs a namespace that enforces Pod Security level privileged).")
@click.option("--pod-security-default", type=click.Choice(["privileged", "baseline", "restricted"]),
              default="privileged", show_default=True,
              help="Pod Security level of namespaces without an enforce label, for the node's own checks.")
@click.option("--tls-cert-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="The agent port's serving certificate (default: with --token, one from a kubelet-serving CSR; "
                   "else a self-signed one under the state dir).")
@click.option("--tls-private-key-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="Private key of --tls-cert-file.")
@click.option("--client-ca-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="Clients of the agent port must present a certificate this CA signed; each request is then "
                   "authorized by a SubjectAccessReview (nodes/proxy, ...). Without it anyone may connect.")
@click.option("--healthz-port", type=int, default=None,
              help="Serve /healthz and /readyz over plain HTTP on 127.0.0.1 at this port (0: any free one).")
@click.option("--token", default=None,
              help="A bootstrap token <id>.<secret> (`reconcile token create`): join the cluster at --server, "
                   "getting this node's client certificate through a CertificateSigningRequest.")
@click.option("--ca-hash", default=None,
              help="With --token: sha256:<hex> of the cluster CA's public key (printed by `reconcile up`); the CA "
                   "is trusted only if it matches.")
@click.option("--bootstrap-timeout", type=float, default=300.0, show_default=True,
              help="With --token: seconds to wait for the certificate to be approved and signed.")
@click.option("--rotate-certificates/--no-rotate-certificates", default=True, show_default=True,
              help="With --token: renew the client certificate through a CSR at 70-90% of its lifetime.")
@click.option("--rotate-server-certificates/--no-rotate-server-certificates", default=True, show_default=True,
              help="With --token and no --tls-cert-file: get the agent port's serving certificate through a "
                   "kubernetes.io/kubelet-serving CSR (the port serves nothing until it is signed) and renew it "
                   "at 70-90% of its lifetime; off: a self-signed certificate.")
@click.option("--cluster-dns", default="",
              help="Comma-separated IP addresses of the cluster DNS server (the kubelet's flag): the nameservers of "
                   "dnsPolicy ClusterFirst pods. `reconcile up` passes the address its `reconcile dns` listens on.")
@click.option("--cluster-domain", default="cluster.local", show_default=True,
              help="The cluster's DNS domain: pods search <ns>.svc.DOMAIN svc.DOMAIN DOMAIN.")
@click.option("--resolv-conf", default="/etc/resolv.conf", show_default=True,
              help="The resolver configuration dnsPolicy Default pods get (\"\": nameserver 127.0.0.1).")
@click.option("--proxy-kubeconfig", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Also run this node's service proxy (`reconcile proxy`) in this process, as the identity of "
                   "this kubeconfig (system:kube-proxy); needs root and nft.")
@click.option("--service-cluster-ip-range", "service_cidr", default="10.96.0.0/12", show_default=True,
              help="The service CIDR the proxy guards (with --proxy-kubeconfig).")
@click.option("-v", "--verbose", is_flag=True, help="Log at debug level.")
@common.connection_options
@common.handle_errors
def join(name: str, docker_host: str, state_dir: Path | None, port: int, address: str, pod_cidr: str | None,
         infra_image: str, templates: Path | None, reserve_cpu: str, reserve_memory: str, lease_interval: float,
         resync_interval: float, stats_interval: float, workers: int, allowed_host_paths: str, pod_security_default: str,
         tls_cert_file: Path | None, tls_private_key_file: Path | None, client_ca_file: Path | None,
         healthz_port: int | None, token: str | None, ca_hash: str | None, bootstrap_timeout: float,
         rotate_certificates: bool, rotate_server_certificates: bool, cluster_dns: str, cluster_domain: str, resolv_conf: str,
         proxy_kubeconfig: str | None, service_cidr: str, verbose: bool) -> None:
    """Register this machine's Docker engine as node NAME and run the pods bound to it.

    With --token and --ca-hash (kubeadm's `join`): discover and pin the cluster CA at --server, get a
    client certificate for system:node:NAME with the token, write a kubeconfig (0600) under the
    state dir and run on it; the agent port then accepts only clients of the cluster CA and serves a
    certificate of that CA (a kubernetes.io/kubelet-serving CSR). Both certificates rotate at 70-90%
    of their lifetime without a restart."""
    from reconcile.core import quantities
    from reconcile.node import agent as agent_mod
    from reconcile.node import server as node_server

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns what matters
    session = common.Session()
    server: Any = session.config
    credentials = None
    if token is not None or ca_hash is not None:
        server, credentials = _bootstrap(session.config.server, name, token, ca_hash, state_dir,
                                         timeout=bootstrap_timeout)
        client_ca_file = client_ca_file or credentials.ca
        if not rotate_certificates and not rotate_server_certificates:
            credentials = None
    settings = agent_mod.NodeSettings(
        name=name, docker_host=docker_host, server=server, state_dir=state_dir, port=port, address=address,
        pod_cidr=pod_cidr, infra_image=infra_image, templates=templates,
        reserve_cpu=quantities.parse_cpu_millis(reserve_cpu), reserve_memory=quantities.parse_bytes(reserve_memory),
        lease_interval=lease_interval, resync_interval=resync_interval, stats_interval=stats_interval,
        workers=workers,
        allowed_host_paths=tuple(p.strip() for p in allowed_host_paths.split(",") if p.strip()),
        pod_security_default=pod_security_default,
        tls_cert_file=tls_cert_file, tls_private_key_file=tls_private_key_file, client_ca_file=client_ca_file,
        healthz_port=healthz_port, credentials=credentials, rotate_certificates=rotate_certificates,
        rotate_server_certificates=rotate_server_certificates,
        bootstrap_timeout=bootstrap_timeout,
        cluster_dns=_cluster_dns(cluster_dns), cluster_domain=cluster_domain.strip("."), resolv_conf=resolv_conf,
    )
    proxy_options = None
    if proxy_kubeconfig:
        from reconcile.proxy import proxier

        proxy_options = proxier.Options(node=name, kubeconfig=proxy_kubeconfig, service_cidr=service_cidr)
    node_server.run(_run(agent_mod.Agent(settings), proxy_options))


def _cluster_dns(value: str) -> tuple[str, ...]:
    import ipaddress

    found = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            found.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise click.BadParameter(f"{item!r} is not an IP address", param_hint="--cluster-dns") from None
    return tuple(found)


def _bootstrap(server: str, name: str, token: str | None, ca_hash: str | None, state_dir: Path | None, *,
               timeout: float) -> tuple[Any, Any]:
    from reconcile.core import bootstraptoken
    from reconcile.node import agent as agent_mod
    from reconcile.node import bootstrap

    if not token or not ca_hash:
        raise click.UsageError("--token and --ca-hash go together")
    if bootstraptoken.parse(token) is None:
        raise click.BadParameter("must be <id>.<secret>: [a-z0-9]{6}.[a-z0-9]{16}", param_hint="--token")
    if not server.startswith("https://"):
        raise click.BadParameter("joining needs the API server's https:// URL", param_hint="--server")
    credentials = bootstrap.Credentials(state_dir or agent_mod.default_state_dir(name))
    try:
        asyncio.run(bootstrap.bootstrap(server, token, ca_hash, name, credentials, timeout=timeout))
    except bootstrap.JoinError as exc:
        raise click.ClickException(str(exc)) from None
    return credentials.config(server), credentials


async def _run(agent: object, proxy_options: object | None = None) -> None:
    """The agent until a signal; with `proxy_options`, the node's service proxy beside it (a proxy
    that fails, e.g. on a host that routes the service CIDR, is logged and the agent goes on)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.request_stop)  # type: ignore[attr-defined]
    proxy_task = None
    if proxy_options is not None:
        from reconcile.proxy import proxier

        proxy_task = loop.create_task(proxier.run(proxy_options), name="service-proxy")  # type: ignore[arg-type]
        proxy_task.add_done_callback(_report_proxy_end)
    try:
        await agent.run()  # type: ignore[attr-defined]
    finally:
        if proxy_task is not None:
            proxy_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await proxy_task


def _report_proxy_end(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger(__name__).error("service proxy stopped: %s", task.exception())
