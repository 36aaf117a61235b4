"""`reconcile up`, `down`, `status`: a local control plane as detached background processes.

What runs is recorded in `state.json` in the state dir (component -> pid, port, log, ...),
so every command finds the processes again by pid. Components are data (`COMPONENTS`):
later issues append controller-manager, scheduler and node agent entries.

The cluster is secured as kubeadm's: `up` first makes (or reuses, or renews) a PKI under the state
dir (`identities`), then runs etcd with client and peer TLS and client-certificate authentication
on loopback, the API server on HTTPS only with the client CA (and the only etcd client
certificate), and every component with a kubeconfig of its own identity. The user's kubeconfig
carries the admin certificate (`O=system:masters`). A certificate written anew restarts what runs,
so nothing keeps serving an old one.

The local node agent serves HTTPS with a serving certificate from the cluster CA and accepts only
clients of that CA (the API server's kubelet-client certificate, `--kubelet-client-certificate`),
each request authorized by SubjectAccessReview; its health is read on a plain loopback port
(`--healthz-port`). Its client certificate is issued by `up` directly (renewed by the next `up`),
not through a CSR. For nodes joining from elsewhere, `up` does what `kubeadm init` does: the API
server authenticates bootstrap tokens, the controller-manager signs CSRs with the cluster CA, and
`kube-public/cluster-info` carries the CA for `node join --token --ca-hash`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from reconcile.cli import common, identities, printing, processes

DEFAULT_API_PORT = 6443
READY_TIMEOUT = 60.0
STATE_FILE = "state.json"


class StartError(Exception):
    """A component did not come up; the message carries its log tail."""


@dataclass
class UpContext:
    """What later components need from earlier ones."""

    state_dir: Path
    api_port: int
    etcd_url: str | None = None  # requested external etcd (None: embedded)
    etcd_endpoint: str = ""  # the etcd actually in use
    etcd_tls: bool = False  # the etcd in use wants the API server's etcd client certificate
    server: str = ""  # the API server URL
    advertise: tuple[str, ...] = ()  # addresses the API server is reached at besides loopback (SANs)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Component:
    """One process `up` runs. `start` returns its state entry; `healthy` checks an entry."""

    name: str
    start: Callable[[UpContext], dict[str, Any]]
    healthy: Callable[[dict[str, Any]], bool]
    adopt: Callable[[UpContext, dict[str, Any]], None]  # feed a running entry's facts into the context
    matches: Callable[[UpContext, dict[str, Any]], bool]  # does the running entry fit what was asked?
    optional: bool = False  # a start that fails is a warning, and `up` goes on without it


# --- etcd -----------------------------------------------------------------------------------


def _etcd_start(ctx: UpContext) -> dict[str, Any]:
    from reconcile.etcdserver import embedded

    if ctx.etcd_url:
        if not embedded.healthy(ctx.etcd_url):
            raise StartError(f"etcd at {ctx.etcd_url} is not healthy")
        ctx.etcd_endpoint = ctx.etcd_url
        return {"external": True, "endpoint": ctx.etcd_url}
    data_dir = ctx.state_dir / "etcd"
    log = embedded.log_path(data_dir)
    try:
        started = embedded.start_detached(data_dir, tls=identities.etcd_tls(ctx.state_dir))
    except (RuntimeError, OSError) as exc:
        raise StartError(f"etcd did not start: {exc}") from None
    ctx.etcd_endpoint, ctx.etcd_tls = started.endpoint, True
    return {"pid": started.pid, "started": processes.start_time(started.pid),
            "port": int(started.endpoint.rsplit(":", 1)[1]), "endpoint": started.endpoint, "tls": True,
            "health": started.health, "log": str(log), "data_dir": str(data_dir)}


def _etcd_healthy(entry: dict[str, Any]) -> bool:
    from reconcile.etcdserver import embedded

    if not entry.get("external") and not processes.alive(entry.get("pid"), started=entry.get("started")):
        return False
    return embedded.healthy(entry.get("health") or entry.get("endpoint", ""))


def _etcd_adopt(ctx: UpContext, entry: dict[str, Any]) -> None:
    ctx.etcd_endpoint, ctx.etcd_tls = entry["endpoint"], bool(entry.get("tls"))


def _etcd_matches(ctx: UpContext, entry: dict[str, Any]) -> bool:
    if ctx.etcd_url:
        return bool(entry.get("external")) and entry.get("endpoint") == ctx.etcd_url
    return not entry.get("external") and bool(entry.get("tls"))  # one started before TLS is replaced


# --- API server -----------------------------------------------------------------------------


def _apiserver_start(ctx: UpContext) -> dict[str, Any]:
    if not processes.port_free(ctx.api_port):
        raise StartError(f"port {ctx.api_port} is in use; pick another with --api-port")
    log = ctx.state_dir / "apiserver.log"
    argv = [sys.executable, "-m", "reconcile", "apiserver", "--etcd", ctx.etcd_endpoint,
            "--port", str(ctx.api_port), "--etcd-prefix", "/registry", *identities.apiserver_tls_args(ctx.state_dir),
            *_apiserver_args(ctx)]
    if ctx.etcd_tls:
        argv += identities.apiserver_etcd_args(ctx.state_dir)
    if ctx.advertise:
        argv += ["--host", "0.0.0.0"]  # reached at the advertised addresses too (upstream's default bind)
    pid = processes.spawn(argv, log=log)
    url = f"https://127.0.0.1:{ctx.api_port}"
    entry = {"pid": pid, "started": processes.start_time(pid), "port": ctx.api_port, "url": url, "log": str(log),
             "tls": True, "ca": str(identities.ca_file(ctx.state_dir)), "advertise": list(ctx.advertise),
             "args": _apiserver_args(ctx)}
    _wait_ready(entry, url + "/readyz", what="API server", cafile=entry["ca"])
    ctx.server = url
    return entry


def _wait_ready(entry: dict[str, Any], url: str, *, what: str, cafile: str | None = None) -> None:
    """Until `url` answers 200, the process dies, or the deadline passes (then: log tail)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if not processes.alive(entry["pid"], started=entry.get("started")):
            raise StartError(f"{what} exited; log {entry['log']}:\n{processes.log_tail(entry['log'])}")
        if processes.http_ok(url, cafile=cafile):
            return
        time.sleep(0.1)  # readiness of a foreign process: poll with a deadline
    processes.stop(entry["pid"], started=entry.get("started"))
    raise StartError(f"{what} not ready after {READY_TIMEOUT:.0f}s; log {entry['log']}:\n"
                     f"{processes.log_tail(entry['log'])}")


