"""The act step: the host's netfilter and routes, through the `nft`, `iptables` and `ip` commands.

Thin on purpose (render.py decides what the rules are). What this module guarantees:
- `apply` is one `nft -f` transaction: the kernel takes all of it or none of it;
- `guard_service_cidr` routes the whole service CIDR to a port-less bridge of ours (`rcsvc0`) before
  anything is programmed, so a packet to an unallocated or not-yet-programmed cluster IP is
  dropped on this host and never follows the default route. An `unreachable`/`blackhole` route
  would do that too, but it also fails the host's own connect() to a cluster IP before netfilter
  ever sees the packet (the route lookup comes first); a dummy device keeps the route lookup
  succeeding and swallows whatever no DNAT rule rewrote (kube-proxy's IPVS mode does the same
  with its kube-ipvs0 dummy device; a bridge without ports is used because not every kernel has
  the dummy driver, and it drops what it is given just the same: no port, no neighbour). The
  route stays while any `reconcile-proxy-*` table exists;
- `check_overlaps` refuses a service CIDR or pod CIDR that overlaps a route the host already has;
- `allow_pod_forwarding` puts ONE accept rule (commented with our node) into iptables' DOCKER-USER
  (or FORWARD) for packets our table marked as pod-to-pod: Docker sets the FORWARD policy to DROP,
  and an accept in our own nft table cannot override a drop in another table on the same hook.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shlex
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from reconcile.proxy import render

log = logging.getLogger(__name__)

DUMMY_DEVICE = "rcsvc0"
COMMENT_PREFIX = "reconcile-proxy:"


class NetfilterError(Exception):
    """A command on the host's netfilter or routes failed (its stderr is the message)."""


