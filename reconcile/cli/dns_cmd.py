"""`reconcile dns`: the cluster DNS server (CoreDNS's kubernetes plugin's answers), in the foreground."""

from __future__ import annotations

import ipaddress
import logging

import click

from reconcile.cli import common


def register(main: click.Group) -> None:
    main.add_command(dns)


def parse_address(value: str, *, default_port: int) -> tuple[str, int]:
    """`HOST`, `HOST:PORT`, `[V6]:PORT` or `V6` -> (host, port); a clear error for anything else."""
    host, port = value, default_port
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise click.BadParameter(f"{value!r} is not ADDR or ADDR:PORT")
        if rest:
            port = _port(rest[1:], value)
    elif value.count(":") == 1:
        host, _, text = value.partition(":")
        port = _port(text, value)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise click.BadParameter(f"{value!r}: {host!r} is not an IP address") from None
    return host, port


def _port(text: str, value: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise click.BadParameter(f"{value!r}: the port must be a number from 0 to 65535")
    return int(text)


@click.command("dns")
@click.option("--server", "server_url", default=None, help="API server URL (default: $RECONCILE_SERVER, then kubeconfig).")
@click.option("--kubeconfig", default=None, type=click.Path(dir_okay=False),
              help="kubeconfig with the server, its CA and this component's client certificate "
                   "(`reconcile up` writes kubeconfigs/coredns.kubeconfig).")
@click.option("--listen", default="127.0.0.1:53", show_default=True,
              help="ADDR:PORT to serve on, UDP and TCP (port 0: any free port, logged with -v).")
@click.option("--cluster-domain", default="cluster.local", show_default=True,
              help="The zone served (the node agents' --cluster-domain).")
@click.option("--ttl", type=click.IntRange(0, 3600), default=5, show_default=True,
              help="TTL of the answers and the SOA minimum (CoreDNS's kubernetes plugin default; kubeadm sets 30).")
@click.option("--pods", type=click.Choice(["disabled", "insecure", "verified"]), default="insecure", show_default=True,
              help="a-b-c-d.NS.pod.ZONE records: none, any IP in an existing namespace (kubeadm's Corefile), "
                   "or only IPs of existing pods.")
@click.option("--upstream", default=None,
              help="ADDR[:PORT] to forward names outside the cluster domain to (default: none, they are REFUSED).")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def dns(server_url: str | None, kubeconfig: str | None, listen: str, cluster_domain: str, ttl: int, pods: str,
        upstream: str | None, verbose: bool) -> None:
    """Answer DNS queries for Services and pods from the API server's Services, EndpointSlices and Namespaces."""
    from reconcile.dns import app, wire

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, port = parse_address(listen, default_port=53)
    forward = None
    if upstream:
        up_host, up_port = parse_address(upstream, default_port=53)
        forward = wire.Upstream(up_host, up_port)
    if not cluster_domain.strip("."):
        raise click.BadParameter("must not be empty", param_hint="--cluster-domain")
    if server_url is None:
        server_url = common.group_server()
    options = app.Options(server=server_url, kubeconfig=kubeconfig, host=host, port=port, zone=cluster_domain,
                          ttl=ttl, pods=pods, upstream=forward)
    common.run_component(lambda: app.run(options))