def _apiserver_healthy(entry: dict[str, Any]) -> bool:
    return processes.alive(entry.get("pid"), started=entry.get("started")) and \
        processes.http_ok(entry["url"] + "/readyz", cafile=entry.get("ca"))


def _apiserver_adopt(ctx: UpContext, entry: dict[str, Any]) -> None:
    ctx.server = entry["url"]


def _apiserver_matches(ctx: UpContext, entry: dict[str, Any]) -> bool:
    return (int(entry.get("port", 0)) == ctx.api_port and bool(entry.get("tls"))
            and entry.get("advertise", []) == list(ctx.advertise) and entry.get("args", []) == _apiserver_args(ctx))


# The secured default, as kubeadm runs kube-apiserver: the Node authorizer for node agents, then RBAC
# (system:masters, the admin's group, is allowed everything; each component gets what the default
# policy grants its identity), anonymous requests are `system:anonymous` so that `system:public-info-viewer` answers /healthz,
# /readyz, /livez and /version (anything else from an anonymous caller is 401), and the `default`
# namespace enforces Pod Security `baseline` (kube-system `privileged`).
SECURED_ARGS = ("--authorization-mode", "Node,RBAC", "--anonymous-auth", "true",
                "--initial-namespaces-pod-security")


SERVICE_CIDR = "10.96.0.0/12"  # --service-cluster-ip-range of the API server and the proxies (upstream's default)


def _apiserver_args(ctx: UpContext) -> list[str]:
    """The secured default, then audit and encryption flags (`up --audit`, `--encrypt-secrets`; see
    apiserver_files). Recorded in the state, so a server started with other flags is replaced."""
    from reconcile.cli import apiserver_files

    args = [*SECURED_ARGS, "--service-cluster-ip-range", SERVICE_CIDR]  # the range the proxies guard
    args += apiserver_files.encryption_args(ctx.state_dir, create=bool(ctx.extra.get("encrypt_secrets")))
    if ctx.extra.get("audit"):
        args += apiserver_files.audit_args(ctx.state_dir)
    return args