def _run(args: Sequence[str], *, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(list(args), input=stdin, capture_output=True, text=True, timeout=300)
    except FileNotFoundError as exc:
        raise NetfilterError(f"{args[0]} is not installed (Debian: apt-get install nftables iproute2)") from exc
    if check and done.returncode != 0:
        raise NetfilterError(f"{' '.join(args[:3])} failed: {done.stderr.strip()}")
    return done


def apply(text: str) -> None:
    """One atomic `nft -f` transaction."""
    _run(["nft", "-f", "-"], stdin=text)


def table_contents(table: str) -> tuple[set[str], set[str]]:
    """(chain names, set and map names) of `ip <table>`; empty when it does not exist.

    From `list chains` and terse `list sets`/`list maps` of the ip family (names only, filtered to our table),
    not `list table`: that one dumps every rule and element, ten times slower for 1,000 Services.
    """
    chains: set[str] = set()
    sets: set[str] = set()
    for args, kinds, into in ((["list", "chains", "ip"], ("chain",), chains),
                              (["-t", "list", "sets", "ip"], ("set",), sets),
                              (["-t", "list", "maps", "ip"], ("map",), sets)):
        done = _run(["nft", "-j", *args], check=False)
        if done.returncode != 0:
            continue
        for item in json.loads(done.stdout or "{}").get("nftables", []):
            for kind in kinds:
                if kind in item and item[kind].get("table") == table:
                    into.add(item[kind]["name"])
    return chains, sets


def our_tables() -> list[str]:
    """Every `ip reconcile-proxy-*` table on the host (all node proxies')."""
    done = _run(["nft", "-j", "list", "tables", "ip"], check=False)
    if done.returncode != 0:
        return []
    return sorted(item["table"]["name"] for item in json.loads(done.stdout).get("nftables", [])
                  if "table" in item and item["table"]["name"].startswith(render.TABLE_PREFIX))


def delete_table(table: str) -> None:
    apply(f"table ip {table} {{}}\ndelete table ip {table}\n")


# --- routes -------------------------------------------------------------------------------------

def routes() -> list[dict]:
    """The main routing table (`ip -j route show`)."""
    return json.loads(_run(["ip", "-j", "route", "show"]).stdout or "[]")


def _network(dst: str) -> ipaddress.IPv4Network | None:
    if dst == "default":
        return None
    try:
        network = ipaddress.ip_network(dst, strict=False)
    except ValueError:
        return None
    return network if network.version == 4 else None


def check_overlaps(service_cidr: str, pod_cidrs: Iterable[str], *, host_routes: list[dict] | None = None) -> None:
    """Refuse (NetfilterError naming both) a service CIDR or pod CIDR that overlaps what the host routes.

    Allowed: our own service route (dev rcsvc0) and a route that IS a pod CIDR (a node's bridge, or
    a host-gw route to another host's pods). Pod CIDRs must not overlap the service CIDR either.
    """
    service = ipaddress.ip_network(service_cidr)
    pods = [ipaddress.ip_network(c) for c in pod_cidrs]
    for pod in pods:
        if pod.overlaps(service):
            raise NetfilterError(f"pod CIDR {pod} overlaps the service CIDR {service}")
    for route in routes() if host_routes is None else host_routes:
        network = _network(route.get("dst", ""))
        if network is None:
            continue
        if route.get("dev") != DUMMY_DEVICE and network.overlaps(service):
            raise NetfilterError(f"the service CIDR {service} overlaps the host's route to {network} "
                                 f"(dev {route.get('dev')}); choose another --service-cluster-ip-range")
        for pod in pods:
            if network != pod and network.overlaps(pod):
                raise NetfilterError(f"pod CIDR {pod} overlaps the host's route to {network} (dev {route.get('dev')})")


def guard_service_cidr(service_cidr: str) -> None:
    """Route the whole service CIDR into our port-less device (idempotent; see the module docstring)."""
    if _run(["ip", "link", "show", DUMMY_DEVICE], check=False).returncode != 0:
        added = _run(["ip", "link", "add", DUMMY_DEVICE, "type", "bridge"], check=False)
        if added.returncode != 0 and "exists" not in added.stderr:
            raise NetfilterError(f"ip link add {DUMMY_DEVICE} failed: {added.stderr.strip()}")
    _run(["ip", "link", "set", DUMMY_DEVICE, "up"])
    _run(["ip", "route", "replace", str(ipaddress.ip_network(service_cidr)), "dev", DUMMY_DEVICE])


def unguard() -> None:
    """Remove the port-less device (and so its routes) once no proxy table of ours is left."""
    if not our_tables():
        _run(["ip", "link", "del", DUMMY_DEVICE], check=False)


def pod_devices(pod_cidrs: Iterable[str], *, host_routes: list[dict] | None = None) -> list[str]:
    """Devices with a route that is exactly a pod CIDR (the node bridges on this host)."""
    wanted = {ipaddress.ip_network(c) for c in pod_cidrs}
    return sorted({r["dev"] for r in (routes() if host_routes is None else host_routes)
                   if _network(r.get("dst", "")) in wanted and r.get("dev") and "gateway" not in r})


def enable_route_localnet(devices: Iterable[str]) -> None:
    """route_localnet=1 on the pod bridges only: a 127.0.0.1 node port is DNATed to a pod and its
    packets (source 127.0.0.1 until masqueraded, and the replies) cross that bridge; the kernel
    drops them as martians otherwise. render.py's filter-input drops outside traffic to 127/8."""
    for device in devices:
        path = Path("/proc/sys/net/ipv4/conf") / device / "route_localnet"
        try:
            if path.read_text().strip() != "1":
                path.write_text("1\n")
        except OSError as exc:
            log.warning("cannot set route_localnet on %s: %s", device, exc)


def enable_hairpin(bridges: Iterable[str]) -> None:
    """hairpin_mode=1 on every port of the pod bridges. With br_netfilter, a packet DNATed to an
    address on the bridge it came from is bridged, not routed, back out of the port it arrived on,
    which a bridge refuses unless that port is in hairpin mode (a pod reaching itself through its
    Service; kubelet's --hairpin-mode=hairpin-veth, Docker does it with --userland-proxy=false)."""
    for bridge in bridges:
        ports = Path("/sys/class/net") / bridge / "brif"
        try:
            for port in ports.iterdir():
                mode = port / "hairpin_mode"
                if mode.read_text().strip() != "1":
                    mode.write_text("1\n")
        except OSError as exc:
            log.warning("cannot set hairpin mode on the ports of %s: %s", bridge, exc)


# --- iptables (Docker's FORWARD DROP) ------------------------------------------------------------

def _forward_chain() -> str | None:
    """DOCKER-USER when Docker made it, else FORWARD when an iptables filter table exists."""
    if _run(["nft", "list", "table", "ip", "filter"], check=False).returncode != 0:
        return None
    if _run(["iptables", "-w", "-S", "DOCKER-USER"], check=False).returncode == 0:
        return "DOCKER-USER"
    return "FORWARD"


def _forward_rule(node: str) -> list[str]:
    mark = f"{render.POD_TRAFFIC_MARK:#x}/{render.POD_TRAFFIC_MARK:#x}"
    return ["-m", "mark", "--mark", mark, "-m", "comment", "--comment", COMMENT_PREFIX + node, "-j", "ACCEPT"]


def allow_pod_forwarding(node: str) -> None:
    """Accept (in iptables' filter table) what our table marked as pod-to-pod; idempotent."""
    chain = _forward_chain()
    if chain is None:
        return
    rule = _forward_rule(node)
    if _run(["iptables", "-w", "-C", chain, *rule], check=False).returncode != 0:
        _run(["iptables", "-w", "-I", chain, "1", *rule])


def remove_pod_forwarding(node: str | None = None) -> None:
    """Delete our accept rules (one node's, or every node's)."""
    for chain in ("DOCKER-USER", "FORWARD"):
        listed = _run(["iptables", "-w", "-S", chain], check=False)
        if listed.returncode != 0:
            continue
        for line in listed.stdout.splitlines():
            args = shlex.split(line)  # iptables -S quotes the comment
            if args[:1] == ["-A"] and any(a.startswith(COMMENT_PREFIX) for a in args) and (
                    node is None or COMMENT_PREFIX + node in args):
                _run(["iptables", "-w", "-D", *args[1:]], check=False)


def cleanup(node: str | None = None) -> list[str]:
    """Remove one node's (or every) table and rule of ours, and the service route when none is left."""
    tables = [render.table_name(node)] if node else our_tables()
    removed = []
    for table in tables:
        if table in our_tables():
            delete_table(table)
            removed.append(table)
    remove_pod_forwarding(node)
    unguard()
    return removed