# --- controller-manager -----------------------------------------------------------------------


def _controller_manager_start(ctx: UpContext) -> dict[str, Any]:
    health_port = _free_port()
    log = ctx.state_dir / "controller-manager.log"
    kubeconfig = identities.controller_manager_kubeconfig(ctx.state_dir, ctx.server)
    argv = [sys.executable, "-m", "reconcile", "controller-manager", "--kubeconfig", str(kubeconfig),
            "--health-port", str(health_port), *identities.controller_manager_args(ctx.state_dir),
            *identities.controller_manager_signing_args(ctx.state_dir)]
    pid = processes.spawn(argv, log=log, env=OWN_IDENTITY)
    entry = {"pid": pid, "started": processes.start_time(pid), "server": ctx.server, "log": str(log),
             "url": f"http://127.0.0.1:{health_port}", "health": f"http://127.0.0.1:{health_port}/healthz"}
    _wait_ready(entry, entry["health"], what="controller-manager")
    return entry


# A component's kubeconfig is its identity: a $RECONCILE_SERVER of the user's shell (which beats a
# kubeconfig argument) must not send it elsewhere without credentials.
OWN_IDENTITY = {"RECONCILE_SERVER": ""}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _controller_manager_healthy(entry: dict[str, Any]) -> bool:
    return processes.alive(entry.get("pid"), started=entry.get("started")) and \
        processes.http_ok(entry.get("health", ""))


def _controller_manager_adopt(ctx: UpContext, entry: dict[str, Any]) -> None:
    """Nothing later depends on it."""


def _controller_manager_matches(ctx: UpContext, entry: dict[str, Any]) -> bool:
    return entry.get("server") == ctx.server


# --- scheduler --------------------------------------------------------------------------------


def _scheduler_start(ctx: UpContext) -> dict[str, Any]:
    health_port = _free_port()
    log = ctx.state_dir / "scheduler.log"
    kubeconfig = identities.scheduler_kubeconfig(ctx.state_dir, ctx.server)
    argv = [sys.executable, "-m", "reconcile", "scheduler", "--kubeconfig", str(kubeconfig),
            "--health-port", str(health_port)]
    pid = processes.spawn(argv, log=log, env=OWN_IDENTITY)
    entry = {"pid": pid, "started": processes.start_time(pid), "server": ctx.server, "log": str(log),
             "url": f"http://127.0.0.1:{health_port}", "health": f"http://127.0.0.1:{health_port}/healthz"}
    _wait_ready(entry, entry["health"], what="scheduler")
    return entry


def _gitops_start(ctx: UpContext) -> dict[str, Any]:
    """`reconcile gitops controller` (GitRepositories fetched, Syncs applied) as system:gitops-controller."""
    health_port = _free_port()
    log = ctx.state_dir / "gitops.log"
    kubeconfig = identities.gitops_kubeconfig(ctx.state_dir, ctx.server)
    argv = [sys.executable, "-m", "reconcile", "gitops", "controller", "--kubeconfig", str(kubeconfig),
            "--state-dir", str(ctx.state_dir / "gitops"), "--health-port", str(health_port)]
    pid = processes.spawn(argv, log=log, env=OWN_IDENTITY)
    entry = {"pid": pid, "started": processes.start_time(pid), "server": ctx.server, "log": str(log),
             "url": f"http://127.0.0.1:{health_port}", "health": f"http://127.0.0.1:{health_port}/healthz"}
    _wait_ready(entry, entry["health"], what="gitops controllers")
    return entry


# --- node agent on the local Docker engine -----------------------------------------------------

NO_DOCKER_HELP = ("Start one, then run `reconcile up` again:\n"
                  "  sudo scripts/ensure-docker.sh   (from the source tree: installs Debian's docker.io and "
                  "busybox-static if missing, starts dockerd in the background)\n"
                  "  or: sudo dockerd &")


def docker_host() -> str:
    """The local engine: $DOCKER_HOST, else the default socket."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def local_node_name() -> str:
    """$RECONCILE_NODE_NAME, else the host name, as a valid node name (lowercase DNS subdomain).

    The override lets a second local cluster share the engine: an agent owns (and removes as
    orphans) every container labelled with its node name, so two agents must never share one.
    """
    import re
    import socket

    raw = os.environ.get("RECONCILE_NODE_NAME") or socket.gethostname()
    name = re.sub(r"[^a-z0-9.-]+", "-", raw.lower()).strip("-.")
    return name[:63] or "localhost"


def prepare_engine(host: str) -> None:
    """Check that the engine answers, then build the local images pods here use (no registry is reachable)."""
    import asyncio

    from reconcile.node import docker, images

    async def prepare() -> None:
        runtime = docker.DockerRuntime(host)
        try:
            await runtime.info()
            for tag, dockerfile in ((images.PAUSE_IMAGE, images.PAUSE_DOCKERFILE),
                                    (images.HELLO_IMAGE, images.HELLO_DOCKERFILE)):
                if not await runtime.image_present(tag):
                    await images.build(runtime, tag, dockerfile)
        finally:
            await runtime.close()

    try:
        asyncio.run(prepare())
    except docker.DockerError as exc:
        raise StartError(f"no Docker engine answers at {host} ({exc}).\n{NO_DOCKER_HELP}") from None
    except FileNotFoundError as exc:  # no static busybox to build the images from
        raise StartError(f"cannot build the local images: {exc}") from None


def cluster_dns_address(node: str) -> str:
    """Where `up`'s cluster DNS listens and what its node agent gives pods as nameserver: the node's
    pod bridge gateway (the first address of its pod CIDR), an address of this host that every pod on
    the node reaches. Upstream gives the DNS Service the cluster IP 10.96.0.10; until the service
    proxy translates cluster IPs, pods ask the server at this address directly."""
    import ipaddress

    from reconcile.node import agent as agent_mod

    return str(next(ipaddress.ip_network(agent_mod.default_pod_cidr(node)).hosts()))


def _node_dns_args(ctx: UpContext, name: str) -> list[str]:
    """The kube-dns Service's cluster IP once a service proxy runs here to translate it (pods then
    find DNS as on upstream clusters); without one, the DNS server's own address."""
    if not ctx.extra.get("cluster_dns", True):
        return []
    if ctx.extra.get("proxy"):
        from reconcile.cli import dnsservice

        return ["--cluster-dns", dnsservice.cluster_ip(SERVICE_CIDR)]
    return ["--cluster-dns", cluster_dns_address(name)]


def _node_start(ctx: UpContext) -> dict[str, Any]:
    host = docker_host()
    prepare_engine(host)
    name = local_node_name()
    port, health_port = _free_port(), _free_port()
    log = ctx.state_dir / "node.log"
    kubeconfig = identities.node_kubeconfig(ctx.state_dir, name, ctx.server)
    argv = [sys.executable, "-m", "reconcile", "node", "join", "--name", name, "--docker-host", host,
            "--kubeconfig", str(kubeconfig), "--state-dir", str(ctx.state_dir / "nodes" / name), "--port", str(port),
            "--healthz-port", str(health_port), *identities.node_tls_args(ctx.state_dir, name),
            *_node_dns_args(ctx, name)]
    pid = processes.spawn(argv, log=log, env=OWN_IDENTITY)
    entry = {"pid": pid, "started": processes.start_time(pid), "server": ctx.server, "log": str(log), "node": name,
             "docker_host": host, "url": f"https://127.0.0.1:{port}", "tls": True,
             "dns_args": _node_dns_args(ctx, name),
             "health": f"http://127.0.0.1:{health_port}/healthz"}
    _wait_ready(entry, entry["health"], what=f"node agent {name}")
    return entry


def _node_matches(ctx: UpContext, entry: dict[str, Any]) -> bool:
    return (entry.get("server") == ctx.server and entry.get("docker_host") == docker_host()
            and entry.get("node") == local_node_name() and bool(entry.get("tls"))  # a plain-HTTP agent is replaced
            and entry.get("dns_args", []) == _node_dns_args(ctx, local_node_name()))


# --- cluster DNS --------------------------------------------------------------------------------

DNS_PORT = 53  # resolv.conf names no port


def _dns_start(ctx: UpContext) -> dict[str, Any]:
    if not ctx.extra.get("cluster_dns", True):
        return {"disabled": True}
    address = cluster_dns_address(local_node_name())
    log = ctx.state_dir / "dns.log"
    kubeconfig = identities.dns_kubeconfig(ctx.state_dir, ctx.server)
    argv = [sys.executable, "-m", "reconcile", "dns", "--kubeconfig", str(kubeconfig),
            "--listen", f"{address}:{DNS_PORT}"]
    pid = processes.spawn(argv, log=log, env=OWN_IDENTITY)
    entry = {"pid": pid, "started": processes.start_time(pid), "server": ctx.server, "log": str(log),
             "address": address, "port": DNS_PORT, "url": f"dns://{address}:{DNS_PORT}"}
    deadline = time.monotonic() + READY_TIMEOUT
    while not _dns_healthy(entry):
        if not processes.alive(pid, started=entry["started"]):
            raise StartError(f"cluster DNS exited (it binds port {DNS_PORT} on {address}: root, or "
                             f"CAP_NET_BIND_SERVICE, is needed; `up --no-cluster-dns` goes without); "
                             f"log {log}:\n{processes.log_tail(str(log))}")
        if time.monotonic() > deadline:
            processes.stop(pid, started=entry["started"])
            raise StartError(f"cluster DNS not ready after {READY_TIMEOUT:.0f}s; log {log}:\n"
                             f"{processes.log_tail(str(log))}")
        time.sleep(0.1)  # readiness of a foreign process: poll with a deadline
    return entry


def _dns_healthy(entry: dict[str, Any]) -> bool:
    if entry.get("disabled"):
        return True
    from reconcile.dns import wire

    return processes.alive(entry.get("pid"), started=entry.get("started")) and \
        wire.ready(entry["address"], int(entry["port"]))


def _dns_matches(ctx: UpContext, entry: dict[str, Any]) -> bool:
    if not ctx.extra.get("cluster_dns", True):
        return bool(entry.get("disabled"))
    return entry.get("server") == ctx.server and entry.get("address") == cluster_dns_address(local_node_name())


# --- service proxy of the local node ----------------------------------------------------------


def _proxy_start(ctx: UpContext) -> dict[str, Any]:
    """`reconcile proxy` for the local node as system:kube-proxy. It programs the host's netfilter,
    so it needs root and Debian's nftables; without them `up` goes on without Services' cluster IPs."""
    if os.geteuid() != 0 or shutil.which("nft") is None:
        raise StartError("not started: the service proxy needs root and `nft` (apt-get install nftables); "
                         "cluster IPs and node ports will not answer on this host")
    name = local_node_name()
    health_port = _free_port()
    log = ctx.state_dir / "proxy.log"
    kubeconfig = identities.proxy_kubeconfig(ctx.state_dir, ctx.server)
    argv = [sys.executable, "-m", "reconcile", "proxy", "--kubeconfig", str(kubeconfig), "--node", name,
            "--service-cluster-ip-range", SERVICE_CIDR, "--health-port", str(health_port)]
    pid = processes.spawn(argv, log=log, env=OWN_IDENTITY)
    entry = {"pid": pid, "started": processes.start_time(pid), "server": ctx.server, "log": str(log), "node": name,
             "url": f"http://127.0.0.1:{health_port}", "health": f"http://127.0.0.1:{health_port}/healthz"}
    _wait_ready(entry, entry["health"], what=f"service proxy of {name}")
    ctx.extra["proxy"] = True
    return entry


def _proxy_adopt(ctx: UpContext, entry: dict[str, Any]) -> None:
    ctx.extra["proxy"] = True


def _proxy_matches(ctx: UpContext, entry: dict[str, Any]) -> bool:
    return entry.get("server") == ctx.server and entry.get("node") == local_node_name()


def remove_proxy_rules(node: str) -> list[str]:
    """The local node's nft table, its iptables accept rule, and the service route once no table is left."""
    from reconcile.proxy import netfilter

    try:
        return netfilter.cleanup(node)
    except netfilter.NetfilterError as exc:
        click.echo(f"warning: {exc}", err=True)
        return []


COMPONENTS: list[Component] = [
    Component("etcd", _etcd_start, _etcd_healthy, _etcd_adopt, _etcd_matches),
    Component("apiserver", _apiserver_start, _apiserver_healthy, _apiserver_adopt, _apiserver_matches),
    Component("controller-manager", _controller_manager_start, _controller_manager_healthy,
              _controller_manager_adopt, _controller_manager_matches),
    Component("scheduler", _scheduler_start, _controller_manager_healthy, _controller_manager_adopt,
              _controller_manager_matches),
    Component("gitops", _gitops_start, _controller_manager_healthy, _controller_manager_adopt,
              _controller_manager_matches),
    # the proxy before the node agent: whether it runs decides the agent's --cluster-dns
    Component("proxy", _proxy_start, _controller_manager_healthy, _proxy_adopt, _proxy_matches,
              optional=True),
    Component("node", _node_start, _controller_manager_healthy, _controller_manager_adopt, _node_matches),
    Component("dns", _dns_start, _dns_healthy, _controller_manager_adopt, _dns_matches),
]


# --- state ------------------------------------------------------------------------------------


def default_state_dir() -> Path:
    env = os.environ.get("RECONCILE_STATE_DIR")
    return Path(env) if env else Path.home() / ".local" / "share" / "reconcile"


def load_state(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {"components": {}}
    data.setdefault("components", {})
    return data


def save_state(state_dir: Path, state: dict[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(state_dir / STATE_FILE)


def _stop_entry(entry: dict[str, Any]) -> bool:
    pid = entry.get("pid")
    return bool(pid) and processes.stop(int(pid), started=entry.get("started"))


# --- commands ----------------------------------------------------------------------------------

_state_dir_option = click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where pid files, logs, data and the kubeconfig live (default ~/.local/share/reconcile, "
         "or $RECONCILE_STATE_DIR).")


def register(main: click.Group) -> None:
    for command in (up, down, status):
        main.add_command(command)


@click.command()
@_state_dir_option
@click.option("--api-port", type=int, default=None, help=f"API server port (default {DEFAULT_API_PORT}).")
@click.option("--etcd", "etcd_url", default=None,
              help="Use this etcd (plain HTTP) instead of starting an embedded one with TLS.")
@click.option("--advertise-address", "advertise", multiple=True,
              help="An address (IP or DNS name) the API server is reached at besides loopback: added to its "
                   "certificate, and the server then listens on every interface. Repeatable; a later `up` "
                   "without it keeps the addresses of the running one.")
@click.option("--audit", is_flag=True,
              help="Audit every request to <state dir>/audit.log (rotated) under the default policy, written "
                   "to <state dir>/audit-policy.yaml the first time (edit it to taste).")
@click.option("--encrypt-secrets", is_flag=True,
              help="Encrypt Secrets in etcd with AES-GCM: the first time, a key is made into "
                   "<state dir>/encryption-config.yaml (0600); once that file exists it is always used.")
@click.option("--cluster-dns/--no-cluster-dns", "cluster_dns", default=True, show_default=True,
              help="Run `reconcile dns` on the node's pod bridge gateway, port 53 (root or CAP_NET_BIND_SERVICE), "
                   "and give pods that nameserver (the node agent's --cluster-dns).")
@common.handle_errors
def up(state_dir: Path | None, api_port: int | None, etcd_url: str | None, advertise: tuple[str, ...],
       audit: bool, encrypt_secrets: bool, cluster_dns: bool) -> None:
    """Start a local control plane in the background (idempotent)."""
    state_dir = (state_dir or default_state_dir()).expanduser().resolve()
    state = load_state(state_dir)
    recorded = state["components"]
    port = api_port or int((recorded.get("apiserver") or {}).get("port") or DEFAULT_API_PORT)
    advertise = advertise or tuple((recorded.get("apiserver") or {}).get("advertise") or ())
    ctx = UpContext(state_dir=state_dir, api_port=port, etcd_url=etcd_url, advertise=advertise,
                    extra={"audit": audit, "encrypt_secrets": encrypt_secrets, "cluster_dns": cluster_dns})
    written = identities.ensure(state_dir, hosts=advertise, nodes=[local_node_name()])
    pki_dir = identities.pki(state_dir).root
    click.echo(f"{'pki':<12} " + (f"issued {len(written)} certificates in {pki_dir}" if written
                                  else f"reused {pki_dir}"))
    restart = bool(written)  # whatever runs holds a certificate that was just replaced
    for comp in COMPONENTS:
        entry = recorded.get(comp.name)
        if entry and not restart and comp.matches(ctx, entry) and comp.healthy(entry):
            comp.adopt(ctx, entry)
            click.echo(f"{comp.name:<12} already running{_describe(entry)}")
            continue
        if entry:
            _stop_entry(entry)
            recorded.pop(comp.name, None)
            save_state(state_dir, state)
        try:
            entry = comp.start(ctx)
        except StartError as exc:
            if comp.optional:
                click.echo(f"{comp.name:<12} {exc}", err=True)
                continue
            common.fail(str(exc))
            return
        recorded[comp.name] = entry
        save_state(state_dir, state)
        restart = True  # later components depend on this one's address
        click.echo(f"{comp.name:<12} started{_describe(entry)}")
    kubeconfig = state_dir / "kubeconfig"
    identities.admin_kubeconfig(state_dir, kubeconfig, ctx.server)
    ca_hash = identities.pki(state_dir).ca_hash()  # what a node joining from elsewhere pins the CA by
    _publish_cluster_info(kubeconfig, ctx.server, identities.ca_file(state_dir).read_bytes())
    if cluster_dns:
        _publish_dns_service(kubeconfig, proxied=bool(ctx.extra.get("proxy")))
    state["server"], state["kubeconfig"], state["ca_hash"] = ctx.server, str(kubeconfig), ca_hash
    save_state(state_dir, state)
    click.echo(f"\nAPI server: {ctx.server}\nCluster CA: {identities.ca_file(state_dir)} ({ca_hash})\n\nTo use it:\n  export KUBECONFIG={kubeconfig}\n  reconcile get ns\n"
               f"\nStop it with: reconcile down" + ("" if state_dir == default_state_dir()
                                                    else f" --state-dir {state_dir}"))


def _publish_cluster_info(kubeconfig: Path, server: str, ca_pem: bytes) -> None:
    """kube-public/cluster-info, where `node join --token --ca-hash` finds the CA (as `kubeadm init`)."""
    from reconcile.cli import clusterinfo
    from reconcile.client import api as client_api
    from reconcile.client import config as client_config
    from reconcile.core import errors

    try:
        with client_api.Client(client_config.load_config(kubeconfig=str(kubeconfig))) as client:
            clusterinfo.publish(client, server, ca_pem)
    except errors.ApiError as exc:
        click.echo(f"warning: could not publish kube-public/cluster-info ({exc.message}): node join will not "
                   "discover this cluster", err=True)


def _publish_dns_service(kubeconfig: Path, *, proxied: bool) -> None:
    """kube-system/kube-dns with Endpoints to the DNS server; with a proxy, wait until its cluster IP answers."""
    from reconcile.cli import dnsservice
    from reconcile.client import api as client_api
    from reconcile.client import config as client_config
    from reconcile.core import errors
    from reconcile.dns import wire

    ip = dnsservice.cluster_ip(SERVICE_CIDR)
    try:
        with client_api.Client(client_config.load_config(kubeconfig=str(kubeconfig))) as client:
            dnsservice.publish(client, ip, cluster_dns_address(local_node_name()))
    except errors.ApiError as exc:
        click.echo(f"warning: could not write {dnsservice.NAMESPACE}/{dnsservice.NAME} ({exc.message})", err=True)
        return
    if not proxied:
        return
    deadline = time.monotonic() + READY_TIMEOUT / 2
    while not wire.ready(ip, DNS_PORT):
        if time.monotonic() > deadline:
            click.echo(f"warning: cluster DNS does not answer at {ip} (the kube-dns Service) yet; "
                       "see proxy.log and controller-manager.log", err=True)
            return
        time.sleep(0.2)  # the mirroring controller and the proxy are other processes: poll with a deadline
    click.echo(f"{'kube-dns':<12} {dnsservice.NAMESPACE}/{dnsservice.NAME} answers at {ip}")


def _describe(entry: dict[str, Any]) -> str:
    parts = []
    if entry.get("pid"):
        parts.append(f"pid {entry['pid']}")
    if entry.get("url") or entry.get("endpoint"):
        parts.append(entry.get("url") or entry.get("endpoint"))
    if entry.get("external"):
        parts.append("external")
    if entry.get("log"):
        parts.append(f"log {entry['log']}")
    return (": " + ", ".join(parts)) if parts else ""


@click.command()
@_state_dir_option
@click.option("--remove-containers", is_flag=True,
              help="Also remove the pods' containers and network of the local node (by default they keep "
                   "running, as pods do when a kubelet stops, and the next `up` adopts them).")
@common.handle_errors
def down(state_dir: Path | None, remove_containers: bool) -> None:
    """Stop what `reconcile up` started (data and kubeconfig stay)."""
    state_dir = (state_dir or default_state_dir()).expanduser().resolve()
    state = load_state(state_dir)
    recorded = state["components"]
    if not recorded:
        click.echo(f"nothing is running (no state in {state_dir})")
        return
    node_entry = dict(recorded.get("node") or {})
    names = [c.name for c in COMPONENTS] + [n for n in recorded if n not in {c.name for c in COMPONENTS}]
    for name in reversed(names):
        entry = recorded.get(name)
        if not entry:
            continue
        if entry.get("external"):
            click.echo(f"{name:<12} external, left running")
        elif _stop_entry(entry):
            click.echo(f"{name:<12} stopped (pid {entry.get('pid')})")
        else:
            click.echo(f"{name:<12} was not running")
        recorded.pop(name, None)
        save_state(state_dir, state)
    if node_entry.get("node") and not node_entry.get("external"):
        if remove_containers:
            count = _remove_node_containers(node_entry.get("docker_host") or docker_host(), node_entry["node"])
            click.echo(f"{'containers':<12} removed {count} of node {node_entry['node']}")
            if os.geteuid() == 0 and shutil.which("nft"):
                removed = remove_proxy_rules(node_entry["node"])
                click.echo(f"{'proxy rules':<12} removed {', '.join(removed) or 'nothing left'}")
        else:
            click.echo("pod containers keep running; `reconcile up` adopts them, "
                       "`reconcile down --remove-containers` removes them")


def _remove_node_containers(host: str, node: str) -> int:
    """Remove every container the local node agent made, and its pod network."""
    import asyncio
    import contextlib

    from reconcile.node import agent, containers
    from reconcile.node import docker as node_docker

    async def remove() -> int:
        runtime = node_docker.DockerRuntime(host)
        try:
            found = await runtime.list(labels={containers.LABEL_NODE: node})
            await asyncio.gather(*(runtime.remove(c["Id"], force=True) for c in found))
            with contextlib.suppress(Exception):
                await runtime.remove_network(agent.network_name(node))
            return len(found)
        finally:
            await runtime.close()

    return asyncio.run(remove())


@click.command()
@_state_dir_option
@common.handle_errors
def status(state_dir: Path | None) -> None:
    """Show each component of the local control plane: pid, alive, healthy."""
    state_dir = (state_dir or default_state_dir()).expanduser().resolve()
    recorded = load_state(state_dir)["components"]
    if not recorded:
        click.echo(f"nothing is running (no state in {state_dir}); start it with `reconcile up`")
        return
    rows, all_ok = [], True
    for comp in COMPONENTS:
        entry = recorded.get(comp.name)
        if entry is None:
            rows.append([comp.name, "", "false", "false", "", ""])
            all_ok = all_ok and comp.optional  # an optional component `up` could not start is no failure
            continue
        is_alive = bool(entry.get("external")) or processes.alive(entry.get("pid"), started=entry.get("started"))
        healthy = is_alive and comp.healthy(entry)
        all_ok = all_ok and healthy
        rows.append([comp.name, str(entry.get("pid") or "-"), str(is_alive).lower(), str(healthy).lower(),
                     str(entry.get("url") or entry.get("endpoint") or ""), str(entry.get("log") or "")])
    printing.render_table(["COMPONENT", "PID", "ALIVE", "HEALTHY", "ENDPOINT", "LOG"], rows)
    if not all_ok:
        raise click.exceptions.Exit(1)
